import { sql } from 'drizzle-orm';
import { check, index, integer, jsonb, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { at } from '../db/columns.ts';

export const BASE_RECORD_KINDS = ['population', 'legal_person', 'credit'] as const;
export type BaseRecordKind = (typeof BASE_RECORD_KINDS)[number];

/**
 * The shared base data (人口, 法人, 公共信用): one row per record, the version in force. `subject` is the code a
 * lookup starts from (公民身份号码, 统一社会信用代码, or the credit entry's 主体代码); `key` identifies the record
 * (the same code for persons and legal persons, the source's entry id for credit entries). Deaths, 注销 and 信用修复
 * are states in `data`, never deletions.
 */
export const baseRecords = pgTable(
  'base_records',
  {
    kind: text('kind', { enum: BASE_RECORD_KINDS }).notNull(),
    key: text('key').notNull(),
    subject: text('subject').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    /** SHA-256 (hex) of the canonical data: an unchanged record is recognised and not rewritten */
    contentHash: text('content_hash').notNull(),
    version: integer('version').notNull(),
    connectorId: text('connector_id').notNull(),
    sourceId: text('source_id').notNull(),
    /** flags such as PILOT_CODE (a pilot-era USCC failing its check, accepted from an authoritative source) */
    flags: text('flags').array().notNull().default(sql`'{}'::text[]`),
    retrievedAt: at('retrieved_at').notNull(),
    updatedAt: at('updated_at').notNull().default(sql`now()`),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.key] }),
    // only credit entries are looked up by a subject other than their key (see the history table)
    index('base_records_credit_subject_idx').on(t.subject).where(sql`${t.kind} = 'credit'`),
    check('base_records_kind_ck', sql`${t.kind} in ('population', 'legal_person', 'credit')`),
  ],
);

/**
 * Every version of every record, append-only: the current one too. `recordedAt` is when the hub came to hold it, so
 * "what did the hub hold on date D" is the latest version recorded at or before D.
 */
export const baseRecordHistory = pgTable(
  'base_record_history',
  {
    kind: text('kind', { enum: BASE_RECORD_KINDS }).notNull(),
    key: text('key').notNull(),
    version: integer('version').notNull(),
    subject: text('subject').notNull(),
    data: jsonb('data').$type<Record<string, unknown>>().notNull(),
    contentHash: text('content_hash').notNull(),
    connectorId: text('connector_id').notNull(),
    sourceId: text('source_id').notNull(),
    flags: text('flags').array().notNull().default(sql`'{}'::text[]`),
    retrievedAt: at('retrieved_at').notNull(),
    recordedAt: at('recorded_at').notNull().default(sql`now()`),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.key, t.version] }),
    // Persons and legal persons are keyed by their subject code, so the primary key serves their asOf lookups; only
    // credit entries (keyed by entry id) need a subject index, and the other kinds do not pay for one on every write.
    index('base_record_history_credit_subject_idx').on(t.subject, t.recordedAt).where(sql`${t.kind} = 'credit'`),
  ],
);
