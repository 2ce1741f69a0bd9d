-- Trust II: a presented credential must be the one the hub issued, not only one signed by the issuer's key. Each
-- licence keeps the signature of each signed form (the last segment of its issuer-signed JWS): a credential whose
-- signature verifies and equals the stored one carries exactly the payload that was issued (ECDSA over SHA-256: another
-- payload under the same signature would be a SHA-256 collision), and an SD-JWT presentation keeps its issuer JWT, so it
-- matches too. A stolen key can re-sign altered content for an existing identifier; it cannot make that signature.
-- Kept inline (the forms themselves are stored out of line): the verdict reads them on every verification.
ALTER TABLE "licences" ADD COLUMN "vc_signature" text;--> statement-breakpoint
ALTER TABLE "licences" ADD COLUMN "sd_signature" text;--> statement-breakpoint
UPDATE "licences" SET "vc_signature" = split_part("credential", '.', 2), "sd_signature" = split_part(split_part("sd_jwt", '~', 1), '.', 2);--> statement-breakpoint
ALTER TABLE "licences" ALTER COLUMN "vc_signature" SET NOT NULL;--> statement-breakpoint
ALTER TABLE "licences" ALTER COLUMN "sd_signature" SET NOT NULL;
--> statement-breakpoint
-- 证照编号 that is a personal identifier (the 居民身份证's is the 公民身份号码): masked in answers unless the holder's code
-- may be seen, and selectively disclosable in the SD-JWT VC of licences issued from now on
ALTER TABLE "licence_types" ADD COLUMN "number_is_personal_id" boolean DEFAULT false NOT NULL;
--> statement-breakpoint
-- 调用权限 per 证照类型: a request and a grant on the licence base resource name the licence types they open. Grants
-- made before opened every type the holder has; they now open the types their items' materials name as LICENCE sources
-- (what those items can use a licence for), and a provider may narrow further.
ALTER TABLE "access_requests" ADD COLUMN "licence_types" text[];--> statement-breakpoint
ALTER TABLE "grants" ADD COLUMN "licence_types" text[];--> statement-breakpoint
UPDATE "access_requests" AS r SET "licence_types" = coalesce((
  SELECT array_agg(DISTINCT s->>'licenceTypeCode' ORDER BY s->>'licenceTypeCode') FROM "materials" m, jsonb_array_elements(m."sources") s
  WHERE m."item_code" = any(r."item_codes") AND s->>'kind' = 'LICENCE'), '{}')
WHERE r."resource_code" IN (SELECT "code" FROM "resources" WHERE "base_kind" = 'LICENCE');--> statement-breakpoint
UPDATE "grants" AS g SET "licence_types" = coalesce((
  SELECT array_agg(DISTINCT s->>'licenceTypeCode' ORDER BY s->>'licenceTypeCode') FROM "materials" m, jsonb_array_elements(m."sources") s
  WHERE m."item_code" = any(g."item_codes") AND s->>'kind' = 'LICENCE'), '{}')
WHERE g."resource_code" IN (SELECT "code" FROM "resources" WHERE "base_kind" = 'LICENCE');
--> statement-breakpoint
-- The 居民身份证's number is the 公民身份号码: types of that name are marked (a type is otherwise marked at registration)
UPDATE "licence_types" SET "number_is_personal_id" = true WHERE "name" = '居民身份证';--> statement-breakpoint
-- The face of a licence holds sensitive fields (住址, 配偶身份证件号码 …): the licence base resource's 信息项 `face` is
-- sensitive, so it can be asked unmasked (fullFields) and leaves masked otherwise
UPDATE "resources" SET "fields" = (
  SELECT jsonb_agg(CASE WHEN f->>'code' = 'face' THEN f || '{"sensitive": true}'::jsonb ELSE f END ORDER BY n)
  FROM jsonb_array_elements("fields") WITH ORDINALITY AS e(f, n))
WHERE "base_kind" = 'LICENCE' AND "fields" @> '[{"code": "face"}]'::jsonb;
