-- The signed forms are base64url text that compresses little (pglz gave back a quarter of the VC and nothing of the
-- SD-JWT) at a cost paid on every issuance: they are kept out of line uncompressed.
ALTER TABLE "licences" ALTER COLUMN "credential" SET STORAGE EXTERNAL, ALTER COLUMN "sd_jwt" SET STORAGE EXTERNAL;
