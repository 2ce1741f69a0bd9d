import { sql } from 'drizzle-orm';
import { bigint, boolean, check, date, index, integer, jsonb, pgTable, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { at, createdAt, updatedAt } from '../db/columns.ts';

export const HOLDER_KINDS = ['PERSON', 'LEGAL_PERSON'] as const;
export type HolderKind = (typeof HOLDER_KINDS)[number];

export const LICENCE_STATUSES = ['VALID', 'SUSPENDED', 'REVOKED', 'CANCELLED', 'WITHDRAWN', 'EXPIRED', 'SUPERSEDED'] as const;
export type LicenceStatus = (typeof LICENCE_STATUSES)[number];

/** 照面信息: one face field of a licence type (like a 信息项), `required` unless said otherwise. */
export interface FaceField {
  code: string;
  name: string;
  /** C text, D date (YYYY-MM-DD), N number, I integer, L boolean, M long text / JSON */
  dataType: string;
  length: number | null;
  sensitive: boolean;
  required: boolean;
}

/** 证照目录: a licence type, defined by one body, issued by the departments it names. */
export const licenceTypes = pgTable(
  'licence_types',
  {
    /** 证照类型代码: the defining body's USCC + 3-character sequence */
    code: text('code').primaryKey(),
    name: text('name').notNull(),
    definingDepartment: text('defining_department').notNull(),
    holderKind: text('holder_kind', { enum: HOLDER_KINDS }).notNull(),
    /** departments (USCC) that may issue it */
    issuers: text('issuers').array().notNull(),
    faceFields: jsonb('face_fields').$type<FaceField[]>().notNull(),
    /** default validity in years from validFrom; null = no expiry (长期有效) unless the issuer gives validUntil */
    validityYears: integer('validity_years'),
    /** 证照编号 is a personal identifier (the 居民身份证's is the 公民身份号码): masked and selectively disclosed as the holder's code is */
    numberIsPersonalId: boolean('number_is_personal_id').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('licence_types_code_ck', sql`${t.code} ~ '^[0-9A-Z]{21}$'`),
    check('licence_types_holder_kind_ck', sql`${t.holderKind} in ('PERSON', 'LEGAL_PERSON')`),
  ],
);

/**
 * The hub's licence root CA (EC P-256). The private key is sealed under HUB_MASTER_KEY; `certificate` is base64 DER.
 * One is active; a retired root keeps verifying what its department certificates signed.
 */
export const licenceCas = pgTable('licence_cas', {
  id: text('id').primaryKey(),
  certificate: text('certificate').notNull(),
  /** SHA-256 of the DER, hex */
  fingerprint: text('fingerprint').notNull().unique(),
  privateEnc: text('private_enc').notNull(),
  notBefore: at('not_before').notNull(),
  notAfter: at('not_after').notNull(),
  createdAt: createdAt(),
  retiredAt: at('retired_at'),
});

/**
 * Signing keys with a certificate from the root: one active per issuing department (`role` department), and the
 * hub's own key for status lists (`role` status, department null). Rotation supersedes a key (it keeps verifying);
 * revocation (key compromise) at `revokedAt` makes whatever it signed from then on fail with CHAIN.
 */
export const licenceSigners = pgTable(
  'licence_signers',
  {
    kid: text('kid').primaryKey(),
    role: text('role', { enum: ['department', 'status'] }).notNull(),
    departmentCode: text('department_code'),
    caId: text('ca_id')
      .notNull()
      .references(() => licenceCas.id),
    certificate: text('certificate').notNull(),
    fingerprint: text('fingerprint').notNull().unique(),
    publicJwk: jsonb('public_jwk').$type<Record<string, unknown>>().notNull(),
    privateEnc: text('private_enc').notNull(),
    notBefore: at('not_before').notNull(),
    notAfter: at('not_after').notNull(),
    createdAt: createdAt(),
    supersededAt: at('superseded_at'),
    revokedAt: at('revoked_at'),
    revocationReason: text('revocation_reason'),
  },
  (t) => [
    check('licence_signers_role_ck', sql`${t.role} in ('department', 'status')`),
    index('licence_signers_department_idx').on(t.departmentCode, t.createdAt),
  ],
);

/**
 * Status lists: 131,072 entries each. A licence's index is drawn through a fixed random permutation (keyed by
 * `seed`) of the list's allocation counter, so neighbouring indices say nothing about issue order. `version` rises
 * with every status change and names the rendered lists (ETag).
 */
export const licenceStatusLists = pgTable('licence_status_lists', {
  id: integer('id').primaryKey(),
  size: integer('size').notNull(),
  allocated: integer('allocated').notNull().default(0),
  seed: text('seed').notNull(),
  version: bigint('version', { mode: 'number' }).notNull().default(1),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** 电子证照: one row per version; the row's status is the one state both status list formats are drawn from. */
export const licences = pgTable(
  'licences',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** 证照标识 (GB/T 36904) */
    identifier: text('identifier').notNull().unique(),
    typeCode: text('type_code')
      .notNull()
      .references(() => licenceTypes.code),
    issuerCode: text('issuer_code').notNull(),
    issuerName: text('issuer_name').notNull(),
    serial: text('serial').notNull(),
    version: integer('version').notNull(),
    /** 证照编号 (the printed number) */
    number: text('number').notNull(),
    holderName: text('holder_name').notNull(),
    holderCode: text('holder_code').notNull(),
    holderCodeType: text('holder_code_type', { enum: ['ID_NUMBER', 'USCC'] }).notNull(),
    issuedAt: at('issued_at').notNull(),
    validFrom: date('valid_from', { mode: 'string' }).notNull(),
    validUntil: date('valid_until', { mode: 'string' }),
    status: text('status', { enum: LICENCE_STATUSES }).notNull(),
    statusReason: text('status_reason'),
    statusChangedAt: at('status_changed_at'),
    face: jsonb('face').$type<Record<string, unknown>>().notNull(),
    /** GB/T 36903 metadata (ZZMC, ZZLXDM, ZZBH, ZZBS, ...) */
    metadata: jsonb('metadata').$type<Record<string, unknown>>().notNull(),
    /** the VC-JOSE credential without its protected header (the same for every licence of a key: rebuilt from signer_kid) */
    credential: text('credential').notNull(),
    /** the SD-JWT VC with all disclosures, without its protected header, likewise */
    sdJwt: text('sd_jwt').notNull(),
    /**
     * The signature of each form as issued (migration 0019): a verification compares the presented one with it, so only
     * the content the hub issued verifies, whoever holds the key.
     */
    vcSignature: text('vc_signature').notNull(),
    sdSignature: text('sd_signature').notNull(),
    signerKid: text('signer_kid')
      .notNull()
      .references(() => licenceSigners.kid),
    statusList: integer('status_list')
      .notNull()
      .references(() => licenceStatusLists.id),
    statusIndex: integer('status_index').notNull(),
    previousIdentifier: text('previous_identifier'),
    supersededBy: text('superseded_by'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('licences_status_ck', sql`${t.status} in ('VALID', 'SUSPENDED', 'REVOKED', 'CANCELLED', 'WITHDRAWN', 'EXPIRED', 'SUPERSEDED')`),
    check('licences_holder_code_type_ck', sql`${t.holderCodeType} in ('ID_NUMBER', 'USCC')`),
    // idempotent issue: one licence per type + issuer + 证照编号 (and version)
    uniqueIndex('licences_number_uq').on(t.typeCode, t.issuerCode, t.number, t.version),
    uniqueIndex('licences_status_slot_uq').on(t.statusList, t.statusIndex),
    index('licences_holder_idx').on(t.holderCode, t.typeCode),
    index('licences_valid_until_idx').on(t.validUntil),
    index('licences_issuer_idx').on(t.issuerCode, t.createdAt),
  ],
);

/** 用证记录: who used which licence for which item and case (append-only). */
export const licenceUses = pgTable(
  'licence_uses',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    identifier: text('identifier').notNull(),
    holderCode: text('holder_code').notNull(),
    clientId: text('client_id').notNull(),
    department: text('department').notNull(),
    itemCode: text('item_code').notNull(),
    caseId: text('case_id'),
    operator: text('operator'),
    auditSeq: bigint('audit_seq', { mode: 'number' }),
    at: createdAt(),
  },
  (t) => [index('licence_uses_identifier_idx').on(t.identifier, t.clientId), index('licence_uses_holder_idx').on(t.holderCode, t.at)],
);

/**
 * A notice to an approval system that a licence it used was later suspended or revoked (listed for the client; its
 * department also gets a notification for the webhook).
 */
export const licenceUseNotices = pgTable(
  'licence_use_notices',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    clientId: text('client_id').notNull(),
    identifier: text('identifier').notNull(),
    status: text('status').notNull(),
    reason: text('reason'),
    /** the 事项 / 办件 it was used for */
    itemCode: text('item_code').notNull(),
    caseId: text('case_id'),
    changeSeq: bigint('change_seq', { mode: 'number' }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [uniqueIndex('licence_use_notices_once_uq').on(t.clientId, t.identifier, t.changeSeq, t.itemCode), index('licence_use_notices_client_idx').on(t.clientId, t.createdAt)],
);

/** A batch of issuances run by the job system: items stay here, the job carries only the batch id. */
export const licenceBatches = pgTable('licence_batches', {
  id: uuid('id').primaryKey().defaultRandom(),
  issuerCode: text('issuer_code').notNull(),
  clientId: text('client_id').notNull(),
  items: jsonb('items').$type<Record<string, unknown>[]>().notNull(),
  status: text('status', { enum: ['PENDING', 'RUNNING', 'DONE', 'FAILED'] }).notNull().default('PENDING'),
  issued: integer('issued').notNull().default(0),
  skipped: integer('skipped').notNull().default(0),
  errors: jsonb('errors').$type<{ index: number; code: string; field: string | null; message: string }[]>().notNull().default(sql`'[]'::jsonb`),
  createdAt: createdAt(),
  finishedAt: at('finished_at'),
});

/** 授权用证: a holder lets one client use its licences for one item (and case) until a time, without a grant. */
export const licenceAuthorisations = pgTable(
  'licence_authorisations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    holderCode: text('holder_code').notNull(),
    clientId: text('client_id').notNull(),
    itemCode: text('item_code').notNull(),
    caseId: text('case_id'),
    typeCode: text('type_code'),
    validUntil: at('valid_until').notNull(),
    createdAt: createdAt(),
    revokedAt: at('revoked_at'),
  },
  (t) => [index('licence_authorisations_holder_idx').on(t.holderCode, t.clientId)],
);

/** 亮证: a one-time, short-lived link (and QR code) that shows a licence's face; only the token's hash is kept. */
export const licencePresentations = pgTable('licence_presentations', {
  tokenHash: text('token_hash').primaryKey(),
  identifier: text('identifier').notNull(),
  holderCode: text('holder_code').notNull(),
  expiresAt: at('expires_at').notNull(),
  usedAt: at('used_at'),
  createdAt: createdAt(),
});

/** 异议: a holder objects to a field; the issuer corrects it by a new version or rejects it with a reason. */
export const licenceObjections = pgTable(
  'licence_objections',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    identifier: text('identifier').notNull(),
    holderCode: text('holder_code').notNull(),
    issuerCode: text('issuer_code').notNull(),
    field: text('field').notNull(),
    reason: text('reason').notNull(),
    status: text('status', { enum: ['PENDING', 'CORRECTED', 'REJECTED'] }).notNull().default('PENDING'),
    decisionReason: text('decision_reason'),
    newIdentifier: text('new_identifier'),
    decidedBy: text('decided_by'),
    createdAt: createdAt(),
    decidedAt: at('decided_at'),
  },
  (t) => [
    check('licence_objections_status_ck', sql`${t.status} in ('PENDING', 'CORRECTED', 'REJECTED')`),
    index('licence_objections_identifier_idx').on(t.identifier, t.status),
    index('licence_objections_issuer_idx').on(t.issuerCode, t.status),
  ],
);
