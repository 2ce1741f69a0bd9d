import { bigint, index, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { at } from '../db/columns.ts';

/**
 * 审计日志: one row per access or administrative act, append-only. The hub's role may only INSERT and SELECT here
 * (see the role migration); `seq` orders the log, `hash` chains each entry to the one before it (SHA-256 of the
 * previous hash and the entry's canonical form), and checkpoints sign Merkle tree heads over the hashes.
 */
export const auditEntries = pgTable(
  'audit_entries',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
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
    index('audit_entries_subject_idx').on(t.subject, t.seq),
    index('audit_entries_client_idx').on(t.clientId, t.seq),
    // append-only and in time order: a BRIN index serves time ranges at a fraction of a B-tree's cost per insert
    index('audit_entries_at_brin').using('brin', t.at),
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
