import { eq, sql, type SQL } from 'drizzle-orm';
import { bigint, index, integer, jsonb, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { at } from '../db/columns.ts';

/**
 * 审计日志: one row per access or administrative act, append-only. The hub's role may only INSERT and SELECT here
 * (see the role migration); `seq` orders the log, `hash` chains each entry to the one before it (SHA-256 of the
 * previous hash and the entry's canonical form), and checkpoints sign Merkle tree heads over the hashes.
 *
 * Partitioned by month of `at` (Asia/Shanghai) on both drivers (migration 0009): the primary key must hold the
 * partition key, so `seq` alone is not unique here; `audit_batches` arbitrates the chain instead. The writer keeps
 * `at` non-decreasing along `seq`, so each month's partition holds one contiguous run of the chain.
 */
export const auditEntries = pgTable(
  'audit_entries',
  {
    seq: bigint('seq', { mode: 'number' }).notNull(),
    at: at('at').notNull(),
    clientId: text('client_id'),
    department: text('department'),
    operator: text('operator'),
    itemCode: text('item_code'),
    caseId: text('case_id'),
    operation: text('operation').notNull(),
    resourceCode: text('resource_code'),
    /** the 公民身份号码 / USCC read (stored whole for auditors; masked in logs and exports for people) */
    subject: text('subject'),
    fields: text('fields').array(),
    /** RETURNED, NOT_FOUND (recorded too), REFUSED, or DONE for administrative acts */
    outcome: text('outcome').notNull(),
    reason: text('reason'),
    /** a read hidden from the holder's own view, and why */
    withholdBasis: text('withhold_basis'),
    requestId: text('request_id'),
    details: jsonb('details').$type<Record<string, unknown>>(),
    prevHash: text('prev_hash').notNull(),
    hash: text('hash').notNull(),
  },
  (t) => [
    primaryKey({ name: 'audit_entries_pkey', columns: [t.seq, t.at] }),
    // GIN over the 64-bit hashes of the subject and the case id (migrations 0015, 0017): new entries go to its pending
    // list and are merged in bulk, where a B-tree took each at a random leaf; query through subjectIs and caseIs,
    // which match this expression
    index('audit_entries_keys_idx').using('gin', sql`(array[hashtextextended(${t.subject}, 0), hashtextextended('case:' || ${t.caseId}, 0)])`),
    // the other filters (client, department, resource, item code, operation, outcome) go through audit_runs
    // append-only and in time order: a BRIN index serves time ranges at a fraction of a B-tree's cost per insert
    index('audit_entries_at_brin').using('brin', t.at),
  ],
);

/** The expression audit_entries_keys_idx is built on: a query that means to use the index says it the same way. */
const ENTRY_KEYS = sql`array[hashtextextended(${auditEntries.subject}, 0), hashtextextended('case:' || ${auditEntries.caseId}, 0)]`;

/**
 * The entries about one subject, as audit_entries_keys_idx finds them: its hash (one of the index's keys) and, against
 * a collision, the subject itself. They come as a bitmap, in no order: a query sorts them (by seq) itself.
 */
export function subjectIs(subject: string): SQL {
  return sql`${ENTRY_KEYS} @> array[hashtextextended(${subject}::text, 0)] and ${eq(auditEntries.subject, subject)}`;
}

/** The entries of one case (办件编号), as audit_entries_keys_idx finds them, as subjectIs does a subject's. */
export function caseIs(caseId: string): SQL {
  return sql`${ENTRY_KEYS} @> array[hashtextextended('case:' || ${caseId}::text, 0)] and ${eq(auditEntries.caseId, caseId)}`;
}

/** The columns a run's tags name, each by its letter before the value (a run's tags: 'r:1-01-001/000001' …). */
const RUN_TAG_LETTERS = { department: 'd', resourceCode: 'r', itemCode: 'i', operation: 'o', outcome: 'x' } as const;
export type RunTagColumn = keyof typeof RUN_TAG_LETTERS;

/** The columns a run's tags name, in one order for the writer, the queries and verification alike. */
export const RUN_TAG_COLUMNS = Object.keys(RUN_TAG_LETTERS) as RunTagColumn[];

export function runTag(column: RunTagColumn, value: string): string {
  return `${RUN_TAG_LETTERS[column]}:${value}`;
}

/** An entry's run tags: one for each tagged column that holds a value. */
export function entryTags(e: { readonly [K in RunTagColumn]: string | null }): string[] {
  const tags: string[] = [];
  for (const column of RUN_TAG_COLUMNS) {
    const value = e[column];
    if (value !== null) tags.push(runTag(column, value));
  }
  return tags;
}

/**
 * A run: consecutive entries of one batch written for one client, or for none (a read of 100 subjects is one, and
 * under load so is a batch of 2,000 entries from one approval system); every entry is in exactly one. Its tags are
 * the distinct departments, resources, item codes, operations and outcomes of its entries (runTag). The writer
 * inserts a batch's runs in the statement that inserts its entries (migration 0017 derived those of the entries
 * before it); a query by client or by tag walks the runs newest first and reads their entries by seq range and time
 * (every entry of a batch has the batch's time), through the primary key.
 */
export const auditRuns = pgTable(
  'audit_runs',
  {
    firstSeq: bigint('first_seq', { mode: 'number' }).notNull(),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
    at: at('at').notNull(),
    clientId: text('client_id'),
    tags: text('tags').array().notNull(),
  },
  (t) => [
    index('audit_runs_client_idx').on(t.clientId, t.lastSeq),
    // hub audit verify reads the runs alongside the entries, in order
    index('audit_runs_first_seq_idx').on(t.firstSeq, t.lastSeq),
    // without a pending list: a run is one row a batch and client, and a query would read the whole list each time
    index('audit_runs_tags_idx').using('gin', t.tags).with({ fastupdate: false }),
  ],
);

/** Signed tree heads (RFC 6962 style) over the entries' hashes, newest last. */
export const auditCheckpoints = pgTable('audit_checkpoints', {
  treeSize: bigint('tree_size', { mode: 'number' }).primaryKey(),
  rootHash: text('root_hash').notNull(),
  /** the hash of the last entry covered: the chain and the tree agree on where they end */
  lastHash: text('last_hash').notNull(),
  /** the compact range of the tree (perfect subtree roots, left to right), so the next head hashes only new leaves */
  frontier: jsonb('frontier').$type<string[]>().notNull(),
  /** a JWS (ES256, the hub's audit key) over { treeSize, rootHash, lastHash, timestamp } */
  signature: text('signature').notNull(),
  kid: text('kid').notNull(),
  createdAt: at('created_at').notNull(),
});

/**
 * One row per appended batch, claiming the entry it chains onto (`prev_seq`, 0 for the first). Two writers that
 * chained onto the same head collide here, in the same statement as their entries, and the loser chains again:
 * one chain across every process, whatever the partitions.
 */
export const auditBatches = pgTable('audit_batches', {
  prevSeq: bigint('prev_seq', { mode: 'number' }).primaryKey(),
  lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
  at: at('at').notNull(),
});

/**
 * 归档: a month of the log written out as a JSONL file whose first line links to the previous archive. A partition
 * is detached only once its archive is recorded here and a signed checkpoint covers its last entry; `frontier`
 * (the tree's compact range after `lastSeq`) and `lastHash` let the chain and the tree be recomputed from there on.
 */
export const auditArchives = pgTable('audit_archives', {
  partition: text('partition').primaryKey(),
  /** first instant of the month (Asia/Shanghai), inclusive, and of the next month, exclusive */
  fromAt: at('from_at').notNull(),
  toAt: at('to_at').notNull(),
  firstSeq: bigint('first_seq', { mode: 'number' }).notNull(),
  lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
  entries: integer('entries').notNull(),
  /** the hash of the entry before the first (the previous archive's last hash, or the genesis hash) */
  prevHash: text('prev_hash').notNull(),
  lastHash: text('last_hash').notNull(),
  frontier: jsonb('frontier').$type<string[]>().notNull(),
  /** SHA-256 of the archive file as written */
  sha256: text('sha256').notNull(),
  /** where the file was written (informational: archives move to cold storage) */
  location: text('location').notNull(),
  createdAt: at('created_at').notNull(),
  detachedAt: at('detached_at'),
});
