CREATE TABLE "base_record_history" (
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"version" integer NOT NULL,
	"subject" text NOT NULL,
	"data" jsonb NOT NULL,
	"content_hash" text NOT NULL,
	"connector_id" text NOT NULL,
	"source_id" text NOT NULL,
	"flags" text[] DEFAULT '{}'::text[] NOT NULL,
	"retrieved_at" timestamp with time zone NOT NULL,
	"recorded_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "base_record_history_kind_key_version_pk" PRIMARY KEY("kind","key","version")
);
--> statement-breakpoint
CREATE TABLE "base_records" (
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"subject" text NOT NULL,
	"data" jsonb NOT NULL,
	"content_hash" text NOT NULL,
	"version" integer NOT NULL,
	"connector_id" text NOT NULL,
	"source_id" text NOT NULL,
	"flags" text[] DEFAULT '{}'::text[] NOT NULL,
	"retrieved_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "base_records_kind_key_pk" PRIMARY KEY("kind","key"),
	CONSTRAINT "base_records_kind_ck" CHECK ("base_records"."kind" in ('population', 'legal_person', 'credit'))
);
--> statement-breakpoint
CREATE TABLE "connector_state" (
	"connector_id" text PRIMARY KEY NOT NULL,
	"cursor" jsonb,
	"last_completed_at" timestamp with time zone,
	"circuit" text DEFAULT 'CLOSED' NOT NULL,
	"circuit_opened_at" timestamp with time zone,
	"consecutive_failures" integer DEFAULT 0 NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "connectors" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"department_code" text NOT NULL,
	"kind" text NOT NULL,
	"adapter" text NOT NULL,
	"config" jsonb NOT NULL,
	"mapping" jsonb NOT NULL,
	"schedule" text,
	"authoritative" boolean DEFAULT false NOT NULL,
	"enabled" boolean DEFAULT true NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "connectors_adapter_ck" CHECK ("connectors"."adapter" in ('http', 'file', 'sql'))
);
--> statement-breakpoint
CREATE TABLE "quarantine" (
	"connector_id" text NOT NULL,
	"source_id" text NOT NULL,
	"reason" text NOT NULL,
	"detail" text NOT NULL,
	"record" jsonb NOT NULL,
	"first_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_seen_at" timestamp with time zone DEFAULT now() NOT NULL,
	"attempts" integer DEFAULT 1 NOT NULL,
	"resolved_at" timestamp with time zone,
	CONSTRAINT "quarantine_connector_id_source_id_pk" PRIMARY KEY("connector_id","source_id")
);
--> statement-breakpoint
CREATE TABLE "sync_runs" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"connector_id" text NOT NULL,
	"mode" text NOT NULL,
	"status" text NOT NULL,
	"trigger" text NOT NULL,
	"worker" text NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"heartbeat_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	"fetched" integer DEFAULT 0 NOT NULL,
	"inserted" integer DEFAULT 0 NOT NULL,
	"updated" integer DEFAULT 0 NOT NULL,
	"unchanged" integer DEFAULT 0 NOT NULL,
	"quarantined" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"batches" integer DEFAULT 0 NOT NULL,
	"error" text,
	"cursor_start" jsonb,
	"cursor_end" jsonb,
	CONSTRAINT "sync_runs_status_ck" CHECK ("sync_runs"."status" in ('RUNNING', 'SUCCEEDED', 'FAILED'))
);
--> statement-breakpoint
ALTER TABLE "connector_state" ADD CONSTRAINT "connector_state_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "connectors" ADD CONSTRAINT "connectors_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "quarantine" ADD CONSTRAINT "quarantine_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "sync_runs" ADD CONSTRAINT "sync_runs_connector_id_connectors_id_fk" FOREIGN KEY ("connector_id") REFERENCES "public"."connectors"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "base_record_history_credit_subject_idx" ON "base_record_history" USING btree ("subject","recorded_at") WHERE "base_record_history"."kind" = 'credit';--> statement-breakpoint
CREATE INDEX "base_records_credit_subject_idx" ON "base_records" USING btree ("subject") WHERE "base_records"."kind" = 'credit';--> statement-breakpoint
CREATE INDEX "quarantine_open_idx" ON "quarantine" USING btree ("connector_id","reason") WHERE "quarantine"."resolved_at" is null;--> statement-breakpoint
CREATE INDEX "sync_runs_connector_idx" ON "sync_runs" USING btree ("connector_id","started_at");