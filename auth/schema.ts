import { sql } from 'drizzle-orm';
import { check, index, jsonb, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { at, createdAt, updatedAt } from '../db/columns.ts';
import { departments } from '../directory/schema.ts';

export const CLIENT_ROLES = ['consumer', 'provider', 'issuer', 'auditor', 'admin'] as const;
export type ClientRole = (typeof CLIENT_ROLES)[number];

/** A registered client system (审批系统, 部门系统, an auditor's console), authenticated by private_key_jwt. */
export const clients = pgTable(
  'clients',
  {
    clientId: text('client_id').primaryKey(),
    name: text('name').notNull(),
    departmentCode: text('department_code')
      .notNull()
      .references(() => departments.code),
    roles: text('roles').array().notNull(),
    /** permissions beyond the roles: 'withhold' may record a read hidden from the holder's own view (with its basis) */
    permissions: text('permissions').array().notNull().default(sql`'{}'::text[]`),
    status: text('status', { enum: ['active', 'disabled'] }).notNull().default('active'),
    disabledAt: at('disabled_at'),
    disabledReason: text('disabled_reason'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('clients_status_ck', sql`${t.status} in ('active', 'disabled')`),
    check('clients_permissions_ck', sql`${t.permissions} <@ array['withhold']::text[]`),
    check('clients_roles_ck', sql`${t.roles} <@ array['consumer','provider','issuer','auditor','admin']::text[] and cardinality(${t.roles}) > 0`),
    index('clients_department_idx').on(t.departmentCode),
  ],
);

/** A client's public keys (JWK). Several may be active at once so a client can replace its key without downtime. */
export const clientKeys = pgTable(
  'client_keys',
  {
    clientId: text('client_id')
      .notNull()
      .references(() => clients.clientId),
    kid: text('kid').notNull(),
    jwk: jsonb('jwk').$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    revokedAt: at('revoked_at'),
  },
  (t) => [primaryKey({ columns: [t.clientId, t.kid] })],
);

/**
 * Used client-assertion ids. The primary key makes a jti single-use across every hub process sharing the
 * database; rows are purged once the assertion they came from has expired.
 */
export const oauthAssertions = pgTable(
  'oauth_assertions',
  {
    clientId: text('client_id').notNull(),
    jti: text('jti').notNull(),
    expiresAt: at('expires_at').notNull(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.clientId, t.jti] }), index('oauth_assertions_expires_idx').on(t.expiresAt)],
);

export const HUB_KEY_PURPOSES = ['token', 'audit', 'receipt'] as const;
export type HubKeyPurpose = (typeof HUB_KEY_PURPOSES)[number];

/**
 * The hub's own signing keys. The private half is AES-256-GCM encrypted under HUB_MASTER_KEY so every process on
 * the same database shares it. The newest active key of a purpose signs; older ones verify until `verifyUntil`.
 */
export const hubKeys = pgTable(
  'hub_keys',
  {
    kid: text('kid').primaryKey(),
    purpose: text('purpose', { enum: HUB_KEY_PURPOSES }).notNull(),
    alg: text('alg').notNull(),
    publicJwk: jsonb('public_jwk').$type<Record<string, unknown>>().notNull(),
    privateEnc: text('private_enc').notNull(),
    createdAt: createdAt(),
    /** Set when a newer key takes over signing. */
    supersededAt: at('superseded_at'),
    /** After this instant the key verifies nothing and leaves the JWKS; null = no end yet. */
    verifyUntil: at('verify_until'),
  },
  (t) => [
    check('hub_keys_purpose_ck', sql`${t.purpose} in ('token', 'audit', 'receipt')`),
    index('hub_keys_purpose_idx').on(t.purpose, t.createdAt),
  ],
);

/** Small hub-wide settings, e.g. the master key check value. */
export const hubSettings = pgTable('hub_settings', {
  key: text('key').primaryKey(),
  value: jsonb('value').notNull(),
  updatedAt: updatedAt(),
});
