CREATE TABLE "audit_checkpoints" (
	"tree_size" bigint PRIMARY KEY NOT NULL,
	"root_hash" text NOT NULL,
	"last_hash" text NOT NULL,
	"frontier" jsonb NOT NULL,
	"signature" text NOT NULL,
	"kid" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "audit_entries" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"client_id" text,
	"department" text,
	"operator" text,
	"item_code" text,
	"case_id" text,
	"operation" text NOT NULL,
	"resource_code" text,
	"subject" text,
	"fields" text[],
	"outcome" text NOT NULL,
	"reason" text,
	"withhold_basis" text,
	"request_id" text,
	"details" jsonb,
	"prev_hash" text NOT NULL,
	"hash" text NOT NULL
);
--> statement-breakpoint
CREATE INDEX "audit_entries_subject_idx" ON "audit_entries" USING btree ("subject","seq");--> statement-breakpoint
CREATE INDEX "audit_entries_client_idx" ON "audit_entries" USING btree ("client_id","seq");--> statement-breakpoint
CREATE INDEX "audit_entries_at_idx" ON "audit_entries" USING btree ("at");