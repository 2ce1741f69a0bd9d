-- Trust I: a connector runs only in a configuration an admin approved, names secrets the hub holds for its department
-- rather than process variables, and writes a base kind only for the department that is its authoritative source.
-- Connectors already registered go to DRAFT: their configuration may name environment variables (tokenEnv, urlEnv …),
-- which are refused now, and an admin has not yet seen them. The demo re-registers and approves its own at start.
ALTER TABLE "connectors" ADD COLUMN "status" text DEFAULT 'DRAFT' NOT NULL;--> statement-breakpoint
ALTER TABLE "connectors" ADD COLUMN "drafted_by" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "connectors" ADD COLUMN "approved_by" text;--> statement-breakpoint
ALTER TABLE "connectors" ADD COLUMN "approved_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "connectors" ADD COLUMN "approved_digest" text;--> statement-breakpoint
ALTER TABLE "connectors" ADD CONSTRAINT "connectors_status_ck" CHECK ("connectors"."status" in ('DRAFT', 'APPROVED'));--> statement-breakpoint
CREATE TABLE "source_secrets" (
	"department_code" text NOT NULL,
	"name" text NOT NULL,
	"version" integer NOT NULL,
	"value_enc" text NOT NULL,
	"updated_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "source_secrets_department_code_name_pk" PRIMARY KEY("department_code","name")
);--> statement-breakpoint
ALTER TABLE "source_secrets" ADD CONSTRAINT "source_secrets_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE TABLE "base_sources" (
	"kind" text NOT NULL,
	"department_code" text NOT NULL,
	"reason" text NOT NULL,
	"designated_by" text NOT NULL,
	"designated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"withdrawn_at" timestamp with time zone,
	CONSTRAINT "base_sources_kind_department_code_pk" PRIMARY KEY("kind","department_code")
);--> statement-breakpoint
ALTER TABLE "base_sources" ADD CONSTRAINT "base_sources_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
-- secrets are rotated, never removed by the hub; a designation is withdrawn, not deleted
REVOKE DELETE ON "source_secrets", "base_sources" FROM hub_app;
