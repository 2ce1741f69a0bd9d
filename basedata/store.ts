import crypto from 'node:crypto';
import { sql } from 'drizzle-orm';
import { rows, Statement, type Db } from '../db/index.ts';
import type { BaseRecordKind } from './schema.ts';

/** A validated record on its way into the base data. */
export interface IncomingRecord {
  key: string;
  subject: string;
  data: Record<string, unknown>;
  sourceId: string;
  flags: string[];
}

export interface UpsertCounts {
  inserted: number;
  updated: number;
  unchanged: number;
}

/**
 * The record's canonical JSON: records are built by the mapping in a fixed key order, and nested objects are sorted
 * here too, so the same content always gives the same text, and the same SHA-256 (its content hash).
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value as Record<string, unknown>).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/**
 * Upserts one batch in a single statement: new records are inserted at version 1, changed ones (their content hash
 * differs) get version + 1, unchanged ones are not touched at all; every inserted or changed version is appended to
 * the history in the same statement. Run it inside the batch's transaction, with the checkpoint.
 */
export async function upsertBaseRecords(tx: Db, kind: BaseRecordKind, connectorId: string, retrievedAt: Date, records: IncomingRecord[]): Promise<UpsertCounts> {
  if (records.length === 0) return { inserted: 0, updated: 0, unchanged: 0 };
  // One statement cannot update a row twice: the last occurrence of a key in a batch wins, as it would one by one.
  const byKey = new Map<string, IncomingRecord>();
  for (const r of records) byKey.set(r.key, r);
  const batch = [...byKey.values()];
  const keys: string[] = [];
  const subjects: string[] = [];
  const datas: string[] = [];
  const hashes: string[] = [];
  const sourceIds: string[] = [];
  const flags: string[] = [];
  for (const r of batch) {
    keys.push(r.key);
    subjects.push(r.subject);
    const json = canonicalJson(r.data);
    datas.push(json);
    hashes.push(crypto.createHash('sha256').update(json).digest('hex'));
    sourceIds.push(r.sourceId);
    flags.push(r.flags.join(','));
  }
  const [counts] = await rows<{ inserted: number; updated: number }>(
    tx,
    sql`with input as (
          select * from unnest(${sql.param(keys)}::text[], ${sql.param(subjects)}::text[], ${sql.param(datas)}::text[], ${sql.param(hashes)}::text[], ${sql.param(sourceIds)}::text[], ${sql.param(flags)}::text[])
            as t(key, subject, data, content_hash, source_id, flags)
        ), changed as (
          insert into base_records as b (kind, key, subject, data, content_hash, version, connector_id, source_id, flags, retrieved_at, updated_at)
          select ${kind}, key, subject, data::jsonb, content_hash, 1, ${connectorId}, source_id,
                 case when flags = '' then '{}'::text[] else string_to_array(flags, ',') end, ${retrievedAt.toISOString()}::timestamptz, now()
          from input
          on conflict (kind, key) do update set
            subject = excluded.subject, data = excluded.data, content_hash = excluded.content_hash, version = b.version + 1,
            connector_id = excluded.connector_id, source_id = excluded.source_id, flags = excluded.flags,
            retrieved_at = excluded.retrieved_at, updated_at = now()
          where b.content_hash <> excluded.content_hash
          returning b.kind, b.key, b.version, b.subject, b.data, b.content_hash, b.connector_id, b.source_id, b.flags, b.retrieved_at
        ), history as (
          insert into base_record_history (kind, key, version, subject, data, content_hash, connector_id, source_id, flags, retrieved_at)
          select kind, key, version, subject, data, content_hash, connector_id, source_id, flags, retrieved_at from changed
          returning version
        )
        select (count(*) filter (where version = 1))::int8 as inserted, (count(*) filter (where version > 1))::int8 as updated from history`,
  );
  const inserted = counts?.inserted ?? 0;
  const updated = counts?.updated ?? 0;
  return { inserted, updated, unchanged: records.length - inserted - updated };
}

export interface BaseRecordView {
  kind: BaseRecordKind;
  key: string;
  subject: string;
  data: Record<string, unknown>;
  version: number;
  connectorId: string;
  sourceId: string;
  flags: string[];
  retrievedAt: Date;
  /** when the hub came to hold this version */
  recordedAt: Date;
}

const VIEW_COLUMNS = sql`kind, key, subject, data, version, connector_id as "connectorId", source_id as "sourceId", flags,
  retrieved_at as "retrievedAt", recorded_at as "recordedAt"`;

function toView(r: Record<string, unknown>): BaseRecordView {
  return { ...(r as unknown as BaseRecordView), retrievedAt: new Date(r.retrievedAt as string), recordedAt: new Date(r.recordedAt as string) };
}

// updated_at is set in the statement that appends the version to the history, so it is that version's recorded_at
// (one transaction, one now()): no join needed. Each row comes as one JSON text, parsed once (no per-column type
// parsing, no date parsing: instants as epoch milliseconds, cut to the millisecond as the driver's dates are).
const currentBy = (column: 'key' | 'subject') =>
  new Statement<{ r: string }>(
    `hub_current_by_${column}`,
    `select json_build_array(b.key, b.subject, b.version, b.connector_id, b.source_id, b.flags,
              floor(extract(epoch from b.retrieved_at) * 1000), floor(extract(epoch from b.updated_at) * 1000), b.data)::text as r
     from base_records b
     where b.kind = $1 and b.${column} = any($2::text[])`,
  );
const CURRENT = { key: currentBy('key'), subject: currentBy('subject') };

type CurrentRow = [string, string, number, string, string, string[], number, number, Record<string, unknown>];

function currentView(kind: BaseRecordKind, text: string): BaseRecordView {
  const [key, subject, version, connectorId, sourceId, flags, retrievedAt, recordedAt, data] = JSON.parse(text) as CurrentRow;
  return { kind, key, subject, data, version, connectorId, sourceId, flags, retrievedAt: new Date(retrievedAt), recordedAt: new Date(recordedAt) };
}

/**
 * The records of some subjects as the hub holds them now, or as it held them at `asOf` (the latest version recorded
 * at or before that instant). One query for the whole batch.
 */
export async function recordsBySubject(db: Db, kind: BaseRecordKind, subjects: readonly string[], asOf?: Date): Promise<BaseRecordView[]> {
  if (subjects.length === 0) return [];
  const list = [...subjects];
  // persons and legal persons are keyed by their subject code; credit entries are found through the subject index
  const column = kind === 'credit' ? 'subject' : 'key';
  if (!asOf) return (await CURRENT[column].run(db, [kind, list])).map((row) => currentView(kind, row.r));
  const found = await rows(
    db,
    sql`select distinct on (key) ${VIEW_COLUMNS} from base_record_history
        where kind = ${kind} and ${sql.raw(column)} = any(${sql.param(list)}::text[]) and recorded_at <= ${asOf.toISOString()}::timestamptz
        order by key, version desc`,
  );
  return found.map(toView);
}

/** Every version of one record, oldest first: what it was before each change. */
export async function recordHistory(db: Db, kind: BaseRecordKind, key: string): Promise<BaseRecordView[]> {
  const found = await rows(db, sql`select ${VIEW_COLUMNS} from base_record_history where kind = ${kind} and key = ${key} order by version`);
  return found.map(toView);
}
