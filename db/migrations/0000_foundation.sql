CREATE TABLE "departments" (
	"code" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"region" text NOT NULL,
	"level" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "departments_region_ck" CHECK ("departments"."region" ~ '^[0-9]{6}$'),
	CONSTRAINT "departments_level_ck" CHECK ("departments"."level" in ('PROVINCE', 'CITY', 'COUNTY'))
);
--> statement-breakpoint
CREATE TABLE "client_keys" (
	"client_id" text NOT NULL,
	"kid" text NOT NULL,
	"jwk" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "client_keys_client_id_kid_pk" PRIMARY KEY("client_id","kid")
);
--> statement-breakpoint
CREATE TABLE "clients" (
	"client_id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"department_code" text NOT NULL,
	"roles" text[] NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"disabled_at" timestamp with time zone,
	"disabled_reason" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "clients_status_ck" CHECK ("clients"."status" in ('active', 'disabled')),
	CONSTRAINT "clients_roles_ck" CHECK ("clients"."roles" <@ array['consumer','provider','issuer','auditor','admin']::text[] and cardinality("clients"."roles") > 0)
);
--> statement-breakpoint
CREATE TABLE "hub_keys" (
	"kid" text PRIMARY KEY NOT NULL,
	"purpose" text NOT NULL,
	"alg" text NOT NULL,
	"public_jwk" jsonb NOT NULL,
	"private_enc" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"superseded_at" timestamp with time zone,
	"verify_until" timestamp with time zone,
	CONSTRAINT "hub_keys_purpose_ck" CHECK ("hub_keys"."purpose" in ('token', 'audit', 'receipt'))
);
--> statement-breakpoint
CREATE TABLE "hub_settings" (
	"key" text PRIMARY KEY NOT NULL,
	"value" jsonb NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "oauth_assertions" (
	"client_id" text NOT NULL,
	"jti" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "oauth_assertions_client_id_jti_pk" PRIMARY KEY("client_id","jti")
);
--> statement-breakpoint
ALTER TABLE "client_keys" ADD CONSTRAINT "client_keys_client_id_clients_client_id_fk" FOREIGN KEY ("client_id") REFERENCES "public"."clients"("client_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "clients" ADD CONSTRAINT "clients_department_code_departments_code_fk" FOREIGN KEY ("department_code") REFERENCES "public"."departments"("code") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "clients_department_idx" ON "clients" USING btree ("department_code");--> statement-breakpoint
CREATE INDEX "hub_keys_purpose_idx" ON "hub_keys" USING btree ("purpose","created_at");--> statement-breakpoint
CREATE INDEX "oauth_assertions_expires_idx" ON "oauth_assertions" USING btree ("expires_at");