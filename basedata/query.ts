import type { HubContext } from '../core/context.ts';
import { CanonicalJson } from '../audit/chain.ts';
import { HubError } from '../core/errors.ts';
import { idNumberProblem, maskIdNumber, usccProblem } from '../core/ids.ts';
import DataLoader from 'dataloader';
import type { Db } from '../db/index.ts';
import type { GrantDecision } from '../directory/access.ts';
import { PurposeBoundRead, type PurposeInput, type PurposePorts } from '../directory/purpose.ts';
import type { ReadLimiter } from './rate-limit.ts';
import type { BaseRecordKind } from './schema.ts';
import { currentCores, itemsRead, recordsBySubject, type RecordCore, type RowHead } from './store.ts';

export type { PurposeInput };

export interface QueryPorts extends PurposePorts {
  limiter: ReadLimiter;
}
type Ctx = HubContext & QueryPorts;

const BASE_KIND_OF: Record<BaseRecordKind, 'POPULATION' | 'LEGAL_PERSON' | 'CREDIT'> = { population: 'POPULATION', legal_person: 'LEGAL_PERSON', credit: 'CREDIT' };

/**
 * Current records are loaded through batching loaders per process, kind, list of 信息项 and head (with provenance or
 * bare): the lookups of all requests that arrive in the same tick and select the same 信息项 share one query, which
 * reads only those out of each record (no caching: each load reads the database). Credit profiles are built from
 * whole entries.
 */
const loaders = new WeakMap<object, Map<string, DataLoader<string, RecordCore[]>>>();

function currentLoader(db: Db, kind: BaseRecordKind, fields: readonly string[], head: RowHead): DataLoader<string, RecordCore[]> {
  let byList = loaders.get(db);
  if (!byList) loaders.set(db, (byList = new Map()));
  // a list the store reads whole records for shares the kind's whole-record loader (so there are as many loaders as
  // item statements, bounded there)
  const items = kind === 'credit' ? undefined : itemsRead(kind, fields, head);
  const key = `${kind}:${head}:${items?.join(',') ?? '*'}`;
  let loader = byList.get(key);
  if (!loader) {
    loader = new DataLoader<string, RecordCore[]>(
      async (subjects) => {
        const found = head === 'bare' ? await currentCores(db, kind, subjects, items) : await recordsBySubject(db, kind, subjects, undefined, items);
        const by = new Map<string, RecordCore[]>();
        for (const r of found) {
          const list = by.get(r.subject);
          if (list) list.push(r);
          else by.set(r.subject, [r]);
        }
        return subjects.map((s) => by.get(s) ?? []);
      },
      { cache: false, maxBatchSize: 500, batchScheduleFn: (run) => setImmediate(run) },
    );
    byList.set(key, loader);
  }
  return loader;
}

/** How a sensitive 信息项 looks to a caller whose grant does not allow it unmasked. */
export function maskValue(field: string, value: unknown): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === 'string') {
    if (/^\d{17}[\dX]$/.test(value)) return maskIdNumber(value);
    return value.length <= 2 ? '*'.repeat(value.length) : `${value.slice(0, Math.min(6, Math.floor(value.length / 3)))}${'*'.repeat(4)}`;
  }
  if (Array.isArray(value)) return value.map((v) => maskValue(field, v));
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, k === 'name' ? v : maskValue(k, v)]));
  return '****';
}

export interface ReadRequest {
  kind: BaseRecordKind;
  operation: 'PERSON_READ' | 'LEGAL_PERSON_READ' | 'CREDIT_READ';
  subjects: string[];
  /** the 信息项 the caller selected */
  fields: string[];
  /** whether the caller shows where the records came from (their provenance): a read that does not, reads less */
  provenance: boolean;
  purpose: PurposeInput;
  asOf?: string | null;
}

export interface ReadResult {
  subject: string;
  /** with provenance (BaseRecordView) when the request asked for it, and credit entries always */
  record: RecordCore[] | null;
  resourceCode: string;
  unmasked: Set<string>;
  /** the resource's sensitive 信息项 */
  sensitive: Set<string>;
  auditId: string;
}

function codeProblem(kind: BaseRecordKind, code: string): HubError | null {
  if (kind === 'population') {
    const p = idNumberProblem(code);
    return p ? new HubError('INVALID_ID_NUMBER', `${maskIdNumber(code)} is not a valid 公民身份号码 (${p})`, { field: 'idNumber' }) : null;
  }
  if (kind === 'legal_person') {
    const p = usccProblem(code);
    return p ? new HubError('INVALID_USCC', `${code} is not a valid 统一社会信用代码 (${p})`, { field: 'uscc' }) : null;
  }
  if (!idNumberProblem(code) || !usccProblem(code)) return null;
  return new HubError(/^\d{17}[\dXx]$/.test(code) ? 'INVALID_ID_NUMBER' : 'INVALID_USCC', 'subjectCode is neither a valid 公民身份号码 nor 统一社会信用代码', { field: 'subjectCode' });
}

/**
 * The read path of the query API, checks in the contract's order (INVALID_ID_NUMBER / INVALID_USCC, FORBIDDEN,
 * PURPOSE_REQUIRED, GRANT_MISSING); every refusal and every read is recorded, and the data is released only after
 * its audit entry committed (fail closed).
 */
export async function readBase(ctx: Ctx, req: ReadRequest): Promise<ReadResult[]> {
  const read = new PurposeBoundRead(ctx, req.operation, req.purpose, req.subjects, { fields: req.fields });
  for (const s of req.subjects) {
    const problem = codeProblem(req.kind, s);
    if (problem) await read.refuse(problem);
  }
  const principal = await read.consumer();
  const itemCode = await read.itemCode();
  const withholdBasis = await read.withholdBasis(principal);
  const resourceCode = await ctx.grants.baseResourceCode(BASE_KIND_OF[req.kind]);
  if (!resourceCode) await read.refuse(new HubError('GRANT_MISSING', `no published ${BASE_KIND_OF[req.kind]} resource`, { missing: { resource: null, fields: req.fields, itemCode } }));
  let decision: GrantDecision;
  try {
    decision = await ctx.grants.check(principal, resourceCode!, req.fields, itemCode);
  } catch (error) {
    return read.refuse(error as HubError);
  }
  const unmasked = decision.unmaskedFields;
  const sensitive = new Set(decision.resource.fields.filter((f) => f.sensitive).map((f) => f.code));
  try {
    await ctx.limiter.consume(principal.clientId, req.subjects.length);
  } catch (error) {
    return read.refuse(error as HubError);
  }
  const asOf = req.asOf ? new Date(req.asOf) : undefined;
  if (asOf && Number.isNaN(asOf.getTime())) throw new HubError('BAD_USER_INPUT', 'asOf must be an ISO date', { field: 'asOf' });
  let found: RecordCore[];
  if (asOf) found = await recordsBySubject(ctx.db, req.kind, req.subjects, asOf);
  else {
    const loader = currentLoader(ctx.db, req.kind, req.fields, req.provenance ? 'provenance' : 'bare'); // once per read, not per subject
    found = (await Promise.all(req.subjects.map((s) => loader.load(s)))).flat();
  }
  const bySubject = new Map<string, RecordCore[]>();
  for (const r of found) {
    const list = bySubject.get(r.subject);
    if (list) list.push(r);
    else bySubject.set(r.subject, [r]);
  }
  // each entry's details, { asOf, unmasked, versions }, as canonical JSON: all but the versions are the same for every
  // subject of the read, so written once
  const detailsHead = `{"asOf":${JSON.stringify(req.asOf ?? null)},"unmasked":${JSON.stringify(req.fields.filter((f) => unmasked.has(f)))},"versions":[`;
  const ids = await ctx.audit.appendMany(
    req.subjects.map((subject) => {
      const rec = bySubject.get(subject);
      return read.record(subject, {
        resourceCode,
        outcome: rec ? 'RETURNED' : 'NOT_FOUND',
        reason: null,
        // hidden from the holder's own view, and why (the holder's view leaves these out)
        withholdBasis,
        details: new CanonicalJson(`${detailsHead}${rec ? rec.map((r) => JSON.stringify(`${r.key}@${r.version}`)).join(',') : ''}]}`),
      });
    }),
  );
  ctx.auditIds.push(...ids.map(String));
  return req.subjects.map((subject, i) => ({ subject, record: bySubject.get(subject) ?? null, resourceCode: resourceCode!, unmasked, sensitive, auditId: String(ids[i]) }));
}
