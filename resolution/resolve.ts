import crypto from 'node:crypto';
import { SignJWT } from 'jose';
import type { KeyRing } from '../auth/keys.ts';
import { inForce, type CreditEntryData } from '../basedata/credit.ts';
import { departmentsOf, provenance } from '../basedata/provenance.ts';
import { maskValue } from '../basedata/query.ts';
import type { BaseRecordKind } from '../basedata/schema.ts';
import { recordsBySubject, type BaseRecordView } from '../basedata/store.ts';
import type { ClientPrincipal, HubContext } from '../core/context.ts';
import { badInput, HubError, notFound } from '../core/errors.ts';
import { idNumberProblem, maskIdNumber, usccProblem } from '../core/ids.ts';
import { shanghaiDate } from '../core/time.ts';
import type { Db } from '../db/index.ts';
import type { GrantDecision } from '../directory/access.ts';
import { addWorkingDays } from '../directory/calendar.ts';
import { PurposeBoundRead, type PurposeInput, type PurposePorts } from '../directory/purpose.ts';
import { getBundle, getServiceItem, materialsOf, type Material, type ServiceItem } from '../directory/items.ts';
import { holderAuthorisedView, LICENCE_ITEMS, missingForAllClaims, numberFor, presentationFor, viewOf, type LicenceView } from '../licence/disclosure.ts';
import type { LicenceType } from '../licence/types.ts';
import type { MaterialSource } from '../directory/schema.ts';
import { materialResolutions } from './schema.ts';

export type SubjectCodeType = 'ID_NUMBER' | 'USCC';
export type OutcomeKind = 'PROVIDED_BY_LICENCE' | 'PROVIDED_BY_DATA' | 'WAIVABLE' | 'MUST_SUBMIT';
/** Why a candidate source was not used. */
export type RejectionReason =
  | 'NO_GRANT'
  | 'NO_RECORD'
  | 'EXPIRED'
  | 'NOT_YET_VALID'
  | 'SUSPENDED'
  | 'REVOKED'
  | 'CANCELLED'
  | 'WITHDRAWN'
  | 'SUPERSEDED'
  | 'UNDER_OBJECTION'
  | 'NOT_APPLICABLE'
  | 'NOT_HELD'
  | 'BLACK_LISTED';

export interface Rejection {
  source: 'LICENCE' | 'DATA' | 'WAIVER';
  reason: RejectionReason;
  detail: string;
  licenceTypeCode?: string;
  identifier?: string;
  resourceCode?: string;
  missing?: unknown;
}

export interface MaterialOutcome {
  materialCode: string;
  name: string;
  outcome: OutcomeKind;
  evidence: Record<string, unknown> | null;
  rejected: Rejection[];
  /** the items of the application that need this material (one for a single item; shared ones list several) */
  itemCodes: string[];
}

/** A licence of the applicant, as the licence store holds it (one row per version). */
export interface LicenceCandidate {
  identifier: string;
  typeCode: string;
  typeName: string;
  number: string;
  holderName: string;
  holderCode: string;
  issuerName: string;
  issuerCode: string;
  status: 'VALID' | 'SUSPENDED' | 'REVOKED' | 'CANCELLED' | 'WITHDRAWN' | 'EXPIRED' | 'SUPERSEDED';
  validFrom: string;
  validUntil: string | null;
  /** 异议: a field of it is under objection */
  underObjection: boolean;
  /** the signed W3C VC (JOSE) and SD-JWT VC, as issued */
  credential: string;
  sdJwt: string;
  /** the type's face fields (which are sensitive) and whether its number is a personal identifier */
  type: Pick<LicenceType, 'faceFields' | 'numberIsPersonalId'>;
}

/** What the resolution needs of the licence store (licence/ implements it; the resolution never writes licences). */
export interface LicenceSource {
  /** every version the holder holds of these types, newest first */
  candidates(db: Db, holderCode: string, typeCodes: readonly string[]): Promise<LicenceCandidate[]>;
  /** 授权用证: whether the holder authorised this client to use its licence of this type for this item (and case) now */
  authorised(db: Db, q: { holderCode: string; clientId: string; itemCode: string; caseId: string | null; typeCode: string }): Promise<boolean>;
  /** 用证记录: each licence used, for the holder's own view and for notices when it is later suspended or revoked */
  recordUses(db: Db, uses: { identifier: string; holderCode: string; clientId: string; department: string; itemCode: string; caseId: string | null; operator: string | null; auditSeq: number }[]): Promise<void>;
}

export interface ResolutionPorts extends PurposePorts {
  keys: KeyRing;
  issuer: string;
  licenceSource: LicenceSource;
  /** 减证便民 in /metrics: materials by item and outcome */
  materialsCounter?: { inc(labels: { item: string; outcome: string }, value: number): void };
}
type Ctx = HubContext & ResolutionPorts;

/** The 信息项 of the licence resource a caller needs to use a licence as a material (the credential carries them). */
const LICENCE_USE_FIELDS: string[] = [...LICENCE_ITEMS];
const CREDIT_FIELDS = ['blackList', 'redList', 'measures'];
/** 绿色通道: a red-list measure that admits an application with any material missing (容缺), due later. */
export const FAST_TRACK_MEASURE = 'JL-0101';
export const FAST_TRACK_DAYS = 10;
export const RECEIPT_TYP = 'materials-receipt+jwt';

/**
 * The applicant: a 公民身份号码 or a 统一社会信用代码, by its check characters. A code that passes both checks
 * (about 0.3% of ID numbers do) needs `codeType`; that is asked only once the caller may resolve at all.
 */
export function parseApplicant(raw: string, codeType?: SubjectCodeType | null): { code: string; type: SubjectCodeType | null; problem: HubError | null } {
  const code = (raw ?? '').trim().toUpperCase();
  const idOk = !idNumberProblem(code);
  const usccOk = !usccProblem(code);
  const invalidId = () => new HubError('INVALID_ID_NUMBER', `${maskIdNumber(code)} is not a valid 公民身份号码 (${idNumberProblem(code)})`, { field: 'applicantCode' });
  const invalidUscc = () => new HubError('INVALID_USCC', `${code} is not a valid 统一社会信用代码 (${usccProblem(code)})`, { field: 'applicantCode' });
  if (codeType === 'ID_NUMBER') return { code, type: 'ID_NUMBER', problem: idOk ? null : invalidId() };
  if (codeType === 'USCC') return { code, type: 'USCC', problem: usccOk ? null : invalidUscc() };
  if (idOk && usccOk) return { code, type: null, problem: null };
  if (idOk) return { code, type: 'ID_NUMBER', problem: null };
  if (usccOk) return { code, type: 'USCC', problem: null };
  // neither: name the one it most looks like (a real birth date makes it an ID number with a wrong check digit)
  const idLike = idNumberProblem(code) === 'CHECK_DIGIT' || (usccProblem(code) === 'FORMAT' && /^\d{17}[\dX]$/.test(code));
  return { code, type: null, problem: idLike ? invalidId() : invalidUscc() };
}

export interface CreditCheck {
  checked: boolean;
  /** why it was not checked (NO_GRANT) */
  reason: string | null;
  /** 失信惩戒: black-list entries in force whose measures this application's items carry */
  blackList: Record<string, unknown>[];
  /** the 联合惩戒 measures the approval system must apply */
  measures: string[];
  /** 守信激励: red-list entries in force that give the fast track */
  redList: Record<string, unknown>[];
  /** 绿色通道: wider 容缺 */
  fastTrack: boolean;
}

export interface Resolution {
  /** the item resolved (null for a bundle) */
  itemCode: string | null;
  bundleCode: string | null;
  applicantCode: string;
  codeType: SubjectCodeType;
  resolvedAt: string;
  auditId: string;
  items: { itemCode: string; name: string; materials: MaterialOutcome[] }[];
  /** every distinct material once, with the items that need it */
  materials: MaterialOutcome[];
  credit: CreditCheck;
  /** JWS (ES256, the hub's receipt key in the JWKS) over the whole resolution, with time, caller and purpose */
  receipt: string;
}

interface Group {
  material: Material;
  itemCodes: string[];
  /** each item's own code for the material */
  codes: Map<string, string>;
}

/** Materials of several items, shared ones once: the same name, sources and tolerance make one material. */
function groupMaterials(items: ServiceItem[], byItem: Map<string, Material[]>): Group[] {
  const groups = new Map<string, Group>();
  for (const item of items) {
    for (const m of byItem.get(item.code) ?? []) {
      const key = JSON.stringify([m.name, m.sources, m.tolerance, m.toleranceDays, m.commitmentText]);
      const g = groups.get(key);
      if (g) {
        g.itemCodes.push(item.code);
        g.codes.set(item.code, m.code);
      } else groups.set(key, { material: m, itemCodes: [item.code], codes: new Map([[item.code, m.code]]) });
    }
  }
  return [...groups.values()];
}

interface Used {
  licences: LicenceCandidate[];
  records: string[];
  /** the applicant's current records by base kind, read once per resolution */
  read: Map<BaseRecordKind, Promise<BaseRecordView[]>>;
}

function applicantRecords(ctx: Ctx, used: Used, kind: BaseRecordKind, code: string): Promise<BaseRecordView[]> {
  let r = used.read.get(kind);
  if (!r) used.read.set(kind, (r = recordsBySubject(ctx.db, kind, [code])));
  return r;
}

/** A grant check for every item that needs the material: the data serves each of them. */
async function grantFor(ctx: Ctx, p: ClientPrincipal, resourceCode: string, fields: string[], itemCodes: string[], licenceType?: string): Promise<{ decision: GrantDecision; decisions: GrantDecision[] } | { error: HubError }> {
  const decisions: GrantDecision[] = [];
  for (const itemCode of itemCodes) {
    try {
      decisions.push(await ctx.grants.check(p, resourceCode, fields, itemCode, Date.now(), licenceType));
    } catch (error) {
      if (error instanceof HubError && error.code === 'GRANT_MISSING') return { error };
      throw error;
    }
  }
  return { decision: decisions.at(-1)!, decisions };
}

async function tryLicence(
  ctx: Ctx,
  p: ClientPrincipal,
  applicant: { code: string },
  source: Extract<MaterialSource, { kind: 'LICENCE' }>,
  itemCodes: string[],
  purpose: PurposeInput,
  today: string,
  used: Used,
): Promise<{ evidence: Record<string, unknown> } | { rejected: Rejection[] }> {
  const typeCode = source.licenceTypeCode;
  const licenceResource = await ctx.grants.baseResourceCode('LICENCE');
  // 调用权限: a grant on the licence resource for this 证照类型 and every item, or the holder's authorisation
  let view: LicenceView | null = null;
  if (licenceResource) {
    const granted = await grantFor(ctx, p, licenceResource, LICENCE_USE_FIELDS, itemCodes, typeCode);
    if ('decisions' in granted) view = viewOf(...granted.decisions);
  }
  if (!view) {
    const authorised = await Promise.all(itemCodes.map((itemCode) => ctx.licenceSource.authorised(ctx.db, { holderCode: applicant.code, clientId: p.clientId, itemCode, caseId: purpose.caseId ?? null, typeCode })));
    if (authorised.every(Boolean)) view = holderAuthorisedView();
  }
  // without a grant or the holder's authorisation, nothing about the holder's licences is told
  if (!view) return { rejected: [{ source: 'LICENCE', reason: 'NO_GRANT', licenceTypeCode: typeCode, detail: `no grant on the licence resource for ${itemCodes.join(', ')}, and no 授权用证 by the holder` }] };
  const candidates = await ctx.licenceSource.candidates(ctx.db, applicant.code, [typeCode]);
  if (candidates.length === 0) return { rejected: [{ source: 'LICENCE', reason: 'NO_RECORD', licenceTypeCode: typeCode, detail: `the applicant holds no licence of type ${typeCode}` }] };
  const rejected: Rejection[] = [];
  for (const l of candidates) {
    const reject = (reason: RejectionReason, detail: string) => rejected.push({ source: 'LICENCE', reason, licenceTypeCode: typeCode, identifier: l.identifier, detail });
    // as the view may see it (the 居民身份证's is the holder's ID number)
    const number = numberFor(view, l.type, l.number);
    if (l.status === 'SUPERSEDED') reject('SUPERSEDED', `${l.typeName} ${number} was replaced by a newer version`);
    else if (l.status === 'SUSPENDED') reject('SUSPENDED', `${l.typeName} ${number} is suspended (暂扣)`);
    else if (l.status === 'REVOKED' || l.status === 'CANCELLED' || l.status === 'WITHDRAWN') reject(l.status, `${l.typeName} ${number} is ${l.status.toLowerCase()}`);
    else if (l.status === 'EXPIRED' || (l.validUntil && l.validUntil < today)) reject('EXPIRED', `${l.typeName} ${number} expired on ${l.validUntil}`);
    else if (l.validFrom > today) reject('NOT_YET_VALID', `${l.typeName} ${number} is valid from ${l.validFrom}`);
    else if (l.underObjection) reject('UNDER_OBJECTION', `${l.typeName} ${number} has a field under objection (异议)`);
    else {
      used.licences.push(l);
      return {
        evidence: {
          kind: 'LICENCE',
          identifier: l.identifier,
          typeCode: l.typeCode,
          name: l.typeName,
          number: numberFor(view, l.type, l.number),
          holderName: l.holderName,
          issuerName: l.issuerName,
          issuerCode: l.issuerCode,
          validFrom: l.validFrom,
          validUntil: l.validUntil,
          status: l.status,
          // the all-claims credential where every 信息项 may leave whole; else an SD-JWT presentation of what may
          ...(missingForAllClaims(view, l.type).length === 0 ? { credential: l.credential } : { sdJwt: presentationFor(view, l.type, l.sdJwt) }),
        },
      };
    }
  }
  return { rejected };
}

const KIND_OF_BASE: Partial<Record<string, { kind: BaseRecordKind; holder: SubjectCodeType | null }>> = {
  POPULATION: { kind: 'population', holder: 'ID_NUMBER' },
  LEGAL_PERSON: { kind: 'legal_person', holder: 'USCC' },
  CREDIT: { kind: 'credit', holder: null },
};

async function tryData(
  ctx: Ctx,
  p: ClientPrincipal,
  applicant: { code: string; type: SubjectCodeType },
  source: Extract<MaterialSource, { kind: 'DATA' }>,
  itemCodes: string[],
  used: Used,
): Promise<{ evidence: Record<string, unknown> } | { rejected: Rejection[] }> {
  const { resourceCode, fields } = source;
  const grant = await grantFor(ctx, p, resourceCode, fields, itemCodes);
  if ('error' in grant) return { rejected: [{ source: 'DATA', reason: 'NO_GRANT', resourceCode, detail: grant.error.message, missing: grant.error.extensions.missing }] };
  const resource = grant.decision.resource;
  const base = resource.baseKind ? KIND_OF_BASE[resource.baseKind] : undefined;
  if (!base) return { rejected: [{ source: 'DATA', reason: 'NOT_HELD', resourceCode, detail: `the hub holds no records of ${resource.name} (${resourceCode}): it is not a base resource synced into the hub` }] };
  if (base.holder && base.holder !== applicant.type) {
    return { rejected: [{ source: 'DATA', reason: 'NOT_APPLICABLE', resourceCode, detail: `${resource.name} holds ${base.holder === 'ID_NUMBER' ? 'persons' : 'legal persons'}; the applicant is ${applicant.type === 'ID_NUMBER' ? 'a person' : 'a legal person'}` }] };
  }
  const record = (await applicantRecords(ctx, used, base.kind, applicant.code))[0];
  if (!record) return { rejected: [{ source: 'DATA', reason: 'NO_RECORD', resourceCode, detail: `${resource.name} has no record of the applicant` }] };
  const sensitive = new Set(resource.fields.filter((f) => f.sensitive).map((f) => f.code));
  const unmasked = grant.decision.unmaskedFields;
  const values = Object.fromEntries(fields.map((f) => [f, sensitive.has(f) && !unmasked.has(f) ? maskValue(f, record.data[f]) : (record.data[f] ?? null)]));
  used.records.push(`${resourceCode}:${record.key}@${record.version}`);
  const depts = await departmentsOf(ctx.db, [record]);
  return { evidence: { kind: 'DATA', resourceCode, fields: values, provenance: provenance(record, resourceCode, depts) } };
}

async function creditCheck(ctx: Ctx, p: ClientPrincipal, applicantCode: string, items: ServiceItem[], today: string, used: Used): Promise<CreditCheck> {
  const none: CreditCheck = { checked: false, reason: null, blackList: [], measures: [], redList: [], fastTrack: false };
  const resourceCode = await ctx.grants.baseResourceCode('CREDIT');
  if (!resourceCode) return { ...none, reason: 'NOT_HELD' };
  const grant = await grantFor(
    ctx,
    p,
    resourceCode,
    CREDIT_FIELDS,
    items.map((i) => i.code),
  );
  if ('error' in grant) return { ...none, reason: 'NO_GRANT' };
  const entries = await applicantRecords(ctx, used, 'credit', applicantCode);
  const current = entries.filter((e) => inForce(e.data as CreditEntryData, today));
  const itemMeasures = new Map(items.map((i) => [i.code, new Set(i.measureCodes)]));
  const blackList: Record<string, unknown>[] = [];
  const measures = new Set<string>();
  const redList: Record<string, unknown>[] = [];
  for (const e of current) {
    const d = e.data as CreditEntryData;
    const entryMeasures = d.measures ?? [];
    const entry = { entryId: d.entryId, authority: d.authority, reason: d.reason, basis: d.basis, listedOn: d.listedOn ?? null, validUntil: d.validUntil ?? null };
    if (d.listType === 'BLACK') {
      const hits = [...itemMeasures].map(([code, set]) => ({ code, matching: entryMeasures.filter((m) => set.has(m)) })).filter((h) => h.matching.length);
      if (hits.length === 0) continue;
      const matching = [...new Set(hits.flatMap((h) => h.matching))];
      matching.forEach((m) => measures.add(m));
      blackList.push({ ...entry, measures: matching, itemCodes: hits.map((h) => h.code) });
      used.records.push(`${resourceCode}:${e.key}@${e.version}`);
    } else if (d.listType === 'RED' && entryMeasures.includes(FAST_TRACK_MEASURE)) {
      redList.push({ ...entry, measures: entryMeasures });
      used.records.push(`${resourceCode}:${e.key}@${e.version}`);
    }
  }
  return { checked: true, reason: null, blackList, measures: [...measures].sort(), redList, fastTrack: redList.length > 0 };
}

/** What is left when no licence or record provides the material: 容缺, 告知承诺, the red list's fast track, or submit. */
async function waiver(ctx: Ctx, m: Material, g: Group, credit: CreditCheck, now: Date): Promise<{ outcome: OutcomeKind; evidence: Record<string, unknown> | null; rejected: Rejection[] }> {
  const blackListed = credit.blackList.filter((e) => (e.itemCodes as string[]).some((c) => g.itemCodes.includes(c)));
  const tolerant = m.tolerance !== 'NONE' || credit.fastTrack;
  if (tolerant && blackListed.length) {
    // 失信主体 are not admitted on a commitment or with materials missing (联合惩戒)
    return { outcome: 'MUST_SUBMIT', evidence: null, rejected: [{ source: 'WAIVER', reason: 'BLACK_LISTED', detail: `the applicant is on the black list (${blackListed.map((e) => e.entryId).join(', ')}): no 容缺 or 告知承诺` }] };
  }
  if (m.tolerance === 'COMMITMENT') return { outcome: 'WAIVABLE', evidence: { kind: 'COMMITMENT', commitmentText: m.commitmentText }, rejected: [] };
  if (m.tolerance === 'RONGQUE' || credit.fastTrack) {
    const days = m.tolerance === 'RONGQUE' ? m.toleranceDays! : FAST_TRACK_DAYS;
    const due = await addWorkingDays(ctx.db, now, days);
    return {
      outcome: 'WAIVABLE',
      evidence: {
        kind: 'RONGQUE',
        workingDays: days,
        dueAt: due.dueAt.toISOString(),
        provisional: due.provisional,
        ...(m.tolerance === 'RONGQUE' ? {} : { fastTrack: true, basis: credit.redList.map((e) => e.entryId) }),
      },
      rejected: [],
    };
  }
  return { outcome: 'MUST_SUBMIT', evidence: null, rejected: [] };
}

async function resolveGroup(ctx: Ctx, p: ClientPrincipal, applicant: { code: string; type: SubjectCodeType }, g: Group, purpose: PurposeInput, credit: CreditCheck, now: Date, today: string, used: Used): Promise<MaterialOutcome> {
  const m = g.material;
  const rejected: Rejection[] = [];
  const out = (outcome: OutcomeKind, evidence: Record<string, unknown> | null, more: Rejection[] = []): MaterialOutcome => ({ materialCode: m.code, name: m.name, outcome, evidence, rejected: [...rejected, ...more], itemCodes: g.itemCodes });
  for (const source of m.sources) {
    if (source.kind === 'SUBMIT') break;
    const r = source.kind === 'LICENCE' ? await tryLicence(ctx, p, applicant, source, g.itemCodes, purpose, today, used) : await tryData(ctx, p, applicant, source, g.itemCodes, used);
    if ('evidence' in r) return out(source.kind === 'LICENCE' ? 'PROVIDED_BY_LICENCE' : 'PROVIDED_BY_DATA', r.evidence);
    rejected.push(...r.rejected);
  }
  const w = await waiver(ctx, m, g, credit, now);
  return out(w.outcome, w.evidence, w.rejected);
}

export interface ResolveInput {
  applicantCode: string;
  codeType?: SubjectCodeType | null;
  purpose: PurposeInput;
}

/** 免提交 for one item. */
export function resolveMaterials(ctx: Ctx, input: ResolveInput & { itemCode: string }): Promise<Resolution> {
  return resolve(ctx, input, { itemCode: input.itemCode });
}

/** 免提交 for a "一件事" bundle: its items at once, shared materials resolved once. */
export function resolveBundle(ctx: Ctx, input: ResolveInput & { bundleCode: string }): Promise<Resolution> {
  return resolve(ctx, input, { bundleCode: input.bundleCode });
}

async function resolve(ctx: Ctx, input: ResolveInput, target: { itemCode?: string; bundleCode?: string }): Promise<Resolution> {
  const now = new Date();
  const applicant = parseApplicant(input.applicantCode, input.codeType);
  const purpose = input.purpose ?? ({} as PurposeInput);
  const read = new PurposeBoundRead(ctx, 'MATERIALS_RESOLVE', purpose, [applicant.code], { details: { ...target } });
  const refuse = (error: HubError) => read.refuse(error);
  if (applicant.problem) await refuse(applicant.problem);
  const p = await read.consumer();
  const itemCode = await read.itemCode();
  const bundle = target.bundleCode ? await getBundle(ctx.db, target.bundleCode) : undefined;
  if (target.bundleCode && !bundle) await refuse(notFound(`一件事 ${target.bundleCode}`));
  const itemCodes = bundle ? bundle.itemCodes : [target.itemCode!];
  if (!itemCodes.includes(itemCode)) {
    await refuse(new HubError('PURPOSE_REQUIRED', bundle ? `purpose.itemCode ${itemCode} is not an item of ${bundle.name}` : `purpose.itemCode ${itemCode} is not the item resolved (${target.itemCode})`));
  }
  const withholdBasis = await read.withholdBasis(p);
  if (!applicant.type) await refuse(badInput('codeType', `${maskIdNumber(applicant.code)} is both a valid 公民身份号码 and a valid 统一社会信用代码: say which (codeType)`));
  const codeType = applicant.type!;
  const items: ServiceItem[] = [];
  for (const code of itemCodes) {
    const item = await getServiceItem(ctx.db, code);
    if (!item) await refuse(notFound(`service item ${code}`));
    items.push(item!);
  }

  const used: Used = { licences: [], records: [], read: new Map() };
  const today = shanghaiDate(now);
  const credit = await creditCheck(ctx, p, applicant.code, items, today, used);
  const byItem = await materialsOf(
    ctx.db,
    items.map((i) => i.code),
  );
  const groups = groupMaterials(items, byItem);
  const materials: MaterialOutcome[] = [];
  const outcomeOf = new Map<string, MaterialOutcome>(); // item code + its material code → the shared outcome
  for (const g of groups) {
    const outcome = await resolveGroup(ctx, p, { code: applicant.code, type: codeType }, g, purpose, credit, now, today, used);
    materials.push(outcome);
    for (const [item, code] of g.codes) outcomeOf.set(`${item}\u0000${code}`, outcome);
  }

  // the record of the read, committed before anything leaves the hub (fail closed)
  const auditSeq = await ctx.audit.append(
    read.record(applicant.code, {
      outcome: 'RETURNED',
      withholdBasis,
      details: {
        ...target,
        items: itemCodes,
        materials: materials.map((m) => ({
          code: m.materialCode,
          items: m.itemCodes,
          outcome: m.outcome,
          ...(m.evidence?.kind === 'LICENCE' ? { licence: m.evidence.identifier } : {}),
          ...(m.evidence?.kind === 'DATA' ? { resource: m.evidence.resourceCode, version: (m.evidence.provenance as { version: number }).version } : {}),
        })),
        licences: [...new Set(used.licences.map((l) => l.identifier))],
        records: [...new Set(used.records)],
        credit: { checked: credit.checked, blackList: credit.blackList.map((e) => e.entryId), fastTrack: credit.fastTrack },
      },
    }),
  );
  ctx.auditIds.push(String(auditSeq));
  // each item lists its materials in its own order, under its own codes
  const perItem = items.map((item) => ({
    itemCode: item.code,
    name: item.name,
    materials: (byItem.get(item.code) ?? []).map((m) => ({ ...outcomeOf.get(`${item.code}\u0000${m.code}`)!, materialCode: m.code })),
  }));
  await ctx.db.transaction(async (tx) => {
    const uses = used.licences.flatMap((l) =>
      materials
        .filter((m) => m.evidence?.identifier === l.identifier)
        .flatMap((m) => m.itemCodes)
        .filter((c, i, all) => all.indexOf(c) === i)
        .map((c) => ({ identifier: l.identifier, holderCode: applicant.code, clientId: p.clientId, department: p.department, itemCode: c, caseId: purpose.caseId ?? null, operator: purpose.operator ?? null, auditSeq })),
    );
    if (uses.length) await ctx.licenceSource.recordUses(tx, uses);
    const rows = bundle ? [...perItem, { itemCode: null, materials }] : perItem;
    await tx.insert(materialResolutions).values(
      rows.map((i) => {
        const count = (f: (m: MaterialOutcome) => boolean) => i.materials.filter(f).length;
        return {
          clientId: p.clientId,
          itemCode: i.itemCode,
          bundleCode: bundle?.code ?? null,
          auditSeq,
          materials: i.materials.length,
          byLicence: count((m) => m.outcome === 'PROVIDED_BY_LICENCE'),
          byData: count((m) => m.outcome === 'PROVIDED_BY_DATA'),
          byCommitment: count((m) => m.outcome === 'WAIVABLE' && m.evidence?.kind === 'COMMITMENT'),
          deferred: count((m) => m.outcome === 'WAIVABLE' && m.evidence?.kind === 'RONGQUE'),
          mustSubmit: count((m) => m.outcome === 'MUST_SUBMIT'),
        };
      }),
    );
  });
  const settled = (m: MaterialOutcome) => (m.outcome !== 'WAIVABLE' ? m.outcome : m.evidence?.kind === 'COMMITMENT' ? 'COMMITMENT' : 'DEFERRED');
  for (const i of perItem) for (const m of i.materials) ctx.materialsCounter?.inc({ item: i.itemCode, outcome: settled(m) }, 1);

  const resolvedAt = now.toISOString();
  const body = {
    itemCode: target.itemCode ?? null,
    bundleCode: bundle?.code ?? null,
    applicantCode: applicant.code,
    codeType,
    resolvedAt,
    auditId: String(auditSeq),
    items: perItem,
    materials,
    credit,
  };
  return { ...body, receipt: await signReceipt(ctx, p, purpose, body) };
}

/**
 * 受理凭证: the whole resolution signed with the hub's receipt key, so the approval system can archive proof of what
 * was verified at acceptance. Verifies offline with the JWKS alone.
 */
async function signReceipt(ctx: Ctx, p: ClientPrincipal, purpose: PurposeInput, body: Omit<Resolution, 'receipt'>): Promise<string> {
  const signer = ctx.keys.signer('receipt');
  return new SignJWT({
    client_id: p.clientId,
    department: p.department,
    purpose: { itemCode: purpose.itemCode, caseId: purpose.caseId ?? null, operator: purpose.operator ?? null },
    resolution: body,
  })
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: RECEIPT_TYP })
    .setIssuer(ctx.issuer)
    .setSubject(body.applicantCode)
    .setAudience(p.clientId)
    .setIssuedAt(Math.floor(Date.parse(body.resolvedAt) / 1000))
    .setJti(crypto.randomUUID())
    .sign(signer.privateKey);
}
