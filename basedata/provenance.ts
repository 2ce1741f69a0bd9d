import { inArray } from 'drizzle-orm';
import { connectors } from '../connectors/schema.ts';
import type { Db } from '../db/index.ts';
import type { BaseRecordView, RecordCore } from './store.ts';

/** Which department each connector pulls for (the source of a record), remembered per database handle. */
const connectorDepartments = new WeakMap<object, Map<string, string>>();

export async function departmentsOf(db: Db, records: BaseRecordView[]): Promise<Map<string, string>> {
  let known = connectorDepartments.get(db);
  if (!known) connectorDepartments.set(db, (known = new Map()));
  const missing = [...new Set(records.map((r) => r.connectorId))].filter((id) => !known.has(id));
  if (missing.length) {
    const rows = await db.select({ id: connectors.id, dept: connectors.departmentCode }).from(connectors).where(inArray(connectors.id, missing));
    for (const r of rows) known.set(r.id, r.dept);
  }
  return known;
}

/** Records read with their provenance (a read that shows it asks the store for it): an internal error otherwise. */
export function withProvenance(records: readonly RecordCore[]): BaseRecordView[] {
  for (const r of records) if (!('recordedAt' in r)) throw new Error(`record ${r.kind}/${r.version} was read without its provenance`);
  return records as BaseRecordView[];
}

/** 来源: where a record came from and which version of it the hub held. */
export function provenance(r: BaseRecordView, resourceCode: string, depts: Map<string, string>) {
  return {
    resourceCode,
    sourceDepartment: depts.get(r.connectorId) ?? null,
    connector: r.connectorId,
    sourceRecordId: r.sourceId,
    retrievedAt: r.retrievedAt.toISOString(),
    version: r.version,
    recordedAt: r.recordedAt.toISOString(),
  };
}

