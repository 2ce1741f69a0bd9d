import crypto from 'node:crypto';
import { sql } from 'drizzle-orm';
import { arrayLiteral, rows, Statement, type Db } from '../db/index.ts';
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
 * the history in the same statement. Run it inside the batch's transaction, with the checkpoint. A record held by one
 * of `protectedConnectors` (another department's sources) is never overwritten: the caller quarantines those.
 */
export async function upsertBaseRecords(tx: Db, kind: BaseRecordKind, connectorId: string, retrievedAt: Date, records: IncomingRecord[], protectedConnectors: readonly string[] = []): Promise<UpsertCounts> {
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
          where b.content_hash <> excluded.content_hash${protectedConnectors.length ? sql` and b.connector_id <> all(${sql.param([...protectedConnectors])}::text[])` : sql``}
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

/** A record as a read that does not show its provenance needs it: what it holds, and which version that is. */
export interface RecordCore {
  kind: BaseRecordKind;
  key: string;
  subject: string;
  data: Record<string, unknown>;
  version: number;
}

export interface BaseRecordView extends RecordCore {
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
const ROW_HEAD = `b.key, b.subject, b.version, b.connector_id, b.source_id, b.flags,
              floor(extract(epoch from b.retrieved_at) * 1000), floor(extract(epoch from b.updated_at) * 1000)`;
/**
 * A read that does not show provenance takes the record's key and version alone before its data: the six columns of
 * provenance, and the numeric arithmetic that turns two instants into milliseconds, were most of what the database
 * spent on a row (100 persons' idNumber and name, in the server: 7.6 µs a person with them, 4.6 µs without).
 */
const BARE_HEAD = 'b.key, b.version';
const HEAD_LENGTH = { provenance: 8, bare: 2 } as const;
export type RowHead = keyof typeof HEAD_LENGTH;

const currentBy = (name: string, column: 'key' | 'subject', head: RowHead, data: string) =>
  new Statement<{ r: string }>(
    name,
    `select json_build_array(${head === 'bare' ? BARE_HEAD : ROW_HEAD}, ${data})::text as r
     from base_records b
     where b.kind = $1 and b.${column} = any($2::text[])`,
  );
const CURRENT = { key: currentBy('hub_current_by_key', 'key', 'provenance', 'b.data'), subject: currentBy('hub_current_by_subject', 'subject', 'provenance', 'b.data') };
const CURRENT_BARE = currentBy('hub_current_bare_by_key', 'key', 'bare', 'b.data');

/**
 * With a list of 信息项, a statement of its own that reads just their values out of each record, in that order: the
 * rest of the record is neither turned into text by the database nor parsed by the hub (100 persons' idNumber and
 * name: 0.71 ms on the server against 0.88 ms for whole records, and a quarter of the text). One per list and head,
 * made on first use, up to MAX_ITEM_LISTS; a list past those, or one holding a name that is not a plain identifier,
 * reads whole records.
 */
const ITEM_STATEMENTS = new Map<string, Statement<{ r: string }>>();
const MAX_ITEM_LISTS = 64;
const ITEM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function itemStatement(column: 'key' | 'subject', head: RowHead, items: readonly string[]): Statement<{ r: string }> | undefined {
  const key = `${column}:${head}:${items.join(',')}`;
  let st = ITEM_STATEMENTS.get(key);
  if (st) return st;
  if (ITEM_STATEMENTS.size >= MAX_ITEM_LISTS || items.length === 0 || !items.every((i) => ITEM_NAME.test(i))) return undefined;
  const name = `hub_current_${column}_${crypto.createHash('sha256').update(key).digest('hex').slice(0, 20)}`;
  // the names are plain identifiers (checked above), so they stand in the text as literals
  st = currentBy(name, column, head, items.map((i) => `b.data -> '${i}'`).join(', '));
  ITEM_STATEMENTS.set(key, st);
  return st;
}

/** persons and legal persons are keyed by their subject code; credit entries are found through the subject index */
const columnOf = (kind: BaseRecordKind): 'key' | 'subject' => (kind === 'credit' ? 'subject' : 'key');

/**
 * The list a current read of this kind takes on its own (its statement made now if need be), or undefined when such a
 * read takes whole records: an empty list, one past MAX_ITEM_LISTS, or one holding a name that is not a plain
 * identifier.
 */
export function itemsRead(kind: BaseRecordKind, items: readonly string[], head: RowHead = 'provenance'): readonly string[] | undefined {
  return itemStatement(columnOf(kind), head, items) ? items : undefined;
}

type CurrentRow = [string, string, number, string, string, string[], number, number, ...unknown[]];
type BareRow = [string, number, ...unknown[]];

function dataOf(row: unknown[], from: number, items: readonly string[] | undefined): Record<string, unknown> {
  if (!items) return row[from] as Record<string, unknown>;
  const data: Record<string, unknown> = {};
  for (let i = 0; i < items.length; i++) data[items[i]!] = row[from + i] ?? null;
  return data;
}

function currentView(kind: BaseRecordKind, text: string, items: readonly string[] | undefined): BaseRecordView {
  const row = JSON.parse(text) as CurrentRow;
  const data = dataOf(row, HEAD_LENGTH.provenance, items);
  return { kind, key: row[0], subject: row[1], data, version: row[2], connectorId: row[3], sourceId: row[4], flags: row[5], retrievedAt: new Date(row[6]), recordedAt: new Date(row[7]) };
}

/**
 * The records of some subjects as the hub holds them now, or as it held them at `asOf` (the latest version recorded
 * at or before that instant). One query for the whole batch. With `items` (top-level keys of the data), the data
 * holds just those, null where a record lacks one; without, all of it.
 */
export async function recordsBySubject(db: Db, kind: BaseRecordKind, subjects: readonly string[], asOf?: Date, items?: readonly string[]): Promise<BaseRecordView[]> {
  if (subjects.length === 0) return [];
  const list = [...subjects];
  const column = columnOf(kind);
  if (!asOf) {
    const st = items && itemStatement(column, 'provenance', items);
    return (await (st ?? CURRENT[column]).run(db, [kind, arrayLiteral(list)])).map((row) => currentView(kind, row.r, st ? items : undefined));
  }
  const found = await rows(
    db,
    sql`select distinct on (key) ${VIEW_COLUMNS} from base_record_history
        where kind = ${kind} and ${sql.raw(column)} = any(${sql.param(list)}::text[]) and recorded_at <= ${asOf.toISOString()}::timestamptz
        order by key, version desc`,
  );
  return found.map(toView);
}

/**
 * The current records of some subjects without their provenance (a read that does not show it): data as
 * recordsBySubject gives it, with key and version. Persons and legal persons are found by their key, which is their
 * subject code; a credit entry's subject is its own column.
 */
export async function currentCores(db: Db, kind: BaseRecordKind, subjects: readonly string[], items?: readonly string[]): Promise<RecordCore[]> {
  if (subjects.length === 0) return [];
  const column = columnOf(kind);
  if (column === 'subject') return recordsBySubject(db, kind, subjects, undefined, items);
  const st = items && itemStatement(column, 'bare', items);
  const found = await (st ?? CURRENT_BARE).run(db, [kind, arrayLiteral([...subjects])]);
  const lean = st ? items : undefined;
  return found.map(({ r }) => {
    const row = JSON.parse(r) as BareRow;
    return { kind, key: row[0], subject: row[0], data: dataOf(row, HEAD_LENGTH.bare, lean), version: row[1] };
  });
}

/** Every version of one record, oldest first: what it was before each change. */
export async function recordHistory(db: Db, kind: BaseRecordKind, key: string): Promise<BaseRecordView[]> {
  const found = await rows(db, sql`select ${VIEW_COLUMNS} from base_record_history where kind = ${kind} and key = ${key} order by version`);
  return found.map(toView);
}
