import { and, eq, isNull, sql } from 'drizzle-orm';
import { recordAct } from '../audit/acts.ts';
import type { BaseRecordKind } from '../basedata/schema.ts';
import { BASE_RECORD_KINDS } from '../basedata/schema.ts';
import { actorOf, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, notFound } from '../core/errors.ts';
import { rows, type Db } from '../db/index.ts';
import { departments } from '../directory/schema.ts';
import { baseSources } from './schema.ts';

/** The directory's base kind of each base record kind: its base resource's provider is the authoritative source. */
export const DIRECTORY_BASE_KIND: Record<BaseRecordKind, string> = { population: 'POPULATION', legal_person: 'LEGAL_PERSON', credit: 'CREDIT' };

/**
 * 权威来源: the departments whose connectors may write a base kind: the provider of its base resource in force (a
 * published BASE resource of the kind, which only the operator publishes: 人口 → 公安, 法人 → 市场监管, 信用 → 信用办)
 * and any the operator designated. Read in the caller's
 * transaction, so a batch is written only while its department is one of them.
 */
export async function authoritativeDepartments(db: Db, kind: BaseRecordKind): Promise<Set<string>> {
  const found = await rows<{ code: string }>(
    db,
    sql`select provider_code as code from resources where current and category = 'BASE' and status = 'PUBLISHED' and base_kind = ${DIRECTORY_BASE_KIND[kind]}
        union select department_code from base_sources where kind = ${kind} and withdrawn_at is null`,
  );
  return new Set(found.map((r) => r.code));
}

/** FORBIDDEN (reason NOT_AUTHORITATIVE) unless the department is an authoritative source of the kind. */
export async function requireAuthoritative(db: Db, kind: BaseRecordKind, departmentCode: string): Promise<void> {
  if ((await authoritativeDepartments(db, kind)).has(departmentCode)) return;
  throw new HubError('FORBIDDEN', notAuthoritative(kind, departmentCode), { reason: 'NOT_AUTHORITATIVE' });
}

export function notAuthoritative(kind: BaseRecordKind, departmentCode: string): string {
  return `NOT_AUTHORITATIVE: department ${departmentCode} is neither the provider of the ${DIRECTORY_BASE_KIND[kind]} base resource nor designated by the operator as a source of ${kind} records`;
}

function checkKind(kind: string): BaseRecordKind {
  if (!(BASE_RECORD_KINDS as readonly string[]).includes(kind)) throw badInput('kind', `kind is one of ${BASE_RECORD_KINDS.join(', ')}`);
  return kind as BaseRecordKind;
}

/** The operator designates a further source department of a base kind (admins only), with the reason. */
export async function designateBaseSource(ctx: HubContext, kindInput: string, departmentCode: string, reason: string): Promise<typeof baseSources.$inferSelect> {
  const p = requireRole(ctx, 'admin');
  const kind = checkKind(kindInput);
  if (!reason?.trim()) throw badInput('reason', 'a designation needs its reason (the legal basis or the operator\'s decision)');
  return ctx.db.transaction(async (tx) => {
    const [dept] = await tx.select({ code: departments.code }).from(departments).where(eq(departments.code, departmentCode));
    if (!dept) throw badInput('department', `department ${departmentCode} is not registered`);
    const [row] = await tx
      .insert(baseSources)
      .values({ kind, departmentCode, reason: reason.trim(), designatedBy: p.clientId })
      .onConflictDoUpdate({ target: [baseSources.kind, baseSources.departmentCode], set: { reason: reason.trim(), designatedBy: p.clientId, designatedAt: sql`now()`, withdrawnAt: null } })
      .returning();
    await recordAct(tx, actorOf(ctx), 'BASE_SOURCE_DESIGNATE', { reason: reason.trim(), details: { kind, departmentCode } });
    return row!;
  });
}

export async function withdrawBaseSource(ctx: HubContext, kindInput: string, departmentCode: string, reason: string): Promise<typeof baseSources.$inferSelect> {
  requireRole(ctx, 'admin');
  const kind = checkKind(kindInput);
  if (!reason?.trim()) throw badInput('reason', 'a withdrawal needs its reason');
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(baseSources)
      .set({ withdrawnAt: sql`now()` })
      .where(and(eq(baseSources.kind, kind), eq(baseSources.departmentCode, departmentCode), isNull(baseSources.withdrawnAt)))
      .returning();
    if (!row) throw notFound(`a designation of department ${departmentCode} for ${kind}`);
    await recordAct(tx, actorOf(ctx), 'BASE_SOURCE_WITHDRAW', { reason: reason.trim(), details: { kind, departmentCode } });
    return row;
  });
}
