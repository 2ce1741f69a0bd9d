-- 用证记录 is append-only for the hub's role: a use, once recorded, is neither changed nor removed.
-- Self-contained: it names only the licence room's tables, so it applies after whichever migration creates them.
REVOKE UPDATE, DELETE, TRUNCATE ON licence_uses FROM hub_app;
--> statement-breakpoint
-- The root CA and the signing keys are never deleted: licences signed years ago must stay verifiable.
REVOKE DELETE, TRUNCATE ON licence_cas, licence_signers FROM hub_app;
