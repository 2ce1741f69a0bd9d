CREATE TABLE "material_resolutions" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"client_id" text NOT NULL,
	"item_code" text,
	"bundle_code" text,
	"audit_seq" bigint,
	"materials" integer NOT NULL,
	"by_licence" integer NOT NULL,
	"by_data" integer NOT NULL,
	"by_commitment" integer NOT NULL,
	"deferred" integer NOT NULL,
	"must_submit" integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX "material_resolutions_item_idx" ON "material_resolutions" USING btree ("item_code","created_at");--> statement-breakpoint
CREATE INDEX "material_resolutions_bundle_idx" ON "material_resolutions" USING btree ("bundle_code","created_at");--> statement-breakpoint
-- the measured reform is a record too: the hub adds to it, never rewrites it
REVOKE UPDATE, DELETE, TRUNCATE ON "material_resolutions" FROM hub_app;
