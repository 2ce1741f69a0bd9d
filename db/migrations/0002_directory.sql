CREATE TABLE "access_requests" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"resource_code" text NOT NULL,
	"resource_version" integer NOT NULL,
	"client_id" text NOT NULL,
	"department_code" text NOT NULL,
	"provider_code" text NOT NULL,
	"fields" text[] NOT NULL,
	"full_fields" text[] NOT NULL,
	"item_codes" text[] NOT NULL,
	"purpose" text NOT NULL,
	"legal_basis" text,
	"valid_until" timestamp with time zone,
	"status" text NOT NULL,
	"reason" text,
	"due_at" timestamp with time zone,
	"due_provisional" boolean DEFAULT false NOT NULL,
	"decided_by" text,
	"decided_at" timestamp with time zone,
	"overdue_notified_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "access_requests_status_ck" CHECK ("access_requests"."status" in ('PENDING', 'APPROVED', 'REFUSED'))
);
--> statement-breakpoint
CREATE TABLE "bundle_items" (
	"bundle_code" text NOT NULL,
	"item_code" text NOT NULL,
	"position" integer NOT NULL,
	CONSTRAINT "bundle_items_bundle_code_item_code_pk" PRIMARY KEY("bundle_code","item_code")
);
--> statement-breakpoint
CREATE TABLE "bundles" (
	"code" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "calendar_years" (
	"year" integer PRIMARY KEY NOT NULL,
	"source" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "department_webhooks" (
	"department_code" text PRIMARY KEY NOT NULL,
	"url" text NOT NULL,
	"secret_enc" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "grants" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"request_id" uuid,
	"client_id" text NOT NULL,
	"resource_code" text NOT NULL,
	"fields" text[] NOT NULL,
	"unmasked_fields" text[] NOT NULL,
	"item_codes" text[] NOT NULL,
	"expires_at" timestamp with time zone,
	"granted_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	"revoked_by" text,
	"revoke_reason" text
);
--> statement-breakpoint
CREATE TABLE "materials" (
	"item_code" text NOT NULL,
	"code" text NOT NULL,
	"name" text NOT NULL,
	"position" integer NOT NULL,
	"sources" jsonb NOT NULL,
	"tolerance" text DEFAULT 'NONE' NOT NULL,
	"tolerance_days" integer,
	"commitment_text" text,
	CONSTRAINT "materials_item_code_code_pk" PRIMARY KEY("item_code","code"),
	CONSTRAINT "materials_tolerance_ck" CHECK ("materials"."tolerance" in ('NONE', 'RONGQUE', 'COMMITMENT'))
);
--> statement-breakpoint
CREATE TABLE "notifications" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"department_code" text NOT NULL,
	"kind" text NOT NULL,
	"subject_id" text NOT NULL,
	"payload" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"delivered_at" timestamp with time zone,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text
);
--> statement-breakpoint
CREATE TABLE "resources" (
	"code" text NOT NULL,
	"version" integer NOT NULL,
	"current" boolean NOT NULL,
	"name" text NOT NULL,
	"category" text NOT NULL,
	"base_kind" text,
	"provider_code" text NOT NULL,
	"summary" text,
	"format" text,
	"update_cycle" text,
	"sharing_type" text NOT NULL,
	"sharing_condition" text,
	"sharing_method" text,
	"legal_basis" text,
	"open_type" text DEFAULT 'NONE' NOT NULL,
	"open_condition" text,
	"related_codes" text[] DEFAULT '{}'::text[] NOT NULL,
	"fields" jsonb NOT NULL,
	"status" text NOT NULL,
	"published_at" timestamp with time zone,
	"retired_at" timestamp with time zone,
	"retired_reason" text,
	"search_text" text NOT NULL,
	"changed_by" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "resources_code_version_pk" PRIMARY KEY("code","version"),
	CONSTRAINT "resources_category_ck" CHECK ("resources"."category" in ('BASE', 'THEME', 'DEPARTMENT')),
	CONSTRAINT "resources_sharing_ck" CHECK ("resources"."sharing_type" in ('UNCONDITIONAL', 'CONDITIONAL', 'NONE')),
	CONSTRAINT "resources_open_ck" CHECK ("resources"."open_type" in ('UNCONDITIONAL', 'CONDITIONAL', 'NONE')),
	CONSTRAINT "resources_status_ck" CHECK ("resources"."status" in ('DRAFT', 'PUBLISHED', 'RETIRED'))
);
--> statement-breakpoint
CREATE TABLE "service_items" (
	"code" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"department_code" text NOT NULL,
	"measure_codes" text[] DEFAULT '{}'::text[] NOT NULL,
	"search_text" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "working_calendar" (
	"day" date PRIMARY KEY NOT NULL,
	"kind" text NOT NULL,
	"name" text NOT NULL,
	CONSTRAINT "working_calendar_kind_ck" CHECK ("working_calendar"."kind" in ('HOLIDAY', 'WORKDAY'))
);
--> statement-breakpoint
ALTER TABLE "bundle_items" ADD CONSTRAINT "bundle_items_bundle_code_bundles_code_fk" FOREIGN KEY ("bundle_code") REFERENCES "public"."bundles"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "bundle_items" ADD CONSTRAINT "bundle_items_item_code_service_items_code_fk" FOREIGN KEY ("item_code") REFERENCES "public"."service_items"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "department_webhooks" ADD CONSTRAINT "department_webhooks_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "grants" ADD CONSTRAINT "grants_request_id_access_requests_id_fk" FOREIGN KEY ("request_id") REFERENCES "public"."access_requests"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "materials" ADD CONSTRAINT "materials_item_code_service_items_code_fk" FOREIGN KEY ("item_code") REFERENCES "public"."service_items"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "resources" ADD CONSTRAINT "resources_provider_code_departments_code_fk" FOREIGN KEY ("provider_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "service_items" ADD CONSTRAINT "service_items_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "access_requests_provider_idx" ON "access_requests" USING btree ("provider_code","status");--> statement-breakpoint
CREATE INDEX "access_requests_client_idx" ON "access_requests" USING btree ("client_id");--> statement-breakpoint
CREATE INDEX "grants_client_idx" ON "grants" USING btree ("client_id","resource_code");--> statement-breakpoint
CREATE INDEX "grants_resource_idx" ON "grants" USING btree ("resource_code");--> statement-breakpoint
CREATE INDEX "notifications_department_idx" ON "notifications" USING btree ("department_code","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "notifications_once_uq" ON "notifications" USING btree ("kind","subject_id");--> statement-breakpoint
CREATE UNIQUE INDEX "resources_current_uq" ON "resources" USING btree ("code") WHERE "resources"."current";--> statement-breakpoint
CREATE INDEX "resources_provider_idx" ON "resources" USING btree ("provider_code");--> statement-breakpoint
CREATE INDEX "resources_search_trgm" ON "resources" USING gin ("search_text" gin_trgm_ops);