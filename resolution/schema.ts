import { bigint, index, integer, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { createdAt } from '../db/columns.ts';

/**
 * 减证便民 measured: one row per resolution of an item's materials (a bundle's items each get theirs, naming the
 * bundle, and the bundle one of its own, with item_code null, counting its distinct materials), with how many
 * materials each outcome settled. The share no longer submitted over time is read from here.
 */
export const materialResolutions = pgTable(
  'material_resolutions',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    at: createdAt(),
    clientId: text('client_id').notNull(),
    itemCode: text('item_code'),
    bundleCode: text('bundle_code'),
    auditSeq: bigint('audit_seq', { mode: 'number' }),
    materials: integer('materials').notNull(),
    byLicence: integer('by_licence').notNull(),
    byData: integer('by_data').notNull(),
    /** 告知承诺: a signed commitment replaces the material */
    byCommitment: integer('by_commitment').notNull(),
    /** 容缺: accepted without it, due later */
    deferred: integer('deferred').notNull(),
    mustSubmit: integer('must_submit').notNull(),
  },
  (t) => [index('material_resolutions_item_idx').on(t.itemCode, t.at), index('material_resolutions_bundle_idx').on(t.bundleCode, t.at)],
);
