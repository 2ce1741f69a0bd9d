import { and, asc, eq, gt, ilike, inArray, ne, or, sql, type SQL } from 'drizzle-orm';
import { actEntry } from '../audit/acts.ts';
import { appendInTransaction, type AuditRecord } from '../audit/writer.ts';
import { actorOf, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, isUniqueViolation, notFound } from '../core/errors.ts';
import { usccProblem } from '../core/ids.ts';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { notify, type Db } from '../db/index.ts';
import {
  BASE_KINDS,
  departments,
  OPEN_TYPES,
  RESOURCE_CATEGORIES,
  RESOURCE_STATUSES,
  resources,
  SHARING_TYPES,
  type ResourceField,
} from './schema.ts';

export type Resource = typeof resources.$inferSelect;
export type ResourceCategory = (typeof RESOURCE_CATEGORIES)[number];
export type BaseKind = (typeof BASE_KINDS)[number];
export type SharingType = (typeof SHARING_TYPES)[number];
export type ResourceStatus = (typeof RESOURCE_STATUSES)[number];

/** Grants and caches listen here: a resource published, changed or retired. */
export const RESOURCES_CHANNEL = 'hub_resources';

export interface ResourceFieldInput {
  code: string;
  name: string;
  dataType: string;
  length?: number | null;
  sensitive?: boolean | null;
}

export interface ResourceInput {
  code: string;
  name: string;
  category: string;
  baseKind?: string | null;
  providerCode: string;
  summary?: string | null;
  format?: string | null;
  updateCycle?: string | null;
  sharingType: string;
  sharingCondition?: string | null;
  sharingMethod?: string | null;
  legalBasis?: string | null;
  openType?: string | null;
  openCondition?: string | null;
  relatedCodes?: string[] | null;
  fields: ResourceFieldInput[];
}

/**
 * 资源代码: 类-项-目[-细目]/顺序号. 类 is 1 基础, 2 主题, 3 部门 and must agree with the category; 项 two digits,
 * 目 and 细目 three; the sequence six digits. Example: 1-01-001/000001 (人口基础信息).
 */
export const RESOURCE_CODE = /^([1-3])-(\d{2})-(\d{3})(?:-(\d{3}))?\/(\d{6})$/;
const CATEGORY_DIGIT: Record<ResourceCategory, string> = { BASE: '1', THEME: '2', DEPARTMENT: '3' };

export const FORMATS = ['TABLE', 'API', 'FILE'] as const;
const FORMAT_ALIASES: Record<string, (typeof FORMATS)[number]> = { 库表: 'TABLE', 接口: 'API', 文件: 'FILE', TABLE: 'TABLE', API: 'API', FILE: 'FILE' };
export const UPDATE_CYCLES = ['REALTIME', 'DAILY', 'WEEKLY', 'MONTHLY', 'QUARTERLY', 'HALF_YEARLY', 'YEARLY', 'IRREGULAR'] as const;
/** GB/T 21063 data types (C 字符, N 数值, Y 货币, D 日期, T 日期时间, L 逻辑, M 备注, G 通用, B 双精度, I 整型, F 浮点) and plain names. */
export const DATA_TYPES = ['C', 'N', 'Y', 'D', 'T', 'L', 'M', 'G', 'B', 'I', 'F', 'string', 'integer', 'decimal', 'date', 'datetime', 'boolean', 'json', 'text'];

function oneOf<T extends string>(values: readonly T[], value: string | null | undefined, field: string, label: string): T {
  if (value && (values as readonly string[]).includes(value)) return value as T;
  throw badInput(field, `${label} must be one of ${values.join(', ')}${value ? ` (got "${value}")` : ''}`);
}

const text = (v: string | null | undefined): string | null => (v && v.trim() ? v.trim() : null);

/** Everything a resource row holds that comes from the input, validated; throws BAD_USER_INPUT naming the field. */
export function validateResourceInput(input: ResourceInput): Omit<Resource, 'version' | 'current' | 'status' | 'publishedAt' | 'retiredAt' | 'retiredReason' | 'changedBy' | 'createdAt' | 'updatedAt'> {
  const category = oneOf(RESOURCE_CATEGORIES, input.category, 'category', 'category');
  const m = RESOURCE_CODE.exec(input.code ?? '');
  if (!m) throw badInput('code', `资源代码 "${input.code}" must look like 1-01-001/000001 (类-项-目[-细目]/顺序号)`);
  if (m[1] !== CATEGORY_DIGIT[category]) {
    throw badInput('code', `资源代码 ${input.code} starts with 类 ${m[1]}, but a ${category} resource's starts with ${CATEGORY_DIGIT[category]}`);
  }
  const name = text(input.name);
  if (!name || name.length > 200) throw badInput('name', 'a resource needs a name of at most 200 characters');
  const baseKind = input.baseKind ? oneOf(BASE_KINDS, input.baseKind, 'baseKind', 'baseKind') : null;
  if (category === 'BASE' && !baseKind) throw badInput('baseKind', 'a BASE resource names its base database (baseKind)');
  const sharingType = oneOf(SHARING_TYPES, input.sharingType, 'sharingType', 'sharingType');
  const sharingCondition = text(input.sharingCondition);
  const legalBasis = text(input.legalBasis);
  if (sharingType === 'CONDITIONAL' && !sharingCondition) throw badInput('sharingCondition', '有条件共享 needs its condition (sharingCondition)');
  if (sharingType === 'NONE' && !legalBasis) throw badInput('legalBasis', '不予共享 needs its legal basis (legalBasis)');
  const format = input.format ? FORMAT_ALIASES[input.format.trim()] : null;
  if (input.format && !format) throw badInput('format', `format must be one of 库表/TABLE, 接口/API, 文件/FILE (got "${input.format}")`);
  const updateCycle = input.updateCycle ? oneOf(UPDATE_CYCLES, input.updateCycle, 'updateCycle', 'updateCycle') : null;
  const openType = input.openType ? oneOf(OPEN_TYPES, input.openType, 'openType', 'openType') : 'NONE';
  const relatedCodes = [...new Set((input.relatedCodes ?? []).map((c) => c.trim()))];
  relatedCodes.forEach((c, i) => {
    if (!RESOURCE_CODE.test(c)) throw badInput(`relatedCodes[${i}]`, `related resource code "${c}" is not a 资源代码`);
  });
  if (!Array.isArray(input.fields) || input.fields.length === 0) throw badInput('fields', 'a resource lists at least one 信息项');
  const seen = new Set<string>();
  const fields: ResourceField[] = input.fields.map((f, i) => {
    const at = `fields[${i}]`;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(f.code ?? '')) throw badInput(`${at}.code`, `信息项 code "${f.code}" must be letters, digits and _ (starting with a letter)`);
    if (seen.has(f.code)) throw badInput(`${at}.code`, `信息项 code ${f.code} appears twice`);
    seen.add(f.code);
    const fname = text(f.name);
    if (!fname) throw badInput(`${at}.name`, `信息项 ${f.code} needs a name`);
    if (!DATA_TYPES.includes(f.dataType)) throw badInput(`${at}.dataType`, `信息项 ${f.code}: dataType must be one of ${DATA_TYPES.join(', ')}`);
    if (f.length != null && (!Number.isInteger(f.length) || f.length <= 0)) throw badInput(`${at}.length`, `信息项 ${f.code}: length must be a positive integer`);
    return { code: f.code, name: fname, dataType: f.dataType, length: f.length ?? null, sensitive: Boolean(f.sensitive) };
  });
  const summary = text(input.summary);
  return {
    code: input.code,
    name,
    category,
    baseKind,
    providerCode: input.providerCode,
    summary,
    format,
    updateCycle,
    sharingType,
    sharingCondition,
    sharingMethod: text(input.sharingMethod),
    legalBasis,
    openType,
    openCondition: text(input.openCondition),
    relatedCodes,
    fields,
    searchText: [name, summary ?? '', ...fields.flatMap((f) => [f.name, f.code])].join(' '),
  };
}

function checkProviderCode(providerCode: string): void {
  const problem = usccProblem(providerCode ?? '');
  if (problem) throw new HubError('INVALID_USCC', `providerCode ${providerCode} is not a valid 统一社会信用代码 (${problem})`, { field: 'providerCode' });
}

/** Order of checks (API-CONTRACT.md): INVALID_USCC, FORBIDDEN (role, department), BAD_USER_INPUT, CONFLICT. */
async function authoriseProvider(ctx: HubContext, providerCode: string): Promise<void> {
  checkProviderCode(providerCode);
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, providerCode, `a resource of provider ${providerCode}`);
  const [dept] = await ctx.db.select({ code: departments.code }).from(departments).where(eq(departments.code, providerCode));
  if (!dept) throw badInput('providerCode', `department ${providerCode} is not registered`);
}

export async function getCurrentResource(db: Db, code: string): Promise<Resource | undefined> {
  const [r] = await db.select().from(resources).where(and(eq(resources.code, code), eq(resources.current, true)));
  return r;
}

export async function getResourceVersion(db: Db, code: string, version: number): Promise<Resource | undefined> {
  const [r] = await db.select().from(resources).where(and(eq(resources.code, code), eq(resources.version, version)));
  return r;
}

export async function listResourceVersions(db: Db, code: string): Promise<Resource[]> {
  return db.select().from(resources).where(eq(resources.code, code)).orderBy(asc(resources.version));
}

/** The audit entry of an act on a resource, by the acting principal (written in the act's transaction). */
function resourceAudit(ctx: HubContext, operation: string, code: string, details: Record<string, unknown>, reason: string | null = null): AuditRecord {
  return actEntry(actorOf(ctx), operation, { resourceCode: code, reason, details });
}

type ResourceValues = ReturnType<typeof validateResourceInput>;

const sameField = (a: ResourceField, b: ResourceField) =>
  a.name === b.name && a.dataType === b.dataType && (a.length ?? null) === (b.length ?? null) && Boolean(a.sensitive) === Boolean(b.sensitive);

/**
 * What an update changes, for its audit entry: each changed column with its value before and after, and for the
 * 信息项 the codes added, removed and changed (a whole list twice would bury the change). searchText is derived.
 */
function resourceChanges(before: Resource, after: ResourceValues): Record<string, unknown> {
  const changed: Record<string, unknown> = {};
  for (const key of Object.keys(after) as (keyof ResourceValues)[]) {
    if (key === 'searchText' || key === 'code') continue;
    if (key === 'fields') {
      const old = new Map(before.fields.map((f) => [f.code, f]));
      const now = new Map(after.fields.map((f) => [f.code, f]));
      const added = after.fields.filter((f) => !old.has(f.code)).map((f) => f.code);
      const removed = before.fields.filter((f) => !now.has(f.code)).map((f) => f.code);
      const altered = after.fields.filter((f) => old.has(f.code) && !sameField(old.get(f.code)!, f)).map((f) => f.code);
      const reordered = !added.length && !removed.length && before.fields.some((f, i) => after.fields[i]!.code !== f.code);
      if (added.length || removed.length || altered.length || reordered) changed.fields = { added, removed, changed: altered };
      continue;
    }
    const from = before[key] ?? null;
    const to = after[key] ?? null;
    if (JSON.stringify(from) !== JSON.stringify(to)) changed[key] = { from, to };
  }
  return changed;
}

/** registerResource: a new draft, version 1. */
export async function registerResource(ctx: HubContext, input: ResourceInput): Promise<Resource> {
  await authoriseProvider(ctx, input.providerCode);
  const values = validateResourceInput(input);
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(resources)
        .values({ ...values, version: 1, current: true, status: 'DRAFT', changedBy: ctx.principal.clientId })
        .returning();
      await appendInTransaction(tx, [
        resourceAudit(ctx, 'RESOURCE_REGISTER', values.code, { version: 1, name: values.name, category: values.category, baseKind: values.baseKind, providerCode: values.providerCode, sharingType: values.sharingType, fields: values.fields.map((f) => f.code) }),
      ]);
      return row!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new HubError('CONFLICT', `resource ${input.code} already exists`, {}, { cause: error });
    throw error;
  }
}

async function loadOwned(ctx: HubContext, code: string): Promise<Resource> {
  requireRole(ctx, 'provider', 'admin');
  const current = await getCurrentResource(ctx.db, code);
  if (!current) throw notFound(`resource ${code}`);
  requireOwnDepartment(ctx, current.providerCode, `resource ${code}`);
  return current;
}

/**
 * updateResource: a draft changes in place; a published resource gets a new version in force at once, and the old
 * version stays readable. A retired resource cannot change.
 */
export async function updateResource(ctx: HubContext, code: string, input: ResourceInput): Promise<Resource> {
  checkProviderCode(input.providerCode);
  const current = await loadOwned(ctx, code);
  if (input.providerCode !== current.providerCode) await authoriseProvider(ctx, input.providerCode);
  if (input.code !== code) throw badInput('code', `the input's code ${input.code} differs from ${code}; a resource keeps its code`);
  const values = validateResourceInput(input);
  if (current.status === 'PUBLISHED') requireOperatorForBase(ctx, current.category, values.category);
  if (current.status === 'RETIRED') throw new HubError('CONFLICT', `resource ${code} is retired and cannot change`);
  return ctx.db.transaction(async (tx) => {
    // Lock the current version so two concurrent edits cannot both make version N+1.
    const [locked] = await tx
      .select()
      .from(resources)
      .where(and(eq(resources.code, code), eq(resources.current, true)))
      .for('update');
    if (!locked || locked.version !== current.version) throw new HubError('CONFLICT', `resource ${code} changed meanwhile; read it again`);
    const changed = resourceChanges(locked, values);
    if (locked.status === 'DRAFT') {
      const [row] = await tx
        .update(resources)
        .set({ ...values, changedBy: ctx.principal.clientId, updatedAt: sql`now()` })
        .where(and(eq(resources.code, code), eq(resources.version, locked.version)))
        .returning();
      await appendInTransaction(tx, [resourceAudit(ctx, 'RESOURCE_UPDATE', code, { version: locked.version, changed })]);
      return row!;
    }
    await tx.update(resources).set({ current: false, updatedAt: sql`now()` }).where(and(eq(resources.code, code), eq(resources.version, locked.version)));
    const [row] = await tx
      .insert(resources)
      .values({
        ...values,
        version: locked.version + 1,
        current: true,
        status: 'PUBLISHED',
        publishedAt: sql`now()`,
        changedBy: ctx.principal.clientId,
      })
      .returning();
    await appendInTransaction(tx, [resourceAudit(ctx, 'RESOURCE_UPDATE', code, { version: locked.version + 1, previousVersion: locked.version, changed })]);
    await notify(tx, RESOURCES_CHANNEL, code);
    return row!;
  });
}

/**
 * 基础库: a BASE resource in force names the authoritative source of its base kind (its provider's connectors alone
 * write 人口, 法人, 信用 records), so only the operator (admin) puts one in force: publishes it, or changes it once
 * published. A department drafts its own, as any resource.
 */
function requireOperatorForBase(ctx: HubContext, ...categories: string[]): void {
  if (!categories.includes('BASE') || ctx.principal.roles.includes('admin')) return;
  throw new HubError('FORBIDDEN', 'a BASE resource (基础库) names the authoritative source of its base kind: the operator (admin) publishes or changes it once published', { reason: 'BASE_RESOURCE', requiredRoles: ['admin'] });
}

export async function publishResource(ctx: HubContext, code: string): Promise<Resource> {
  const current = await loadOwned(ctx, code);
  requireOperatorForBase(ctx, current.category);
  if (current.status !== 'DRAFT') throw new HubError('CONFLICT', `resource ${code} is ${current.status}; only a draft is published`);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(resources)
      .set({ status: 'PUBLISHED', publishedAt: sql`now()`, changedBy: ctx.principal.clientId, updatedAt: sql`now()` })
      .where(and(eq(resources.code, code), eq(resources.version, current.version), eq(resources.status, 'DRAFT')))
      .returning();
    if (!row) throw new HubError('CONFLICT', `resource ${code} changed meanwhile; read it again`);
    await appendInTransaction(tx, [resourceAudit(ctx, 'RESOURCE_PUBLISH', code, { version: row.version })]);
    await notify(tx, RESOURCES_CHANNEL, code);
    return row;
  });
}

/** retireResource: no new use from now on; grants on it stop answering at once. */
export async function retireResource(ctx: HubContext, code: string, reason: string): Promise<Resource> {
  const current = await loadOwned(ctx, code);
  if (!reason || !reason.trim()) throw badInput('reason', 'retiring a resource needs a reason');
  if (current.status === 'RETIRED') throw new HubError('CONFLICT', `resource ${code} is already retired`);
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(resources)
      .set({ status: 'RETIRED', retiredAt: sql`now()`, retiredReason: reason.trim(), changedBy: ctx.principal.clientId, updatedAt: sql`now()` })
      .where(and(eq(resources.code, code), eq(resources.version, current.version), eq(resources.current, true), ne(resources.status, 'RETIRED')))
      .returning();
    if (!row) throw new HubError('CONFLICT', `resource ${code} changed meanwhile; read it again`);
    await appendInTransaction(tx, [resourceAudit(ctx, 'RESOURCE_RETIRE', code, { version: row.version }, reason.trim())]);
    await notify(tx, RESOURCES_CHANNEL, code);
    return row;
  });
}

export interface ResourceFilter {
  query?: string | null;
  department?: string | null;
  baseKind?: string | null;
  sharingType?: string | null;
  status?: string | null;
}

export interface Page<T> {
  items: T[];
  hasNextPage: boolean;
  totalCount: number;
}

export const encodeCursor = (key: string): string => Buffer.from(key, 'utf8').toString('base64url');
export function decodeCursor(cursor: string | null | undefined): string | null {
  if (!cursor) return null;
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!key) throw badInput('after', 'the cursor is not one this API gave out');
  return key;
}

/**
 * Search terms split on spaces; every term must occur in the name, summary or a 信息项. ILIKE serves every length:
 * pg_trgm's index speeds terms of three characters and more, and a term of one or two Chinese characters (which
 * makes no trigram) is still found.
 */
export function termConditions(column: AnyPgColumn, query: string | null | undefined): SQL[] {
  const terms = (query ?? '').trim().split(/\s+/).filter(Boolean).slice(0, 8);
  return terms.map((t) => ilike(column, `%${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`));
}

/** resources(query, first, after): current versions in code order; drafts only for their own department (or admins). */
export async function searchResources(ctx: HubContext, filter: ResourceFilter, first: number, after: string | null): Promise<Page<Resource>> {
  const conditions: SQL[] = [eq(resources.current, true), ...termConditions(resources.searchText, filter.query)];
  if (filter.department) conditions.push(eq(resources.providerCode, filter.department));
  if (filter.baseKind) conditions.push(eq(resources.baseKind, oneOf(BASE_KINDS, filter.baseKind, 'baseKind', 'baseKind')));
  if (filter.sharingType) conditions.push(eq(resources.sharingType, oneOf(SHARING_TYPES, filter.sharingType, 'sharingType', 'sharingType')));
  if (filter.status) conditions.push(eq(resources.status, oneOf(RESOURCE_STATUSES, filter.status, 'status', 'status')));
  if (!ctx.principal.roles.includes('admin')) {
    conditions.push(or(inArray(resources.status, ['PUBLISHED', 'RETIRED']), eq(resources.providerCode, ctx.principal.department))!);
  }
  const where = and(...conditions);
  const afterKey = decodeCursor(after);
  const items = await ctx.db
    .select()
    .from(resources)
    .where(afterKey ? and(where, gt(resources.code, afterKey)) : where)
    .orderBy(asc(resources.code))
    .limit(first + 1);
  const [{ n } = { n: 0 }] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(resources).where(where);
  return { items: items.slice(0, first), hasNextPage: items.length > first, totalCount: n };
}
