-- Every entry now has a run, and a run carries what its entries were about. An auditor's filters other than the client
-- and the subject (a provider's own resources, an item code, a case id, an operation, an outcome, a department) had
-- no index: accessLog walked the log backwards from its newest entry, which for a rare or absent value meant reading
-- the whole month. audit_runs replaces audit_client_runs: a run is still a stretch of consecutive entries of one batch
-- for one client, now entries without a client too, and its tags are the distinct department, resource, item code,
-- operation and outcome of its entries ('d:', 'r:', 'i:', 'o:', 'x:' before the value; audit/schema.ts runTag). A
-- query looks among the newest entries first (a filter most entries meet fills its page there), then walks the runs
-- that carry its tags newest first (GIN on the tags; a client's through its B-tree) and reads their entries by seq
-- range. The tags' GIN index keeps no pending list: runs are few (one a batch and client), and a query would read
-- the whole list each time (until vacuum merged it: 15,959 runs of 1,000,000 entries, 5-9 ms a query more). A case
-- id is nearly unique to a read, so it goes where the subject is: into the entries' GIN index, as a second key.
-- Stop hub processes of earlier versions before applying it. Once it is in, their appends fail (audit_client_runs is
-- gone), so they answer no read; while it runs, the lock below keeps them from committing entries the backfill would
-- not see. The log takes no appends while the entries' GIN index is rebuilt (seconds for a million entries).
LOCK TABLE "audit_entries", "audit_client_runs" IN EXCLUSIVE MODE;--> statement-breakpoint
CREATE TABLE "audit_runs" (
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"client_id" text,
	"tags" text[] NOT NULL
);--> statement-breakpoint
-- the runs of the entries written so far: an entry's batch shares its time, so consecutive entries of one client (or
-- of none) and one time are one run
INSERT INTO "audit_runs" ("first_seq", "last_seq", "at", "client_id", "tags")
SELECT min("seq"), max("seq"), "at", "client_id",
       ARRAY(SELECT DISTINCT "tag" FROM unnest(array_agg("tags")) AS "tag" WHERE "tag" IS NOT NULL ORDER BY "tag")
FROM (
  SELECT "seq", "at", "client_id",
         ARRAY['d:' || "department", 'r:' || "resource_code", 'i:' || "item_code", 'o:' || "operation", 'x:' || "outcome"] AS "tags",
         "seq" - row_number() OVER (PARTITION BY "at", "client_id" ORDER BY "seq") AS "island"
  FROM "audit_entries"
) "e" GROUP BY "at", "client_id", "island";--> statement-breakpoint
CREATE INDEX "audit_runs_client_idx" ON "audit_runs" USING btree ("client_id","last_seq");--> statement-breakpoint
-- for hub audit verify, which reads the runs alongside the entries, in order
CREATE INDEX "audit_runs_first_seq_idx" ON "audit_runs" USING btree ("first_seq","last_seq");--> statement-breakpoint
CREATE INDEX "audit_runs_tags_idx" ON "audit_runs" USING gin ("tags") WITH (fastupdate = off);--> statement-breakpoint
REVOKE UPDATE, DELETE, TRUNCATE ON "audit_runs" FROM hub_app;--> statement-breakpoint
DROP TABLE "audit_client_runs";--> statement-breakpoint
DROP INDEX IF EXISTS "audit_entries_subject_idx";--> statement-breakpoint
CREATE INDEX "audit_entries_keys_idx" ON "audit_entries" USING gin ((ARRAY[hashtextextended("subject", 0), hashtextextended('case:' || "case_id", 0)]));
