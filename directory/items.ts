import { and, asc, eq, gt, inArray, sql, type SQL } from 'drizzle-orm';
import { recordAct } from '../audit/acts.ts';
import { actorOf, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
import { notify, type Db } from '../db/index.ts';
import { decodeCursor, RESOURCE_CODE, termConditions, type Page } from './resources.ts';
import { bundleItems, bundles, departments, materials, serviceItems, type MaterialSource } from './schema.ts';

/** Caches of registered items listen here. */
export const ITEMS_CHANNEL = 'hub_items';

export type ServiceItem = typeof serviceItems.$inferSelect;
export type Material = typeof materials.$inferSelect;
export type Bundle = typeof bundles.$inferSelect;

/** 事项编码: letters, digits, dots and dashes, as the provincial item catalogues print them. */
export const ITEM_CODE = /^[0-9A-Za-z][0-9A-Za-z.\-_]{2,63}$/;
/** 电子证照类型代码: the defining body's USCC + a 3-character sequence (GB/T 36904). */
const LICENCE_TYPE_CODE = /^[0-9A-HJ-NPQRTUWXY]{18}[0-9A-Z]{3}$/;

export interface MaterialInput {
  code: string;
  name: string;
  sources: MaterialSource[];
  tolerance?: 'NONE' | 'RONGQUE' | 'COMMITMENT' | null;
  toleranceDays?: number | null;
  commitmentText?: string | null;
}

export interface ServiceItemInput {
  code: string;
  name: string;
  departmentCode: string;
  measureCodes?: string[] | null;
  materials: MaterialInput[];
}

function validateSources(sources: MaterialSource[], at: string): MaterialSource[] {
  if (!Array.isArray(sources) || sources.length === 0) throw badInput(at, 'a material lists at least one source (LICENCE, DATA or SUBMIT)');
  return sources.map((s, i) => {
    const where = `${at}[${i}]`;
    switch (s?.kind) {
      case 'LICENCE':
        if (!LICENCE_TYPE_CODE.test(s.licenceTypeCode ?? '')) throw badInput(`${where}.licenceTypeCode`, `licence type code "${s.licenceTypeCode}" is not 21 characters (USCC + sequence)`);
        return { kind: 'LICENCE', licenceTypeCode: s.licenceTypeCode };
      case 'DATA':
        if (!RESOURCE_CODE.test(s.resourceCode ?? '')) throw badInput(`${where}.resourceCode`, `"${s.resourceCode}" is not a 资源代码`);
        if (!Array.isArray(s.fields) || s.fields.length === 0) throw badInput(`${where}.fields`, 'a DATA source names the 信息项 it needs');
        return { kind: 'DATA', resourceCode: s.resourceCode, fields: [...new Set(s.fields)] };
      case 'SUBMIT':
        return { kind: 'SUBMIT' };
      default:
        throw badInput(`${where}.kind`, 'a source is LICENCE, DATA or SUBMIT');
    }
  });
}

/** Registers or replaces a service item with its materials, in one transaction. */
export async function registerServiceItem(ctx: HubContext, input: ServiceItemInput): Promise<ServiceItem> {
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, input.departmentCode, `a service item of department ${input.departmentCode}`);
  if (!ITEM_CODE.test(input.code ?? '')) throw badInput('code', `事项编码 "${input.code}" must be 3–64 letters, digits, dots or dashes`);
  const name = input.name?.trim();
  if (!name) throw badInput('name', 'a service item needs a name');
  if (!Array.isArray(input.materials)) throw badInput('materials', 'materials must be a list');
  const seen = new Set<string>();
  const rows = input.materials.map((m, i) => {
    const at = `materials[${i}]`;
    if (!/^[0-9A-Za-z][0-9A-Za-z.\-_]{0,63}$/.test(m.code ?? '')) throw badInput(`${at}.code`, `material code "${m.code}" is not valid`);
    if (seen.has(m.code)) throw badInput(`${at}.code`, `material ${m.code} appears twice`);
    seen.add(m.code);
    if (!m.name?.trim()) throw badInput(`${at}.name`, `material ${m.code} needs a name`);
    const tolerance = m.tolerance ?? 'NONE';
    if (tolerance === 'RONGQUE' && !(Number.isInteger(m.toleranceDays) && m.toleranceDays! > 0)) {
      throw badInput(`${at}.toleranceDays`, '容缺 needs the number of working days within which the material must follow');
    }
    if (tolerance === 'COMMITMENT' && !m.commitmentText?.trim()) throw badInput(`${at}.commitmentText`, '告知承诺 needs the commitment text the applicant signs');
    return {
      itemCode: input.code,
      code: m.code,
      name: m.name.trim(),
      position: i,
      sources: validateSources(m.sources, `${at}.sources`),
      tolerance,
      toleranceDays: tolerance === 'RONGQUE' ? m.toleranceDays! : null,
      commitmentText: tolerance === 'COMMITMENT' ? m.commitmentText!.trim() : null,
    };
  });
  const measureCodes = [...new Set(input.measureCodes ?? [])];
  return ctx.db.transaction(async (tx) => {
    const [dept] = await tx.select({ code: departments.code }).from(departments).where(eq(departments.code, input.departmentCode));
    if (!dept) throw badInput('departmentCode', `department ${input.departmentCode} is not registered`);
    const [existing] = await tx.select().from(serviceItems).where(eq(serviceItems.code, input.code)).for('update');
    if (existing) requireOwnDepartment(ctx, existing.departmentCode, `service item ${input.code}`);
    const searchText = [name, ...rows.map((r) => r.name)].join(' ');
    const [item] = await tx
      .insert(serviceItems)
      .values({ code: input.code, name, departmentCode: input.departmentCode, measureCodes, searchText })
      .onConflictDoUpdate({ target: serviceItems.code, set: { name, departmentCode: input.departmentCode, measureCodes, searchText, updatedAt: sql`now()` } })
      .returning();
    await tx.delete(materials).where(eq(materials.itemCode, input.code));
    if (rows.length) await tx.insert(materials).values(rows);
    await recordAct(tx, actorOf(ctx), 'SERVICE_ITEM_REGISTER', { details: { itemCode: input.code, departmentCode: input.departmentCode, replaced: Boolean(existing), materials: rows.map((r) => r.code), measureCodes } });
    await notify(tx, ITEMS_CHANNEL, input.code);
    return item!;
  });
}

export async function getServiceItem(db: Db, code: string): Promise<ServiceItem | undefined> {
  const [i] = await db.select().from(serviceItems).where(eq(serviceItems.code, code));
  return i;
}

/** Which of these item codes are registered (PURPOSE_REQUIRED for the rest, in the query API). */
export async function registeredItemCodes(db: Db, codes: string[]): Promise<Set<string>> {
  if (codes.length === 0) return new Set();
  const r = await db.select({ code: serviceItems.code }).from(serviceItems).where(inArray(serviceItems.code, codes));
  return new Set(r.map((x) => x.code));
}

export async function materialsOf(db: Db, itemCodes: readonly string[]): Promise<Map<string, Material[]>> {
  const out = new Map<string, Material[]>(itemCodes.map((c) => [c, []]));
  if (itemCodes.length === 0) return out;
  const rows = await db.select().from(materials).where(inArray(materials.itemCode, [...itemCodes])).orderBy(asc(materials.itemCode), asc(materials.position));
  for (const r of rows) out.get(r.itemCode)?.push(r);
  return out;
}

export async function searchServiceItems(db: Db, query: string | null | undefined, first: number, after: string | null): Promise<Page<ServiceItem>> {
  const conditions: SQL[] = termConditions(serviceItems.searchText, query);
  const afterKey = decodeCursor(after);
  const where = conditions.length ? and(...conditions) : undefined;
  const items = await db
    .select()
    .from(serviceItems)
    .where(afterKey ? and(where, gt(serviceItems.code, afterKey)) : where)
    .orderBy(asc(serviceItems.code))
    .limit(first + 1);
  const [{ n } = { n: 0 }] = await db.select({ n: sql<number>`count(*)::int` }).from(serviceItems).where(where);
  return { items: items.slice(0, first), hasNextPage: items.length > first, totalCount: n };
}

/** Registers or replaces a "一件事" bundle (admin: bundles cross departments). */
export async function registerBundle(ctx: HubContext, input: { code: string; name: string; itemCodes: string[] }): Promise<Bundle> {
  requireRole(ctx, 'admin');
  if (!ITEM_CODE.test(input.code ?? '')) throw badInput('code', `bundle code "${input.code}" is not valid`);
  if (!input.name?.trim()) throw badInput('name', 'a bundle needs a name');
  const itemCodes = [...new Set(input.itemCodes ?? [])];
  if (itemCodes.length < 2) throw badInput('itemCodes', '一件事 bundles at least two service items');
  return ctx.db.transaction(async (tx) => {
    const known = await registeredItemCodes(tx, itemCodes);
    const unknown = itemCodes.filter((c) => !known.has(c));
    if (unknown.length) throw badInput('itemCodes', `unregistered service items: ${unknown.join(', ')}`);
    const [b] = await tx
      .insert(bundles)
      .values({ code: input.code, name: input.name.trim() })
      .onConflictDoUpdate({ target: bundles.code, set: { name: input.name.trim() } })
      .returning();
    await tx.delete(bundleItems).where(eq(bundleItems.bundleCode, input.code));
    await tx.insert(bundleItems).values(itemCodes.map((itemCode, position) => ({ bundleCode: input.code, itemCode, position })));
    await recordAct(tx, actorOf(ctx), 'BUNDLE_REGISTER', { details: { bundleCode: input.code, itemCodes } });
    return b!;
  });
}

export async function getBundle(db: Db, code: string): Promise<(Bundle & { itemCodes: string[] }) | undefined> {
  const [b] = await db.select().from(bundles).where(eq(bundles.code, code));
  if (!b) return undefined;
  const items = await db.select().from(bundleItems).where(eq(bundleItems.bundleCode, code)).orderBy(asc(bundleItems.position));
  return { ...b, itemCodes: items.map((i) => i.itemCode) };
}

export async function listBundles(db: Db): Promise<(Bundle & { itemCodes: string[] })[]> {
  const bs = await db.select().from(bundles).orderBy(asc(bundles.code));
  const items = await db.select().from(bundleItems).orderBy(asc(bundleItems.bundleCode), asc(bundleItems.position));
  return bs.map((b) => ({ ...b, itemCodes: items.filter((i) => i.bundleCode === b.code).map((i) => i.itemCode) }));
}
