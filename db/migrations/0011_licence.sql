CREATE TABLE "licence_authorisations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"holder_code" text NOT NULL,
	"client_id" text NOT NULL,
	"item_code" text NOT NULL,
	"case_id" text,
	"type_code" text,
	"valid_until" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "licence_batches" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"issuer_code" text NOT NULL,
	"client_id" text NOT NULL,
	"items" jsonb NOT NULL,
	"status" text DEFAULT 'PENDING' NOT NULL,
	"issued" integer DEFAULT 0 NOT NULL,
	"skipped" integer DEFAULT 0 NOT NULL,
	"errors" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "licence_cas" (
	"id" text PRIMARY KEY NOT NULL,
	"certificate" text NOT NULL,
	"fingerprint" text NOT NULL,
	"private_enc" text NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"retired_at" timestamp with time zone,
	CONSTRAINT "licence_cas_fingerprint_unique" UNIQUE("fingerprint")
);
--> statement-breakpoint
CREATE TABLE "licence_objections" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"identifier" text NOT NULL,
	"holder_code" text NOT NULL,
	"issuer_code" text NOT NULL,
	"field" text NOT NULL,
	"reason" text NOT NULL,
	"status" text DEFAULT 'PENDING' NOT NULL,
	"decision_reason" text,
	"new_identifier" text,
	"decided_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"decided_at" timestamp with time zone,
	CONSTRAINT "licence_objections_status_ck" CHECK ("licence_objections"."status" in ('PENDING', 'CORRECTED', 'REJECTED'))
);
--> statement-breakpoint
CREATE TABLE "licence_presentations" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"identifier" text NOT NULL,
	"holder_code" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "licence_signers" (
	"kid" text PRIMARY KEY NOT NULL,
	"role" text NOT NULL,
	"department_code" text,
	"ca_id" text NOT NULL,
	"certificate" text NOT NULL,
	"fingerprint" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"private_enc" text NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"superseded_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	"revocation_reason" text,
	CONSTRAINT "licence_signers_fingerprint_unique" UNIQUE("fingerprint"),
	CONSTRAINT "licence_signers_role_ck" CHECK ("licence_signers"."role" in ('department', 'status'))
);
--> statement-breakpoint
CREATE TABLE "licence_status_lists" (
	"id" integer PRIMARY KEY NOT NULL,
	"size" integer NOT NULL,
	"allocated" integer DEFAULT 0 NOT NULL,
	"seed" text NOT NULL,
	"version" bigint DEFAULT 1 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "licence_types" (
	"code" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"defining_department" text NOT NULL,
	"holder_kind" text NOT NULL,
	"issuers" text[] NOT NULL,
	"face_fields" jsonb NOT NULL,
	"validity_years" integer,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "licence_types_code_ck" CHECK ("licence_types"."code" ~ '^[0-9A-Z]{21}$'),
	CONSTRAINT "licence_types_holder_kind_ck" CHECK ("licence_types"."holder_kind" in ('PERSON', 'LEGAL_PERSON'))
);
--> statement-breakpoint
CREATE TABLE "licence_use_notices" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"client_id" text NOT NULL,
	"identifier" text NOT NULL,
	"status" text NOT NULL,
	"reason" text,
	"item_code" text NOT NULL,
	"case_id" text,
	"change_seq" bigint NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "licence_uses" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"identifier" text NOT NULL,
	"holder_code" text NOT NULL,
	"client_id" text NOT NULL,
	"department" text NOT NULL,
	"item_code" text NOT NULL,
	"case_id" text,
	"operator" text,
	"audit_seq" bigint,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "licences" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"identifier" text NOT NULL,
	"type_code" text NOT NULL,
	"issuer_code" text NOT NULL,
	"issuer_name" text NOT NULL,
	"serial" text NOT NULL,
	"version" integer NOT NULL,
	"number" text NOT NULL,
	"holder_name" text NOT NULL,
	"holder_code" text NOT NULL,
	"holder_code_type" text NOT NULL,
	"issued_at" timestamp with time zone NOT NULL,
	"valid_from" date NOT NULL,
	"valid_until" date,
	"status" text NOT NULL,
	"status_reason" text,
	"status_changed_at" timestamp with time zone,
	"face" jsonb NOT NULL,
	"metadata" jsonb NOT NULL,
	"credential" text NOT NULL,
	"sd_jwt" text NOT NULL,
	"signer_kid" text NOT NULL,
	"status_list" integer NOT NULL,
	"status_index" integer NOT NULL,
	"previous_identifier" text,
	"superseded_by" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "licences_identifier_unique" UNIQUE("identifier"),
	CONSTRAINT "licences_status_ck" CHECK ("licences"."status" in ('VALID', 'SUSPENDED', 'REVOKED', 'CANCELLED', 'WITHDRAWN', 'EXPIRED', 'SUPERSEDED')),
	CONSTRAINT "licences_holder_code_type_ck" CHECK ("licences"."holder_code_type" in ('ID_NUMBER', 'USCC'))
);
--> statement-breakpoint
ALTER TABLE "licence_signers" ADD CONSTRAINT "licence_signers_ca_id_licence_cas_id_fk" FOREIGN KEY ("ca_id") REFERENCES "public"."licence_cas"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "licences" ADD CONSTRAINT "licences_type_code_licence_types_code_fk" FOREIGN KEY ("type_code") REFERENCES "public"."licence_types"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "licences" ADD CONSTRAINT "licences_signer_kid_licence_signers_kid_fk" FOREIGN KEY ("signer_kid") REFERENCES "public"."licence_signers"("kid") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "licences" ADD CONSTRAINT "licences_status_list_licence_status_lists_id_fk" FOREIGN KEY ("status_list") REFERENCES "public"."licence_status_lists"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "licence_authorisations_holder_idx" ON "licence_authorisations" USING btree ("holder_code","client_id");--> statement-breakpoint
CREATE INDEX "licence_objections_identifier_idx" ON "licence_objections" USING btree ("identifier","status");--> statement-breakpoint
CREATE INDEX "licence_objections_issuer_idx" ON "licence_objections" USING btree ("issuer_code","status");--> statement-breakpoint
CREATE INDEX "licence_signers_department_idx" ON "licence_signers" USING btree ("department_code","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "licence_use_notices_once_uq" ON "licence_use_notices" USING btree ("client_id","identifier","change_seq","item_code");--> statement-breakpoint
CREATE INDEX "licence_use_notices_client_idx" ON "licence_use_notices" USING btree ("client_id","created_at");--> statement-breakpoint
CREATE INDEX "licence_uses_identifier_idx" ON "licence_uses" USING btree ("identifier","client_id");--> statement-breakpoint
CREATE INDEX "licence_uses_holder_idx" ON "licence_uses" USING btree ("holder_code","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "licences_number_uq" ON "licences" USING btree ("type_code","issuer_code","number","version");--> statement-breakpoint
CREATE UNIQUE INDEX "licences_status_slot_uq" ON "licences" USING btree ("status_list","status_index");--> statement-breakpoint
CREATE INDEX "licences_holder_idx" ON "licences" USING btree ("holder_code","type_code");--> statement-breakpoint
CREATE INDEX "licences_valid_until_idx" ON "licences" USING btree ("valid_until");--> statement-breakpoint
CREATE INDEX "licences_issuer_idx" ON "licences" USING btree ("issuer_code","created_at");