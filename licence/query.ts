import { and, desc, eq, inArray, ne } from 'drizzle-orm';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { HubError } from '../core/errors.ts';
import { idNumberProblem, maskIdNumber, usccProblem } from '../core/ids.ts';
import type { ReadLimiter } from '../basedata/rate-limit.ts';
import { PurposeBoundRead, type PurposeInput, type PurposePorts } from '../directory/purpose.ts';
import { holderAuthorisedView, LICENCE_ITEMS, missingForAllClaims, viewOf, type LicenceView } from './disclosure.ts';
import { licenceNotFound } from './errors.ts';
import { findAuthorisation } from './holder.ts';
import type { LicenceRow } from './issue.ts';
import { licences, licenceUses, licenceUseNotices } from './schema.ts';
import { getLicenceType, type LicenceType } from './types.ts';

export type { PurposeInput };

export interface LicenceReadPorts extends PurposePorts {
  /** the per-client read budget the base reads share */
  limiter: ReadLimiter;
}
type Ctx = HubContext & LicenceReadPorts;

/**
 * The 信息项 each field of Licence shows: what selecting it needs a grant for. The all-claims credential carries them
 * all; an SD-JWT presentation and the metadata carry what the grant covers (and nothing else), so they need no more
 * than the licence's identity. A field not named here needs its identity too.
 */
const FIELD_ITEMS: Record<string, readonly string[]> = {
  __typename: [],
  typeCode: ['typeCode'],
  name: ['typeCode'],
  number: ['number'],
  holderName: ['holderName'],
  holderCode: ['holderCode'],
  holderCodeType: ['holderCode'],
  issuerName: ['issuerName'],
  issuerCode: ['issuerName'],
  validFrom: ['validUntil'],
  validUntil: ['validUntil'],
  status: ['status'],
  statusReason: ['status'],
  face: ['face'],
  objections: ['face'],
  underObjection: ['face'],
  credential: LICENCE_ITEMS,
  // the issuer-signed JWT of an SD-JWT VC states the licence's identity in clear: type, number (unless personal),
  // issuer and validity; a presentation of it needs those, and discloses the rest as the grant allows
  sdJwt: ['typeCode', 'number', 'issuerName', 'validUntil'],
};

/** The 信息项 a selection of Licence fields needs (through fragments and aliases alike), identifier first. */
export function licenceItemsOf(fields: Iterable<string>): string[] {
  const items = new Set<string>(['identifier']);
  for (const f of fields) for (const i of FIELD_ITEMS[f] ?? ['identifier']) items.add(i);
  return LICENCE_ITEMS.filter((i) => items.has(i));
}

function holderCodeProblem(code: string): HubError | null {
  if (!idNumberProblem(code) || !usccProblem(code)) return null;
  return /^\d{17}[\dXx]$/.test(code)
    ? new HubError('INVALID_ID_NUMBER', `${maskIdNumber(code)} is not a valid 公民身份号码`, { field: 'holderCode' })
    : new HubError('INVALID_USCC', `${code} is neither a valid 统一社会信用代码 nor 公民身份号码`, { field: 'holderCode' });
}

/**
 * licences(holderCode, purpose, typeCode) for approval systems: checks in the contract's order (INVALID_ID_NUMBER /
 * INVALID_USCC, FORBIDDEN, PURPOSE_REQUIRED, GRANT_MISSING), allowed by a grant on the licence base resource for the
 * item; every refusal and read is in the audit log before anything leaves, and every licence returned is recorded
 * as used (用证记录: who, which licence, which item and case).
 */
export async function readLicences(
  ctx: Ctx,
  req: { holderCode: string; purpose: PurposeInput; typeCode?: string | null; fields: string[]; allClaims?: boolean },
): Promise<{ rows: (LicenceRow & { view: LicenceView; type: LicenceType | undefined })[] }> {
  const holderCode = (req.holderCode ?? '').trim().toUpperCase();
  const read = new PurposeBoundRead(ctx, 'LICENCE_READ', req.purpose, [holderCode], { fields: req.fields });
  const refuse = (error: HubError) => read.refuse(error);
  const problem = holderCodeProblem(holderCode);
  if (problem) await refuse(problem);
  const principal = await read.consumer();
  const itemCode = await read.itemCode();
  const withholdBasis = await read.withholdBasis(principal);
  const resourceCode = await ctx.grants.baseResourceCode('LICENCE');
  if (!resourceCode) await refuse(new HubError('GRANT_MISSING', 'no published LICENCE resource', { missing: { resource: null, fields: req.fields, itemCode } }));
  const typeCode = req.typeCode ? req.typeCode.trim().toUpperCase() : null;
  let authorisation: string | null = null;
  // 调用权限 per 证照类型: each type is read with what the grants of that type allow, never with another type's
  const views = new Map<string, LicenceView>();
  let anyType: LicenceView | null = null;
  try {
    const decision = await ctx.grants.check(principal, resourceCode!, req.fields, itemCode, Date.now(), typeCode);
    for (const t of typeCode ? [typeCode] : decision.licenceTypes) {
      try {
        views.set(t, viewOf(await ctx.grants.check(principal, resourceCode!, req.fields, itemCode, Date.now(), t)));
      } catch (error) {
        // this type's grants do not cover what was selected: its licences are not read
        if (!(error instanceof HubError && error.code === 'GRANT_MISSING')) throw error;
      }
    }
  } catch (error) {
    // 授权用证: the holder's own authorisation of this client, item (and case, type) stands in for a grant
    const a = error instanceof HubError && error.code === 'GRANT_MISSING' ? await findAuthorisation(ctx.db, { holderCode, clientId: principal.clientId, itemCode, caseId: req.purpose.caseId ?? null, typeCode }) : undefined;
    if (!a) return refuse(error as HubError);
    authorisation = a.id;
    if (a.typeCode) views.set(a.typeCode, holderAuthorisedView());
    else anyType = holderAuthorisedView();
  }
  try {
    await ctx.limiter.consume(principal.clientId, 1);
  } catch (error) {
    return refuse(error as HubError);
  }
  const types = anyType ? null : [...views.keys()];
  const found = await ctx.db
    .select()
    .from(licences)
    .where(and(eq(licences.holderCode, holderCode), ne(licences.status, 'SUPERSEDED'), ...(typeCode ? [eq(licences.typeCode, typeCode)] : types ? [inArray(licences.typeCode, [...types, ''])] : [])))
    .orderBy(desc(licences.issuedAt))
    .limit(200);
  const typeRows = new Map(await Promise.all([...new Set(found.map((r) => r.typeCode))].map(async (code) => [code, await getLicenceType(ctx.db, code)] as const)));
  const shaped = found.flatMap((r) => {
    const view = anyType ?? views.get(r.typeCode);
    return view ? [{ ...r, view, type: typeRows.get(r.typeCode) }] : [];
  });
  // the all-claims credential carries every 信息项 and face field whole: only where the grant lets all of them leave
  if (req.allClaims) {
    const notWhole = [...new Set(shaped.flatMap((r) => missingForAllClaims(r.view, r.type)))];
    if (notWhole.length) {
      return refuse(
        new HubError('GRANT_MISSING', `the all-claims credential carries ${notWhole.join(', ')}, which your grant does not let leave whole; select sdJwt for a presentation of what it covers`, {
          missing: { resource: resourceCode, fields: notWhole, itemCode, unmasked: true },
        }),
      );
    }
  }
  const seq = await ctx.audit.append(
    read.record(holderCode, { resourceCode, outcome: shaped.length ? 'RETURNED' : 'NOT_FOUND', withholdBasis, details: { typeCode, licenceTypes: types ? types.sort() : null, authorisation, identifiers: shaped.map((f) => f.identifier) } }),
  );
  ctx.auditIds.push(String(seq));
  if (shaped.length) {
    await ctx.db.insert(licenceUses).values(
      shaped.map((f) => ({ identifier: f.identifier, holderCode, clientId: principal.clientId, department: principal.department, itemCode, caseId: req.purpose.caseId ?? null, operator: req.purpose.operator ?? null, auditSeq: seq })),
    );
  }
  return { rows: shaped };
}

/** The approval system's notices: licences it used that were later suspended or revoked. */
export async function listUseNotices(ctx: HubContext, first: number) {
  const p = requireRole(ctx, 'consumer');
  return ctx.db
    .select()
    .from(licenceUseNotices)
    .where(eq(licenceUseNotices.clientId, p.clientId))
    .orderBy(desc(licenceUseNotices.createdAt))
    .limit(Math.min(Math.max(first, 1), 500));
}

/** 用证记录 of one licence, for its issuer (or an admin). */
export async function listLicenceUses(ctx: HubContext, identifier: string, first = 200) {
  requireRole(ctx, 'issuer', 'admin', 'auditor');
  const [row] = await ctx.db.select({ issuerCode: licences.issuerCode }).from(licences).where(eq(licences.identifier, identifier));
  if (!row) throw licenceNotFound(identifier);
  if (!ctx.principal.roles.includes('auditor')) requireOwnDepartment(ctx, row.issuerCode, `licence ${identifier}`);
  return ctx.db.select().from(licenceUses).where(eq(licenceUses.identifier, identifier)).orderBy(desc(licenceUses.at)).limit(Math.min(first, 1000));
}

/** 用证记录 visible to the holder: who used the holder's licences, for which item and case. */
export async function listMyLicenceUses(ctx: HubContext, first = 100) {
  if (ctx.principal.kind !== 'holder') throw new HubError('FORBIDDEN', 'this needs a holder token (a citizen or company signed in)');
  return ctx.db.select().from(licenceUses).where(eq(licenceUses.holderCode, ctx.principal.subject)).orderBy(desc(licenceUses.at)).limit(Math.min(first, 500));
}
