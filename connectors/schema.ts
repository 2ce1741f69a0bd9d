import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { at, createdAt, updatedAt } from '../db/columns.ts';
import { departments } from '../directory/schema.ts';
import { BASE_RECORD_KINDS } from '../basedata/schema.ts';

export const ADAPTERS = ['http', 'file', 'sql'] as const;
export type AdapterKind = (typeof ADAPTERS)[number];

export const CONNECTOR_STATUSES = ['DRAFT', 'APPROVED'] as const;
export type ConnectorStatus = (typeof CONNECTOR_STATUSES)[number];

/**
 * A connector: source adapter + mapping + validation, owned by a department. `config` never holds a secret: it
 * names a source secret of its department (`secret`), sealed in source_secrets. It runs only in the configuration an
 * admin approved (前置机登记, four eyes): `approved_digest` is the SHA-256 of that configuration, any change returns
 * it to DRAFT, and no client that changed it since its last approval may approve it.
 */
export const connectors = pgTable(
  'connectors',
  {
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    departmentCode: text('department_code')
      .notNull()
      .references(() => departments.code),
    kind: text('kind', { enum: BASE_RECORD_KINDS }).notNull(),
    adapter: text('adapter', { enum: ADAPTERS }).notNull(),
    config: jsonb('config').$type<Record<string, unknown>>().notNull(),
    /** hub field → { from: source field, transform?, values? } */
    mapping: jsonb('mapping').$type<Record<string, unknown>>().notNull(),
    /** cron expression for the sync schedule (Asia/Shanghai), or null for manual runs only */
    schedule: text('schedule'),
    /** an authoritative source's pilot-era codes that fail their check are accepted, flagged */
    authoritative: boolean('authoritative').notNull().default(false),
    enabled: boolean('enabled').notNull().default(true),
    status: text('status', { enum: CONNECTOR_STATUSES }).notNull().default('DRAFT'),
    /** the clients that created or changed it since it was last approved: none of them may approve it (four eyes) */
    draftedBy: text('drafted_by').array().notNull().default(sql`'{}'::text[]`),
    approvedBy: text('approved_by'),
    approvedAt: at('approved_at'),
    /** SHA-256 of the approved configuration (configurationDigest): a run checks it against the row it reads */
    approvedDigest: text('approved_digest'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check('connectors_adapter_ck', sql`${t.adapter} in ('http', 'file', 'sql')`), check('connectors_status_ck', sql`${t.status} in ('DRAFT', 'APPROVED')`)],
);

/**
 * A department's source secrets (bearer tokens, API keys, HMAC keys, database URLs), write-only: sealed under the
 * master key with the department, name and version as associated data, never readable back through any API. A
 * connector names one of its own department's; setting it again rotates it (version + 1).
 */
export const sourceSecrets = pgTable(
  'source_secrets',
  {
    departmentCode: text('department_code')
      .notNull()
      .references(() => departments.code),
    name: text('name').notNull(),
    version: integer('version').notNull(),
    valueEnc: text('value_enc').notNull(),
    updatedBy: text('updated_by').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [primaryKey({ columns: [t.departmentCode, t.name] })],
);

/**
 * 权威来源: departments the operator designated as sources of a base kind beside the provider of its base resource
 * (人口 → 公安 …). A designation withdrawn stays as a row, with when and why.
 */
export const baseSources = pgTable(
  'base_sources',
  {
    kind: text('kind', { enum: BASE_RECORD_KINDS }).notNull(),
    departmentCode: text('department_code')
      .notNull()
      .references(() => departments.code),
    reason: text('reason').notNull(),
    designatedBy: text('designated_by').notNull(),
    designatedAt: at('designated_at').notNull().default(sql`now()`),
    withdrawnAt: at('withdrawn_at'),
  },
  (t) => [primaryKey({ columns: [t.kind, t.departmentCode] })],
);

/** Where a connector stands: its checkpoint (cursor) and its circuit breaker. */
export const connectorState = pgTable('connector_state', {
  connectorId: text('connector_id')
    .primaryKey()
    .references(() => connectors.id),
  cursor: jsonb('cursor').$type<Record<string, unknown> | null>(),
  /** set when the last run committed its last batch: a full pass has completed */
  lastCompletedAt: at('last_completed_at'),
  circuit: text('circuit', { enum: ['CLOSED', 'OPEN'] }).notNull().default('CLOSED'),
  circuitOpenedAt: at('circuit_opened_at'),
  consecutiveFailures: integer('consecutive_failures').notNull().default(0),
  updatedAt: updatedAt(),
});

export const RUN_STATUSES = ['RUNNING', 'SUCCEEDED', 'FAILED'] as const;

/** One sync run and its report. */
export const syncRuns = pgTable(
  'sync_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    connectorId: text('connector_id')
      .notNull()
      .references(() => connectors.id),
    mode: text('mode', { enum: ['INCREMENTAL', 'FULL'] }).notNull(),
    status: text('status', { enum: RUN_STATUSES }).notNull(),
    trigger: text('trigger').notNull(),
    worker: text('worker').notNull(),
    startedAt: at('started_at').notNull().default(sql`now()`),
    heartbeatAt: at('heartbeat_at').notNull().default(sql`now()`),
    finishedAt: at('finished_at'),
    fetched: integer('fetched').notNull().default(0),
    inserted: integer('inserted').notNull().default(0),
    updated: integer('updated').notNull().default(0),
    unchanged: integer('unchanged').notNull().default(0),
    quarantined: jsonb('quarantined').$type<Record<string, number>>().notNull().default(sql`'{}'::jsonb`),
    batches: integer('batches').notNull().default(0),
    error: text('error'),
    cursorStart: jsonb('cursor_start').$type<Record<string, unknown> | null>(),
    cursorEnd: jsonb('cursor_end').$type<Record<string, unknown> | null>(),
  },
  (t) => [index('sync_runs_connector_idx').on(t.connectorId, t.startedAt), check('sync_runs_status_ck', sql`${t.status} in ('RUNNING', 'SUCCEEDED', 'FAILED')`)],
);

/** 隔离区: source records that failed validation, with a reason code; resolved when the source sends them fixed. */
export const quarantine = pgTable(
  'quarantine',
  {
    connectorId: text('connector_id')
      .notNull()
      .references(() => connectors.id),
    sourceId: text('source_id').notNull(),
    reason: text('reason').notNull(),
    detail: text('detail').notNull(),
    record: jsonb('record').$type<Record<string, unknown>>().notNull(),
    firstSeenAt: at('first_seen_at').notNull().default(sql`now()`),
    lastSeenAt: at('last_seen_at').notNull().default(sql`now()`),
    attempts: integer('attempts').notNull().default(1),
    resolvedAt: at('resolved_at'),
  },
  (t) => [primaryKey({ columns: [t.connectorId, t.sourceId] }), index('quarantine_open_idx').on(t.connectorId, t.reason).where(sql`${t.resolvedAt} is null`)],
);
