import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, jsonb, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { at, createdAt, updatedAt } from '../db/columns.ts';
import { departments } from '../directory/schema.ts';
import { BASE_RECORD_KINDS } from '../basedata/schema.ts';

export const ADAPTERS = ['http', 'file', 'sql'] as const;
export type AdapterKind = (typeof ADAPTERS)[number];

/**
 * A connector: source adapter + mapping + validation, owned by a department. `config` never holds a secret: it
 * names environment variables (`tokenEnv`, `secretEnv`, `urlEnv`) that hold them on the worker machines.
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
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [check('connectors_adapter_ck', sql`${t.adapter} in ('http', 'file', 'sql')`)],
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
