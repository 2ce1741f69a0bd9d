-- The hub's own role: it owns nothing and is no superuser, so the privileges below bind it. Every hub process
-- switches to it (SET ROLE / the connection's role option) after migrating. CREATE ROLE is cluster-wide: several
-- databases (test files, tenants) may race to create it.
DO $$
BEGIN
  CREATE ROLE hub_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$;
--> statement-breakpoint
DO $$
BEGIN
  EXECUTE format('GRANT hub_app TO %I', current_user);
EXCEPTION WHEN others THEN NULL; -- a superuser needs no membership; a role without the right must be granted by an admin
END $$;
--> statement-breakpoint
GRANT USAGE ON SCHEMA public TO hub_app;
--> statement-breakpoint
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hub_app;
--> statement-breakpoint
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO hub_app;
--> statement-breakpoint
-- Append-only: the audit log, its checkpoints, and the history of the base data.
REVOKE UPDATE, DELETE, TRUNCATE ON audit_entries, audit_checkpoints, base_record_history FROM hub_app;
--> statement-breakpoint
-- The hub may read which migrations are applied (readiness, diagnostics), never change them.
GRANT USAGE ON SCHEMA drizzle TO hub_app;
--> statement-breakpoint
GRANT SELECT ON drizzle.__drizzle_migrations TO hub_app;
