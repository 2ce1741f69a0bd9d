CREATE TABLE "audit_archives" (
	"partition" text PRIMARY KEY NOT NULL,
	"from_at" timestamp with time zone NOT NULL,
	"to_at" timestamp with time zone NOT NULL,
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"entries" integer NOT NULL,
	"prev_hash" text NOT NULL,
	"last_hash" text NOT NULL,
	"frontier" jsonb NOT NULL,
	"sha256" text NOT NULL,
	"location" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"detached_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "audit_batches" (
	"prev_seq" bigint PRIMARY KEY NOT NULL,
	"last_seq" bigint NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
-- The audit log becomes a table partitioned by month of `at` (Asia/Shanghai), on PostgreSQL and PGlite alike. Its
-- rows move over as they are (same seq, time and hashes, so the chain and every checkpoint stay valid).
ALTER TABLE "audit_entries" RENAME TO "audit_entries_unpartitioned";--> statement-breakpoint
ALTER TABLE "audit_entries_unpartitioned" RENAME CONSTRAINT "audit_entries_pkey" TO "audit_entries_unpartitioned_pkey";--> statement-breakpoint
ALTER INDEX "audit_entries_subject_idx" RENAME TO "audit_entries_unpartitioned_subject_idx";--> statement-breakpoint
ALTER INDEX "audit_entries_client_idx" RENAME TO "audit_entries_unpartitioned_client_idx";--> statement-breakpoint
ALTER INDEX "audit_entries_at_brin" RENAME TO "audit_entries_unpartitioned_at_brin";--> statement-breakpoint
CREATE TABLE "audit_entries" (
	"seq" bigint NOT NULL,
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
	"hash" text NOT NULL,
	CONSTRAINT "audit_entries_pkey" PRIMARY KEY("seq","at")
) PARTITION BY RANGE ("at");--> statement-breakpoint
CREATE INDEX "audit_entries_subject_idx" ON "audit_entries" USING btree ("subject","seq");--> statement-breakpoint
CREATE INDEX "audit_entries_client_idx" ON "audit_entries" USING btree ("client_id","seq");--> statement-breakpoint
CREATE INDEX "audit_entries_at_brin" ON "audit_entries" USING brin ("at");--> statement-breakpoint
-- Creates the monthly partitions from the month of from_at through the month of to_at that do not exist yet (nor were
-- archived), and returns their names. It runs as the owner (the hub's role owns nothing, so it cannot create
-- partitions itself), and takes UPDATE, DELETE and TRUNCATE on each new partition away from the hub's role, which
-- the schema's default privileges would otherwise give it.
CREATE FUNCTION audit_ensure_partitions(from_at timestamptz, to_at timestamptz) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  m timestamp := date_trunc('month', from_at AT TIME ZONE 'Asia/Shanghai');
  last_month timestamp := date_trunc('month', to_at AT TIME ZONE 'Asia/Shanghai');
  part text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('hub:audit-partitions'));
  WHILE m <= last_month LOOP
    part := 'audit_entries_' || to_char(m, '"y"YYYY"m"MM');
    IF to_regclass(part) IS NULL AND NOT EXISTS (SELECT 1 FROM audit_archives a WHERE a.partition = part) THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF audit_entries FOR VALUES FROM (%L) TO (%L)', part,
        m AT TIME ZONE 'Asia/Shanghai', (m + interval '1 month') AT TIME ZONE 'Asia/Shanghai');
      EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %I FROM hub_app', part);
      RETURN NEXT part;
    END IF;
    m := m + interval '1 month';
  END LOOP;
END $$;--> statement-breakpoint
-- Detaches a month's partition, only once its archive is recorded, matches the partition as it is, and a signed
-- checkpoint covers its last entry; months leave in order, oldest first, so the log left attached is one unbroken
-- run of the chain after the last archive. The detached table stays (read-only to the hub) until an operator
-- moves it away.
CREATE FUNCTION audit_detach_partition(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
  a audit_archives%ROWTYPE;
  n bigint;
  max_seq bigint;
  h text;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('hub:audit-partitions'));
  SELECT * INTO a FROM audit_archives WHERE partition = part;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'partition % has no archive: write its archive first', part USING ERRCODE = '55000';
  END IF;
  IF a.detached_at IS NOT NULL THEN
    RAISE EXCEPTION 'partition % was detached at %', part, a.detached_at USING ERRCODE = '55000';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'audit_entries'::regclass AND c.relname = part) THEN
    RAISE EXCEPTION '% is not a partition of the audit log', part USING ERRCODE = '55000';
  END IF;
  IF a.to_at > now() THEN
    RAISE EXCEPTION 'the month of partition % is not over', part USING ERRCODE = '55000';
  END IF;
  IF EXISTS (SELECT 1 FROM audit_entries WHERE at < a.from_at) THEN
    RAISE EXCEPTION 'a month older than partition % is still attached: detach the months in order', part USING ERRCODE = '55000';
  END IF;
  EXECUTE format('SELECT count(*), max(seq) FROM %I', part) INTO n, max_seq;
  IF n <> a.entries OR coalesce(max_seq, a.last_seq) <> a.last_seq THEN
    RAISE EXCEPTION 'partition % holds % entries up to %, its archive % up to %', part, n, max_seq, a.entries, a.last_seq USING ERRCODE = '55000';
  END IF;
  IF n > 0 THEN
    EXECUTE format('SELECT hash FROM %I WHERE seq = $1', part) INTO h USING a.last_seq;
    IF h IS DISTINCT FROM a.last_hash THEN
      RAISE EXCEPTION 'the last entry of partition % differs from its archive', part USING ERRCODE = '55000';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE tree_size >= a.last_seq) THEN
      RAISE EXCEPTION 'no signed checkpoint covers entry % yet', a.last_seq USING ERRCODE = '55000';
    END IF;
  END IF;
  EXECUTE format('ALTER TABLE audit_entries DETACH PARTITION %I', part);
  EXECUTE format('REVOKE INSERT ON %I FROM hub_app', part);
  UPDATE audit_archives SET detached_at = now() WHERE partition = part;
END $$;--> statement-breakpoint
REVOKE ALL ON FUNCTION audit_ensure_partitions(timestamptz, timestamptz) FROM PUBLIC;--> statement-breakpoint
REVOKE ALL ON FUNCTION audit_detach_partition(text) FROM PUBLIC;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION audit_ensure_partitions(timestamptz, timestamptz) TO hub_app;--> statement-breakpoint
GRANT EXECUTE ON FUNCTION audit_detach_partition(text) TO hub_app;--> statement-breakpoint
SELECT audit_ensure_partitions(coalesce((SELECT min(at) FROM audit_entries_unpartitioned), now()), now() + interval '2 months');--> statement-breakpoint
INSERT INTO "audit_entries" SELECT * FROM "audit_entries_unpartitioned";--> statement-breakpoint
-- each earlier entry claims its predecessor, so a writer can never chain onto a head that is not the newest
INSERT INTO "audit_batches" ("prev_seq", "last_seq", "at") SELECT "seq" - 1, "seq", "at" FROM "audit_entries_unpartitioned";--> statement-breakpoint
DROP TABLE "audit_entries_unpartitioned";--> statement-breakpoint
-- Append-only, as the rest of the log: the hub may add batches and archives, never change them.
REVOKE UPDATE, DELETE, TRUNCATE ON "audit_entries", "audit_batches", "audit_archives" FROM hub_app;
