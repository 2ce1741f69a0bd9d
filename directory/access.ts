import { and, asc, desc, eq, isNull, lt, or, sql, type SQL } from 'drizzle-orm';
import { requireOwnDepartment, requireRole, type ClientPrincipal, type HubContext } from '../core/context.ts';
import { badInput, HubError, notFound } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { notify, rows, type Database, type Db } from '../db/index.ts';
import { appendInTransaction } from '../audit/writer.ts';
import { addWorkingDays } from './calendar.ts';
import { ITEMS_CHANNEL, registeredItemCodes } from './items.ts';
import { addNotification } from './notifications.ts';
import { getCurrentResource, RESOURCES_CHANNEL, type Resource } from './resources.ts';
import { accessRequests, grants, resources } from './schema.ts';

export type AccessRequest = typeof accessRequests.$inferSelect;
export type Grant = typeof grants.$inferSelect;

export const GRANTS_CHANNEL = 'hub_grants';
/** 有条件共享: the provider answers within 10 working days (政务数据共享条例). */
export const DECISION_WORKING_DAYS = 10;

export interface AccessRequestInput {
  resourceCode: string;
  fields: string[];
  /** sensitive 信息项 wanted unmasked */
  fullFields?: string[] | null;
  itemCodes: string[];
  /** on the licence base resource: the 证照类型 wanted (absent: the types the items' materials name) */
  licenceTypes?: string[] | null;
  purpose: string;
  legalBasis?: string | null;
  validUntil?: string | null;
}

/**
 * 调用权限 per 证照类型 (seed 004): the licence types a request on the licence base resource asks for, checked, or when it
 * names none, the types its items' materials use as LICENCE sources. Null for any other resource.
 */
async function licenceTypesAsked(db: Db, resource: Resource, asked: string[] | null | undefined, itemCodes: string[]): Promise<{ types: string[] | null; beyondMaterials: boolean }> {
  if (resource.baseKind !== 'LICENCE') {
    if (asked?.length) throw badInput('licenceTypes', `licenceTypes are asked only on the licence base resource; ${resource.code} is not it`);
    return { types: null, beyondMaterials: false };
  }
  const used = (
    await rows<{ code: string }>(
      db,
      sql`select distinct s->>'licenceTypeCode' as code from materials m, jsonb_array_elements(m.sources) s
          where m.item_code = any(${sql.param(itemCodes)}::text[]) and s->>'kind' = 'LICENCE' order by 1`,
    )
  ).map((r) => r.code);
  if (asked?.length) {
    const types = [...new Set(asked.map((t) => String(t).trim().toUpperCase()))];
    const known = new Set((await rows<{ code: string }>(db, sql`select code from licence_types where code = any(${sql.param(types)}::text[])`)).map((r) => r.code));
    const unknown = types.filter((t) => !known.has(t));
    if (unknown.length) throw badInput('licenceTypes', `unregistered licence types: ${unknown.join(', ')}`);
    // a type the items do not use as a material is not for the hub to open on its own: the provider decides
    return { types: types.sort(), beyondMaterials: types.some((t) => !used.includes(t)) };
  }
  if (used.length === 0) throw badInput('licenceTypes', `the materials of ${itemCodes.join(', ')} use no licence: name the licence types you need (licenceTypes)`);
  return { types: used, beyondMaterials: false };
}

function parseFutureDate(value: string | null | undefined, field: string, now: Date): Date | null {
  if (!value) return null;
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T23:59:59.999+08:00` : value);
  if (Number.isNaN(d.getTime())) throw badInput(field, `${field} must be an ISO date`);
  if (d.getTime() <= now.getTime()) throw badInput(field, `${field} must lie in the future`);
  return d;
}

async function createGrant(tx: Db, values: typeof grants.$inferInsert): Promise<Grant> {
  const [g] = await tx.insert(grants).values(values).returning();
  await notify(tx, GRANTS_CHANNEL, values.clientId);
  return g!;
}

/**
 * requestAccess: 无条件共享 is granted at once (unless sensitive 信息项 are wanted unmasked, which the provider
 * decides); 有条件共享 waits for the provider, due in 10 working days, and the provider is notified; 不予共享 is
 * refused with the resource's recorded legal basis.
 */
export async function requestAccess(ctx: HubContext, input: AccessRequestInput, now = new Date()): Promise<AccessRequest> {
  const principal = requireRole(ctx, 'consumer');
  const resource = await getCurrentResource(ctx.db, input.resourceCode);
  if (!resource || (resource.status !== 'PUBLISHED' && resource.providerCode !== principal.department)) throw notFound(`resource ${input.resourceCode}`);
  if (resource.status !== 'PUBLISHED') throw new HubError('CONFLICT', `resource ${input.resourceCode} is ${resource.status}, not published`);
  const known = new Map(resource.fields.map((f) => [f.code, f]));
  const fields = [...new Set(input.fields ?? [])];
  if (fields.length === 0) throw badInput('fields', 'name the 信息项 you need');
  const unknown = fields.filter((f) => !known.has(f));
  if (unknown.length) throw badInput('fields', `resource ${resource.code} has no 信息项 ${unknown.join(', ')}`);
  const fullFields = [...new Set(input.fullFields ?? [])];
  for (const f of fullFields) {
    if (!fields.includes(f)) throw badInput('fullFields', `${f} is asked unmasked but not asked at all`);
    if (!known.get(f)!.sensitive) throw badInput('fullFields', `${f} is not sensitive; it is never masked`);
  }
  const itemCodes = [...new Set(input.itemCodes ?? [])];
  if (itemCodes.length === 0) throw badInput('itemCodes', 'name the service items (事项编码) the data is for');
  const registered = await registeredItemCodes(ctx.db, itemCodes);
  const unregistered = itemCodes.filter((c) => !registered.has(c));
  if (unregistered.length) throw badInput('itemCodes', `unregistered service items: ${unregistered.join(', ')}`);
  const purpose = input.purpose?.trim();
  if (!purpose) throw badInput('purpose', 'state the purpose (用途) of the request');
  const validUntil = parseFutureDate(input.validUntil, 'validUntil', now);
  const { types: licenceTypes, beyondMaterials } = await licenceTypesAsked(ctx.db, resource, input.licenceTypes, itemCodes);

  const base = {
    resourceCode: resource.code,
    resourceVersion: resource.version,
    clientId: principal.clientId,
    departmentCode: principal.department,
    providerCode: resource.providerCode,
    fields,
    fullFields,
    itemCodes,
    licenceTypes,
    purpose,
    legalBasis: input.legalBasis?.trim() || null,
    validUntil,
  };
  const decided = (status: 'APPROVED' | 'REFUSED', reason: string) => ({ ...base, status, reason, decidedBy: 'hub', decidedAt: now });
  return ctx.db.transaction(async (tx) => {
    let r: AccessRequest;
    if (resource.sharingType === 'NONE') {
      [r] = (await tx.insert(accessRequests).values(decided('REFUSED', `不予共享: ${resource.legalBasis}`)).returning()) as [AccessRequest];
    } else if (resource.sharingType === 'UNCONDITIONAL' && fullFields.length === 0 && !beyondMaterials) {
      [r] = (await tx.insert(accessRequests).values(decided('APPROVED', '无条件共享')).returning()) as [AccessRequest];
      await createGrant(tx, { requestId: r.id, clientId: principal.clientId, resourceCode: resource.code, fields, unmaskedFields: [], itemCodes, licenceTypes, expiresAt: validUntil, grantedBy: 'hub' });
    } else {
      const { dueAt, provisional } = await addWorkingDays(tx, now, DECISION_WORKING_DAYS);
      [r] = (await tx.insert(accessRequests).values({ ...base, status: 'PENDING', dueAt, dueProvisional: provisional }).returning()) as [AccessRequest];
      await addNotification(tx, resource.providerCode, 'ACCESS_REQUEST_NEW', r.id, requestPayload(r, resource.name));
    }
    // who asked, for what and why, and what the hub decided on arrival: in the audit log, in the same transaction
    await appendInTransaction(tx, [
      {
        clientId: principal.clientId,
        department: principal.department,
        operation: 'ACCESS_REQUEST',
        resourceCode: resource.code,
        fields,
        outcome: 'DONE',
        reason: r.reason,
        requestId: ctx.requestId,
        details: { accessRequest: r.id, status: r.status, itemCodes, fullFields, purpose, legalBasis: base.legalBasis, dueAt: r.dueAt?.toISOString() ?? null },
      },
    ]);
    return r;
  });
}

function requestPayload(r: AccessRequest, resourceName: string): Record<string, unknown> {
  return {
    requestId: r.id,
    resourceCode: r.resourceCode,
    resourceName,
    consumerClientId: r.clientId,
    consumerDepartment: r.departmentCode,
    fields: r.fields,
    fullFields: r.fullFields,
    itemCodes: r.itemCodes,
    dueAt: r.dueAt?.toISOString() ?? null,
  };
}

/** decideAccessRequest: the provider approves (possibly fewer 信息项) or refuses with a reason. */
export async function decideAccessRequest(
  ctx: HubContext,
  id: string,
  decision: { approve: boolean; reason?: string | null; fields?: string[] | null; fullFields?: string[] | null; licenceTypes?: string[] | null },
  now = new Date(),
): Promise<AccessRequest> {
  requireRole(ctx, 'provider', 'admin');
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw notFound(`access request ${id}`);
  const [request] = await ctx.db.select().from(accessRequests).where(eq(accessRequests.id, id));
  if (!request) throw notFound(`access request ${id}`);
  requireOwnDepartment(ctx, request.providerCode, `the request for resource ${request.resourceCode}`);
  const reason = decision.reason?.trim() || null;
  let fields = request.fields;
  let fullFields = request.fullFields;
  let licenceTypes = request.licenceTypes;
  if (decision.approve) {
    if (decision.licenceTypes) {
      const types = [...new Set(decision.licenceTypes.map((t) => String(t).trim().toUpperCase()))];
      const extra = types.filter((t) => !(request.licenceTypes ?? []).includes(t));
      if (extra.length) throw badInput('licenceTypes', `approval may only narrow the licence types; not asked: ${extra.join(', ')}`);
      if (types.length === 0) throw badInput('licenceTypes', 'approve at least one licence type, or refuse');
      licenceTypes = types.sort();
    }
    if (decision.fields) {
      const extra = decision.fields.filter((f) => !request.fields.includes(f));
      if (extra.length) throw badInput('fields', `approval may only narrow the request; not asked: ${extra.join(', ')}`);
      if (decision.fields.length === 0) throw badInput('fields', 'approve at least one 信息项, or refuse');
      fields = [...new Set(decision.fields)];
      fullFields = fullFields.filter((f) => fields.includes(f));
    }
    if (decision.fullFields) {
      const extra = decision.fullFields.filter((f) => !fullFields.includes(f));
      if (extra.length) throw badInput('fullFields', `approval may only narrow the unmasked 信息项; not asked: ${extra.join(', ')}`);
      fullFields = [...new Set(decision.fullFields)];
    }
  } else if (!reason) {
    throw badInput('reason', 'a refusal states its reason (理由)');
  }
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(accessRequests)
      .set({ status: decision.approve ? 'APPROVED' : 'REFUSED', reason, fields, fullFields, licenceTypes, decidedBy: ctx.principal.clientId, decidedAt: now })
      .where(and(eq(accessRequests.id, id), eq(accessRequests.status, 'PENDING')))
      .returning();
    if (!updated) throw new HubError('CONFLICT', `access request ${id} is already ${request.status}`);
    await appendInTransaction(tx, [
      {
        clientId: ctx.principal.clientId,
        department: ctx.principal.department,
        operation: 'ACCESS_DECISION',
        resourceCode: request.resourceCode,
        fields,
        outcome: 'DONE',
        reason,
        requestId: ctx.requestId,
        details: { accessRequest: id, approve: decision.approve, consumer: request.clientId, fullFields, asked: request.fields, licenceTypes, askedLicenceTypes: request.licenceTypes },
      },
    ]);
    if (decision.approve) {
      await createGrant(tx, {
        requestId: id,
        clientId: request.clientId,
        resourceCode: request.resourceCode,
        fields,
        unmaskedFields: fullFields,
        itemCodes: request.itemCodes,
        licenceTypes,
        expiresAt: request.validUntil,
        grantedBy: ctx.principal.clientId,
      });
    }
    return updated;
  });
}

export interface RequestFilter {
  status?: string | null;
  overdue?: boolean | null;
  resourceCode?: string | null;
}

/** Consumers see their own requests, providers those for their department's resources, admins all. */
export async function listAccessRequests(ctx: HubContext, filter: RequestFilter, first: number, now = new Date()): Promise<AccessRequest[]> {
  const p = requireRole(ctx, 'consumer', 'provider', 'admin');
  const conditions: SQL[] = [];
  if (!p.roles.includes('admin')) {
    const mine: SQL[] = [];
    if (p.roles.includes('consumer')) mine.push(eq(accessRequests.clientId, p.clientId));
    if (p.roles.includes('provider')) mine.push(eq(accessRequests.providerCode, p.department));
    conditions.push(or(...mine)!);
  }
  if (filter.status) conditions.push(eq(accessRequests.status, filter.status as AccessRequest['status']));
  if (filter.resourceCode) conditions.push(eq(accessRequests.resourceCode, filter.resourceCode));
  if (filter.overdue) conditions.push(eq(accessRequests.status, 'PENDING'), lt(accessRequests.dueAt, now));
  return ctx.db
    .select()
    .from(accessRequests)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(filter.overdue ? asc(accessRequests.dueAt) : desc(accessRequests.createdAt))
    .limit(first);
}

/** Finds pending requests past their due date and notifies their providers, once per request (a recurring job). */
export async function markOverdueRequests(db: Db, now = new Date()): Promise<number> {
  return db.transaction(async (tx) => {
    const overdue = await tx
      .select()
      .from(accessRequests)
      .where(and(eq(accessRequests.status, 'PENDING'), lt(accessRequests.dueAt, now), isNull(accessRequests.overdueNotifiedAt)))
      .for('update', { skipLocked: true });
    for (const r of overdue) {
      const [res] = await tx.select({ name: resources.name }).from(resources).where(and(eq(resources.code, r.resourceCode), eq(resources.current, true)));
      await addNotification(tx, r.providerCode, 'ACCESS_REQUEST_OVERDUE', r.id, requestPayload(r, res?.name ?? r.resourceCode));
      await tx.update(accessRequests).set({ overdueNotifiedAt: now }).where(eq(accessRequests.id, r.id));
    }
    return overdue.length;
  });
}

/** revokeGrant: takes effect at once in every hub process (NOTIFY clears their grant caches). */
export async function revokeGrant(ctx: HubContext, id: string, reason: string): Promise<Grant> {
  requireRole(ctx, 'provider', 'admin');
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw notFound(`grant ${id}`);
  const [g] = await ctx.db.select().from(grants).where(eq(grants.id, id));
  if (!g) throw notFound(`grant ${id}`);
  const resource = await getCurrentResource(ctx.db, g.resourceCode);
  requireOwnDepartment(ctx, resource?.providerCode ?? '', `the grant on resource ${g.resourceCode}`);
  if (!reason?.trim()) throw badInput('reason', 'a revocation states its reason');
  return ctx.db.transaction(async (tx) => {
    const [r] = await tx
      .update(grants)
      .set({ revokedAt: sql`now()`, revokedBy: ctx.principal.clientId, revokeReason: reason.trim() })
      .where(and(eq(grants.id, id), isNull(grants.revokedAt)))
      .returning();
    if (!r) throw new HubError('CONFLICT', `grant ${id} is already revoked`);
    await appendInTransaction(tx, [
      {
        clientId: ctx.principal.clientId,
        department: ctx.principal.department,
        operation: 'GRANT_REVOKE',
        resourceCode: g.resourceCode,
        fields: g.fields,
        outcome: 'DONE',
        reason: reason.trim(),
        requestId: ctx.requestId,
        details: { grant: id, consumer: g.clientId },
      },
    ]);
    await notify(tx, GRANTS_CHANNEL, g.clientId);
    return r;
  });
}

export async function listGrants(ctx: HubContext, filter: { clientId?: string | null; resourceCode?: string | null; active?: boolean | null }): Promise<Grant[]> {
  const p = requireRole(ctx, 'consumer', 'provider', 'admin');
  const conditions: SQL[] = [];
  if (filter.clientId) conditions.push(eq(grants.clientId, filter.clientId));
  if (filter.resourceCode) conditions.push(eq(grants.resourceCode, filter.resourceCode));
  if (filter.active) conditions.push(isNull(grants.revokedAt), sql`(${grants.expiresAt} is null or ${grants.expiresAt} > now())`);
  if (!p.roles.includes('admin')) {
    const own = p.roles.includes('provider')
      ? sql`(${grants.clientId} = ${p.clientId} or ${grants.resourceCode} in (select code from resources where current and provider_code = ${p.department}))`
      : eq(grants.clientId, p.clientId);
    conditions.push(own);
  }
  return ctx.db.select().from(grants).where(and(...conditions)).orderBy(desc(grants.createdAt)).limit(500);
}

/** What a grant check answers when it allows: which fields may leave unmasked. */
export interface GrantDecision {
  grantIds: string[];
  resource: Resource;
  /** the 信息项 the usable grants cover (more than were asked, perhaps) */
  granted: Set<string>;
  unmaskedFields: Set<string>;
  /** on the licence base resource: the 证照类型 the usable grants open */
  licenceTypes: Set<string>;
}

interface CachedGrants {
  grants: Grant[];
}

/** GRANT_MISSING naming exactly what no grant covers: `missing: { resource, fields, itemCode }`. */
function grantMissing(resource: string, fields: readonly string[], itemCode: string, why: string): HubError {
  return new HubError('GRANT_MISSING', `no grant lets you read ${fields.join(', ')} of ${resource} for item ${itemCode}: ${why}`, { missing: { resource, fields: [...fields], itemCode } });
}

/**
 * The one check the query API calls: may this client read these 信息项 of this resource for this item? Grants
 * and resources are cached per process and dropped on NOTIFY, so a revocation or retirement is refused at once in
 * every process; expiry is compared on every call.
 */
export class GrantChecker {
  private byClient = new Map<string, Promise<CachedGrants>>();
  private resourcesByCode = new Map<string, Promise<Resource | undefined>>();
  private baseResources = new Map<string, Promise<string | undefined>>();
  private items = new Map<string, Promise<boolean>>();
  private unlisten: (() => Promise<void>)[] = [];

  private constructor(private readonly db: Db) {}

  static async open(database: Database, logger?: Logger): Promise<GrantChecker> {
    const checker = new GrantChecker(database.db);
    checker.unlisten.push(
      await database.listen(GRANTS_CHANNEL, (clientId) => {
        logger?.debug({ clientId }, 'grants changed');
        checker.byClient.delete(clientId);
      }),
      await database.listen(RESOURCES_CHANNEL, (code) => {
        checker.resourcesByCode.delete(code);
        checker.baseResources.clear();
      }),
      await database.listen(ITEMS_CHANNEL, () => checker.items.clear()),
    );
    return checker;
  }

  private grantsOf(clientId: string): Promise<CachedGrants> {
    let entry = this.byClient.get(clientId);
    if (!entry) {
      entry = this.db
        .select()
        .from(grants)
        .where(and(eq(grants.clientId, clientId), isNull(grants.revokedAt)))
        .then((rows) => ({ grants: rows }));
      this.byClient.set(clientId, entry);
      entry.catch(() => this.byClient.delete(clientId));
    }
    return entry;
  }

  private resource(code: string): Promise<Resource | undefined> {
    let entry = this.resourcesByCode.get(code);
    if (!entry) {
      entry = getCurrentResource(this.db, code);
      this.resourcesByCode.set(code, entry);
      entry.then(
        (r) => r === undefined && this.resourcesByCode.delete(code),
        () => this.resourcesByCode.delete(code),
      );
    }
    return entry;
  }

  /** The published resource of a base kind (人口, 法人, 公共信用), found by baseKind. */
  baseResourceCode(baseKind: 'POPULATION' | 'LEGAL_PERSON' | 'CREDIT' | 'LICENCE'): Promise<string | undefined> {
    let entry = this.baseResources.get(baseKind);
    if (!entry) {
      entry = this.db
        .select({ code: resources.code })
        .from(resources)
        .where(and(eq(resources.current, true), eq(resources.status, 'PUBLISHED'), eq(resources.baseKind, baseKind)))
        .limit(1)
        .then((r) => r[0]?.code);
      this.baseResources.set(baseKind, entry);
      entry.catch(() => this.baseResources.delete(baseKind));
    }
    return entry;
  }

  /** Whether a 事项编码 is a registered service item (PURPOSE_REQUIRED otherwise). */
  isRegisteredItem(code: string): Promise<boolean> {
    let entry = this.items.get(code);
    if (!entry) {
      entry = registeredItemCodes(this.db, [code]).then((set) => set.has(code));
      if (this.items.size > 50_000) this.items.clear();
      this.items.set(code, entry);
      entry.then(
        (known) => !known && this.items.delete(code), // unknown codes are not remembered
        () => this.items.delete(code),
      );
    }
    return entry;
  }

  /**
   * Allowed → which fields may be unmasked; otherwise GRANT_MISSING with `missing: { resource, fields, itemCode }`
   * naming exactly what no grant covers.
   */
  async check(client: Pick<ClientPrincipal, 'clientId'>, resourceCode: string, fields: readonly string[], itemCode: string, now = Date.now(), licenceType?: string | null): Promise<GrantDecision> {
    const resource = await this.resource(resourceCode);
    if (!resource || resource.status !== 'PUBLISHED') throw grantMissing(resourceCode, fields, itemCode, 'the resource is not published');
    const { grants: all } = await this.grantsOf(client.clientId);
    let usable = all.filter((g) => g.resourceCode === resourceCode && g.itemCodes.includes(itemCode) && (!g.expiresAt || g.expiresAt.getTime() > now));
    if (licenceType && usable.length) {
      // 调用权限 per 证照类型: a grant opens the licence types it names, and no other
      usable = usable.filter((g) => (g.licenceTypes ?? []).includes(licenceType));
      if (usable.length === 0) throw new HubError('GRANT_MISSING', `no grant lets you read licences of type ${licenceType} for item ${itemCode}`, { missing: { resource: resourceCode, fields: [...fields], itemCode, licenceType } });
    }
    if (usable.length === 0) {
      const anyForResource = all.some((g) => g.resourceCode === resourceCode && (!g.expiresAt || g.expiresAt.getTime() > now));
      throw grantMissing(resourceCode, fields, itemCode, anyForResource ? `your grants do not cover item ${itemCode}` : 'you hold no grant on this resource');
    }
    const covered = new Set(usable.flatMap((g) => g.fields));
    const uncovered = fields.filter((f) => !covered.has(f));
    if (uncovered.length) throw grantMissing(resourceCode, uncovered, itemCode, 'these 信息项 are outside your grants');
    const used = usable.filter((g) => g.fields.some((f) => fields.includes(f)));
    return { grantIds: used.map((g) => g.id), resource, granted: covered, unmaskedFields: new Set(used.flatMap((g) => g.unmaskedFields)), licenceTypes: new Set(usable.flatMap((g) => g.licenceTypes ?? [])) };
  }

  /** allowedResources (like X-Road allowedMethods): the caller's usable grants, merged per resource. */
  async allowed(clientId: string, now = Date.now()): Promise<{ resource: Resource; fields: string[]; unmaskedFields: string[]; itemCodes: string[]; licenceTypes: string[] | null; expiresAt: Date | null }[]> {
    const { grants: all } = await this.grantsOf(clientId);
    const byResource = new Map<string, Grant[]>();
    for (const g of all) {
      if (g.expiresAt && g.expiresAt.getTime() <= now) continue;
      byResource.set(g.resourceCode, [...(byResource.get(g.resourceCode) ?? []), g]);
    }
    const out = [];
    for (const [code, gs] of [...byResource.entries()].sort(([a], [b]) => a.localeCompare(b))) {
      const resource = await this.resource(code);
      if (!resource || resource.status !== 'PUBLISHED') continue;
      const expiries = gs.map((g) => g.expiresAt);
      out.push({
        resource,
        fields: [...new Set(gs.flatMap((g) => g.fields))],
        unmaskedFields: [...new Set(gs.flatMap((g) => g.unmaskedFields))],
        itemCodes: [...new Set(gs.flatMap((g) => g.itemCodes))],
        licenceTypes: resource.baseKind === 'LICENCE' ? [...new Set(gs.flatMap((g) => g.licenceTypes ?? []))].sort() : null,
        expiresAt: expiries.includes(null) ? null : new Date(Math.max(...expiries.map((e) => e!.getTime()))),
      });
    }
    return out;
  }

  async close(): Promise<void> {
    for (const u of this.unlisten) await u();
  }
}
