-- Foreign keys from directory tables to clients: declared here because auth/ imports directory/ (departments),
-- and a schema import back would be a cycle.
ALTER TABLE "access_requests" ADD CONSTRAINT "access_requests_client_fk" FOREIGN KEY ("client_id") REFERENCES "clients"("client_id");
--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_client_fk" FOREIGN KEY ("client_id") REFERENCES "clients"("client_id");
