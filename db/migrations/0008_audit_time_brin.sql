DROP INDEX "audit_entries_at_idx";--> statement-breakpoint
CREATE INDEX "audit_entries_at_brin" ON "audit_entries" USING brin ("at");