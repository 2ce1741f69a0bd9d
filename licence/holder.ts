import crypto from 'node:crypto';
import { and, desc, eq, gt, isNull, ne, or, sql } from 'drizzle-orm';
import QRCode from 'qrcode';
import { appendInTransaction } from '../audit/writer.ts';
import { clients } from '../auth/schema.ts';
import { requireHolder, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { maskIdNumbers } from '../core/ids.ts';
import { badInput, HubError } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { registeredItemCodes } from '../directory/items.ts';
import { licenceNotFound } from './errors.ts';
import { changeLicence, effectiveStatus, getLicence, type LicencePorts, type LicenceRow } from './issue.ts';
import { licenceAuthorisations, licenceObjections, licencePresentations, licences } from './schema.ts';
import { getLicenceType } from './types.ts';

export type LicenceAuthorisation = typeof licenceAuthorisations.$inferSelect;
export type LicenceObjection = typeof licenceObjections.$inferSelect;

const MAX_AUTHORISATION_DAYS = 90;

function holderAudit(ctx: HubContext, operation: string, extra: { reason?: string | null; details: Record<string, unknown>; resourceCode?: string | null }) {
  const h = requireHolder(ctx);
  return { clientId: null, department: null, operator: h.name || null, operation, subject: h.subject, outcome: 'DONE' as const, requestId: ctx.requestId, reason: extra.reason ?? null, resourceCode: extra.resourceCode ?? null, details: extra.details };
}

/** A holder's own licences (current versions), for the holder's view. */
export async function myLicences(ctx: HubContext): Promise<LicenceRow[]> {
  const h = requireHolder(ctx);
  return ctx.db.select().from(licences).where(and(eq(licences.holderCode, h.subject), ne(licences.status, 'SUPERSEDED'))).orderBy(desc(licences.issuedAt)).limit(200);
}

async function ownLicence(ctx: HubContext, identifier: string): Promise<LicenceRow> {
  const h = requireHolder(ctx);
  const row = await getLicence(ctx.db, identifier);
  if (!row || row.holderCode !== h.subject) throw licenceNotFound(identifier); // another holder's licence is not disclosed
  return row;
}

/**
 * 授权用证: the holder lets one client use its licences for one item (and case, and type) until a time; `licences`
 * then answers that client without a grant. Recorded in the audit log.
 */
export async function authoriseLicenceUse(ctx: HubContext, input: { clientId: string; itemCode: string; caseId?: string | null; typeCode?: string | null; validUntil: string }, now = new Date()): Promise<LicenceAuthorisation> {
  const h = requireHolder(ctx);
  const [client] = await ctx.db.select({ id: clients.clientId, roles: clients.roles, status: clients.status }).from(clients).where(eq(clients.clientId, input.clientId ?? ''));
  if (!client || client.status !== 'active' || !client.roles.includes('consumer')) throw badInput('clientId', `${input.clientId} is not an active approval system`);
  const itemCode = input.itemCode?.trim() ?? '';
  if (!(await registeredItemCodes(ctx.db, [itemCode])).has(itemCode)) throw badInput('itemCode', `事项编码 ${itemCode} is not a registered service item`);
  if (input.typeCode && !(await getLicenceType(ctx.db, input.typeCode))) throw badInput('typeCode', `licence type ${input.typeCode} is not registered`);
  const until = new Date(input.validUntil);
  if (Number.isNaN(until.getTime())) throw badInput('validUntil', 'validUntil is an ISO instant');
  if (until <= now) throw badInput('validUntil', 'validUntil lies in the future');
  if (until.getTime() - now.getTime() > MAX_AUTHORISATION_DAYS * 86_400_000) throw badInput('validUntil', `an authorisation lasts at most ${MAX_AUTHORISATION_DAYS} days`);
  return ctx.db.transaction(async (tx) => {
    const [a] = await tx
      .insert(licenceAuthorisations)
      .values({ holderCode: h.subject, clientId: client.id, itemCode, caseId: input.caseId?.trim() || null, typeCode: input.typeCode ?? null, validUntil: until })
      .returning();
    await appendInTransaction(tx, [holderAudit(ctx, 'LICENCE_AUTHORISE', { details: { authorisation: a!.id, clientId: client.id, itemCode, caseId: a!.caseId, typeCode: a!.typeCode, validUntil: until.toISOString() } })]);
    return a!;
  });
}

export async function revokeLicenceAuthorisation(ctx: HubContext, id: string): Promise<LicenceAuthorisation> {
  const h = requireHolder(ctx);
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new HubError('NOT_FOUND', `authorisation ${id} not found`);
  return ctx.db.transaction(async (tx) => {
    const [a] = await tx
      .update(licenceAuthorisations)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(licenceAuthorisations.id, id), eq(licenceAuthorisations.holderCode, h.subject), isNull(licenceAuthorisations.revokedAt)))
      .returning();
    if (!a) throw new HubError('NOT_FOUND', `authorisation ${id} not found`);
    await appendInTransaction(tx, [holderAudit(ctx, 'LICENCE_AUTHORISE_REVOKE', { details: { authorisation: id, clientId: a.clientId } })]);
    return a;
  });
}

export async function myLicenceAuthorisations(ctx: HubContext): Promise<LicenceAuthorisation[]> {
  const h = requireHolder(ctx);
  return ctx.db.select().from(licenceAuthorisations).where(eq(licenceAuthorisations.holderCode, h.subject)).orderBy(desc(licenceAuthorisations.createdAt)).limit(200);
}

/** The holder's authorisation that lets this client read for this item (and case, and type), if any. */
export async function findAuthorisation(db: Db, q: { holderCode: string; clientId: string; itemCode: string; caseId: string | null; typeCode: string | null }): Promise<LicenceAuthorisation | undefined> {
  const [a] = await db
    .select()
    .from(licenceAuthorisations)
    .where(
      and(
        eq(licenceAuthorisations.holderCode, q.holderCode),
        eq(licenceAuthorisations.clientId, q.clientId),
        eq(licenceAuthorisations.itemCode, q.itemCode),
        isNull(licenceAuthorisations.revokedAt),
        gt(licenceAuthorisations.validUntil, sql`now()`),
        q.caseId ? or(isNull(licenceAuthorisations.caseId), eq(licenceAuthorisations.caseId, q.caseId)) : isNull(licenceAuthorisations.caseId),
        q.typeCode ? or(isNull(licenceAuthorisations.typeCode), eq(licenceAuthorisations.typeCode, q.typeCode)) : isNull(licenceAuthorisations.typeCode),
      ),
    )
    .limit(1);
  return a;
}

const PRESENTATION_SECONDS = 300;

const tokenHash = (token: string) => crypto.createHash('sha256').update(token).digest('hex');

/**
 * 亮证: a one-time link (and its QR code) to a page that shows the licence's face and validity, valid for a few
 * minutes. Only the token's hash is stored; the first GET uses it up.
 */
export async function presentLicence(ctx: HubContext, issuer: string, identifier: string, seconds = PRESENTATION_SECONDS): Promise<{ url: string; qr: string; expiresAt: Date }> {
  const row = await ownLicence(ctx, identifier);
  if (!Number.isInteger(seconds) || seconds < 30 || seconds > 600) throw badInput('seconds', 'a presentation lasts 30 to 600 seconds');
  const token = crypto.randomBytes(24).toString('base64url');
  const expiresAt = new Date(Date.now() + seconds * 1000);
  await ctx.db.transaction(async (tx) => {
    await tx.insert(licencePresentations).values({ tokenHash: tokenHash(token), identifier: row.identifier, holderCode: row.holderCode, expiresAt });
    await appendInTransaction(tx, [holderAudit(ctx, 'LICENCE_PRESENT', { resourceCode: row.typeCode, details: { identifier: row.identifier, expiresAt: expiresAt.toISOString() } })]);
  });
  const url = `${issuer}/licences/show/${token}`;
  return { url, qr: await QRCode.toDataURL(url, { errorCorrectionLevel: 'M', margin: 1 }), expiresAt };
}

/** The page a 亮证 link opens: once, before it expires; the viewing is recorded. */
export async function viewPresentation(db: Db, token: string, viewer: string | null): Promise<{ row: LicenceRow; typeName: string } | null> {
  if (!/^[A-Za-z0-9_-]{20,64}$/.test(token)) return null;
  return db.transaction(async (tx) => {
    const [p] = await tx
      .update(licencePresentations)
      .set({ usedAt: sql`now()` })
      .where(and(eq(licencePresentations.tokenHash, tokenHash(token)), isNull(licencePresentations.usedAt), gt(licencePresentations.expiresAt, sql`now()`)))
      .returning();
    if (!p) return null;
    const row = (await getLicence(tx, p.identifier))!;
    const type = await getLicenceType(tx, row.typeCode);
    await appendInTransaction(tx, [
      { clientId: null, department: null, operation: 'LICENCE_PRESENTATION_VIEW', subject: row.holderCode, resourceCode: row.typeCode, outcome: 'RETURNED', details: { identifier: row.identifier, viewer } },
    ]);
    return { row, typeName: type?.name ?? String(row.metadata.ZZMC ?? '') };
  });
}

const escapeHtml = (v: unknown) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The public page of a presented licence: face, validity, status (sensitive face fields partly hidden, and a 证照编号
 * that is a 公民身份号码, the 居民身份证's, masked as everywhere a licence is shown to people).
 */
export function presentationPage(p: { row: LicenceRow; typeName: string }, sensitive: Set<string>, names: Map<string, string>): string {
  const { row } = p;
  const status = effectiveStatus(row);
  const STATUS_ZH: Record<string, string> = { VALID: '有效', SUSPENDED: '暂扣', REVOKED: '撤销', CANCELLED: '注销', WITHDRAWN: '吊销', EXPIRED: '失效', SUPERSEDED: '已变更' };
  const hide = (v: unknown) => {
    const s = String(v ?? '');
    return s.length <= 4 ? '****' : `${s.slice(0, 3)}${'*'.repeat(Math.max(4, s.length - 6))}${s.slice(-3)}`;
  };
  const face = Object.entries(row.face)
    .map(([k, v]) => `<tr><th>${escapeHtml(names.get(k) ?? k)}</th><td>${escapeHtml(sensitive.has(k) ? hide(v) : v)}</td></tr>`)
    .join('');
  return `<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(p.typeName)}</title></head>
<body><h1>${escapeHtml(p.typeName)}</h1>
<p>状态：<strong>${escapeHtml(STATUS_ZH[status] ?? status)}</strong></p>
<table><tr><th>持证主体</th><td>${escapeHtml(row.holderName)}</td></tr><tr><th>证照编号</th><td>${escapeHtml(maskIdNumbers(row.number))}</td></tr>
<tr><th>颁发机构</th><td>${escapeHtml(row.issuerName)}</td></tr><tr><th>有效期</th><td>${escapeHtml(row.validFrom)} 至 ${escapeHtml(row.validUntil ?? '长期')}</td></tr>${face}</table>
<p><small>证照标识 ${escapeHtml(row.identifier)}。此页面仅可打开一次。</small></p></body></html>`;
}

/** 异议: the holder objects to one field of its licence; the licence is under objection until the issuer decides. */
export async function objectToLicence(ctx: HubContext, identifier: string, field: string, reason: string): Promise<LicenceObjection> {
  const row = await ownLicence(ctx, identifier);
  const type = (await getLicenceType(ctx.db, row.typeCode))!;
  if (field !== 'holderName' && !type.faceFields.some((f) => f.code === field)) throw badInput('field', `${field} is neither holderName nor a face field of ${type.name}`);
  if (!reason?.trim()) throw badInput('reason', 'state what is wrong');
  if (row.status === 'SUPERSEDED' || row.status === 'REVOKED' || row.status === 'CANCELLED' || row.status === 'WITHDRAWN') throw new HubError('CONFLICT', `licence ${identifier} is ${row.status}`);
  return ctx.db.transaction(async (tx) => {
    const [o] = await tx.insert(licenceObjections).values({ identifier, holderCode: row.holderCode, issuerCode: row.issuerCode, field, reason: reason.trim() }).returning();
    await appendInTransaction(tx, [holderAudit(ctx, 'LICENCE_OBJECTION', { reason: reason.trim(), resourceCode: row.typeCode, details: { identifier, objection: o!.id, field } })]);
    return o!;
  });
}

/**
 * The issuer decides an objection: corrected by a new version (the face given; the old version SUPERSEDED) or
 * rejected with its reason. Both in one transaction with their audit entries.
 */
export async function decideLicenceObjection(ctx: HubContext, ports: LicencePorts, id: string, decision: { accept: boolean; reason: string; face?: Record<string, unknown> | null }): Promise<LicenceObjection> {
  requireRole(ctx, 'issuer', 'admin');
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new HubError('NOT_FOUND', `objection ${id} not found`);
  const [o] = await ctx.db.select().from(licenceObjections).where(eq(licenceObjections.id, id));
  if (!o) throw new HubError('NOT_FOUND', `objection ${id} not found`);
  requireOwnDepartment(ctx, o.issuerCode, `the objection to ${o.identifier}`);
  if (o.status !== 'PENDING') throw new HubError('CONFLICT', `objection ${id} is already ${o.status}`);
  const reason = decision.reason?.trim();
  if (!reason) throw badInput('reason', 'a decision states its reason');
  if (decision.accept && (!decision.face || typeof decision.face !== 'object')) throw badInput('face', 'a correction gives the corrected face fields');
  return ctx.db.transaction(async (tx) => {
    let newIdentifier: string | null = null;
    if (decision.accept) newIdentifier = (await changeLicence({ ...ctx, db: tx }, ports, o.identifier, decision.face!, `异议更正：${reason}`)).identifier;
    const [updated] = await tx
      .update(licenceObjections)
      .set({ status: decision.accept ? 'CORRECTED' : 'REJECTED', decisionReason: reason, newIdentifier, decidedBy: ctx.principal.clientId, decidedAt: sql`now()` })
      .where(and(eq(licenceObjections.id, id), eq(licenceObjections.status, 'PENDING')))
      .returning();
    if (!updated) throw new HubError('CONFLICT', `objection ${id} was decided meanwhile`);
    await appendInTransaction(tx, [
      { clientId: ctx.principal.clientId, department: ctx.principal.department, operation: 'LICENCE_OBJECTION_DECISION', subject: o.holderCode, outcome: 'DONE', reason, requestId: ctx.requestId, details: { identifier: o.identifier, objection: id, accept: decision.accept, newIdentifier } },
    ]);
    return updated;
  });
}

export async function objectionsOf(db: Db, identifier: string): Promise<LicenceObjection[]> {
  return db.select().from(licenceObjections).where(eq(licenceObjections.identifier, identifier)).orderBy(desc(licenceObjections.createdAt));
}

/** Pending objections to the caller's department's licences (admin: all). */
export async function pendingObjections(ctx: HubContext): Promise<LicenceObjection[]> {
  const p = requireRole(ctx, 'issuer', 'admin');
  return ctx.db
    .select()
    .from(licenceObjections)
    .where(and(eq(licenceObjections.status, 'PENDING'), ...(p.roles.includes('admin') ? [] : [eq(licenceObjections.issuerCode, p.department)])))
    .orderBy(licenceObjections.createdAt)
    .limit(500);
}
