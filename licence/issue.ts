import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { appendInTransaction, type AuditRecord } from '../audit/writer.ts';
import { requireOwnDepartment, requireRole, type ClientPrincipal, type HubContext } from '../core/context.ts';
import { badInput, HubError } from '../core/errors.ts';
import { randomBytesPooled } from '../core/random.ts';
import { idNumberProblem, maskIdNumber, usccProblem } from '../core/ids.ts';
import { arrayLiteral, separatedList, Statement, type Db } from '../db/index.ts';
import { getDepartment } from '../directory/departments.ts';
import { addNotification } from '../directory/notifications.ts';
import { attachHeader, gbt36903Metadata, signSdJwtVc, signVcJose, type LicenceClaims } from './credentials.ts';
import { shanghaiDate } from '../core/time.ts';
import { licenceNotFound, statusConflict } from './errors.ts';
import { makeLicenceIdentifier } from './identifier.ts';
import { departmentSigner, type LicencePki, type LicenceSigningKey } from './pki.ts';
import { licenceBatches, licences, licenceUses, licenceUseNotices, type LicenceStatus } from './schema.ts';
import { allocateStatusSlots, bumpStatusList, type StatusSlot } from './status-list.ts';
import { getLicenceType, isRealDate, validateFace, type LicenceType } from './types.ts';

export type LicenceRow = typeof licences.$inferSelect;

/** What the licence room needs beyond the request context. */
export interface LicencePorts {
  pki: LicencePki;
  masterKey: Buffer;
  /** the hub's public base URL (status list and credential URLs) */
  issuer: string;
}

export interface IssueLicenceInput {
  typeCode: string;
  /** 证照编号 */
  number: string;
  holderName: string;
  holderCode: string;
  validFrom?: string | null;
  validUntil?: string | null;
  face: Record<string, unknown>;
}

export type RevocationKind = 'REVOKED' | 'CANCELLED' | 'WITHDRAWN';

/** The status a verifier should see today: a VALID or SUSPENDED licence past its validUntil has expired. */
export function effectiveStatus(row: Pick<LicenceRow, 'status' | 'validUntil'>, today = shanghaiDate(new Date())): LicenceStatus {
  if ((row.status === 'VALID' || row.status === 'SUSPENDED') && row.validUntil && row.validUntil < today) return 'EXPIRED';
  return row.status;
}

const SERIAL_CHARS = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** 流水号: the year and 10 random characters of 0-9A-Z (about 2^51 per year: collisions are refused by the unique identifier). */
function newSerial(now: Date): string {
  const bytes = randomBytesPooled(10);
  let s = shanghaiDate(now).slice(0, 4);
  for (const b of bytes) s += SERIAL_CHARS[b % 36];
  return s;
}

let lastAdded = { date: '', years: 0, end: '' };
function addYears(date: string, years: number): string {
  // a batch's licences mostly start on one day
  if (date === lastAdded.date && years === lastAdded.years) return lastAdded.end;
  const [y, m, d] = date.split('-').map(Number) as [number, number, number];
  const end = new Date(Date.UTC(y + years, m - 1, d));
  end.setUTCDate(end.getUTCDate() - 1); // valid through the day before the anniversary
  lastAdded = { date, years, end: end.toISOString().slice(0, 10) };
  return lastAdded.end;
}

/** 持证主体代码 checked against the type's holder kind (INVALID_ID_NUMBER / INVALID_USCC, before anything else). */
export function holderCodeError(kind: LicenceType['holderKind'] | null, code: string, field = 'holderCode'): HubError | null {
  if (kind === 'PERSON' || (kind === null && /^\d{17}[\dXx]$/.test(code))) {
    const p = idNumberProblem(code);
    return p ? new HubError('INVALID_ID_NUMBER', `${maskIdNumber(code)} is not a valid 公民身份号码 (${p})`, { field }) : null;
  }
  const p = usccProblem(code);
  return p ? new HubError('INVALID_USCC', `${code} is not a valid 统一社会信用代码 (${p})`, { field }) : null;
}

interface Prepared {
  type: LicenceType;
  number: string;
  holderName: string;
  holderCode: string;
  validFrom: string;
  validUntil: string | null;
  face: Record<string, unknown>;
}

/** Validates one issuance (the caller has checked the holder code and the role). */
function prepare(type: LicenceType, input: IssueLicenceInput, now: Date, prefix = ''): Prepared {
  const number = typeof input.number === 'string' ? input.number.trim() : '';
  if (!number || number.length > 100) throw badInput(`${prefix}number`, '证照编号 is required (at most 100 characters)');
  const holderName = typeof input.holderName === 'string' ? input.holderName.trim() : '';
  if (!holderName || holderName.length > 200) throw badInput(`${prefix}holderName`, '持证主体 is required (at most 200 characters)');
  const validFrom = input.validFrom ?? shanghaiDate(now);
  if (!isRealDate(validFrom)) throw badInput(`${prefix}validFrom`, 'validFrom is a date (YYYY-MM-DD)');
  const validUntil = input.validUntil ?? (type.validityYears ? addYears(validFrom, type.validityYears) : null);
  if (validUntil !== null && !isRealDate(validUntil)) throw badInput(`${prefix}validUntil`, 'validUntil is a date (YYYY-MM-DD)');
  if (validUntil !== null && validUntil < validFrom) throw badInput(`${prefix}validUntil`, 'validUntil lies before validFrom');
  const face = validateFace(type, input.face, `${prefix}face`);
  return { type, number, holderName, holderCode: input.holderCode.trim().toUpperCase(), validFrom, validUntil, face };
}

function claimsOf(p: Prepared, issuer: { code: string; name: string }, serial: string, version: number, slot: StatusSlot, now: Date): LicenceClaims {
  return {
    identifier: makeLicenceIdentifier({ typeCode: p.type.code, issuerCode: issuer.code, serial, version }),
    typeCode: p.type.code,
    typeName: p.type.name,
    number: p.number,
    holderName: p.holderName,
    holderCode: p.holderCode,
    holderCodeType: p.type.holderKind === 'PERSON' ? 'ID_NUMBER' : 'USCC',
    issuerName: issuer.name,
    issuerCode: issuer.code,
    issuedAt: now,
    validFrom: p.validFrom,
    validUntil: p.validUntil,
    face: p.face,
    statusList: slot.list,
    statusIndex: slot.index,
    numberIsPersonalId: p.type.numberIsPersonalId,
  };
}

/** The GB/T 36903 metadata and both signed forms of one licence version, with the signatures verification binds to. */
async function signedForms(hubIssuer: string, c: LicenceClaims, signer: LicenceSigningKey): Promise<{ metadata: Record<string, unknown>; credential: string; sdJwt: string; vcSignature: string; sdSignature: string }> {
  const metadata = gbt36903Metadata(c, signer.kid);
  const [credential, sdJwt] = await Promise.all([signVcJose(hubIssuer, c, signer, metadata), signSdJwtVc(hubIssuer, c, signer, metadata)]);
  return { metadata, credential, sdJwt, vcSignature: jwsSignatureOf(credential), sdSignature: jwsSignatureOf(sdJwt.slice(0, sdJwt.indexOf('~'))) };
}

/** The signature segment of a compact JWS (or of its stored form, without the header). */
export function jwsSignatureOf(jws: string): string {
  return jws.slice(jws.lastIndexOf('.') + 1);
}

/** Both signed forms of a stored licence, their protected headers put back. */
export async function signedFormsOf(pki: LicencePki, row: Pick<LicenceRow, 'signerKid' | 'credential' | 'sdJwt'>): Promise<{ credential: string; sdJwt: string }> {
  const key = await pki.chainOf(row.signerKid);
  return { credential: attachHeader(key, 'vc+jwt', row.credential), sdJwt: attachHeader(key, 'dc+sd-jwt', row.sdJwt) };
}

/** The row of a licence version, both forms signed by `signer`. */
async function licenceRow(hubIssuer: string, c: LicenceClaims, signer: LicenceSigningKey, serial: string, version: number, previous: string | null): Promise<typeof licences.$inferInsert> {
  return {
    identifier: c.identifier,
    typeCode: c.typeCode,
    issuerCode: c.issuerCode,
    issuerName: c.issuerName,
    serial,
    version,
    number: c.number,
    holderName: c.holderName,
    holderCode: c.holderCode,
    holderCodeType: c.holderCodeType,
    issuedAt: c.issuedAt,
    validFrom: c.validFrom,
    validUntil: c.validUntil,
    status: 'VALID',
    face: c.face,
    ...(await signedForms(hubIssuer, c, signer)),
    signerKid: signer.kid,
    statusList: c.statusList,
    statusIndex: c.statusIndex,
    previousIdentifier: previous,
  };
}

/** Signs both forms and makes the row to insert. */
async function signedRow(tx: Db, ports: LicencePorts, c: LicenceClaims, serial: string, version: number, previous: string | null): Promise<typeof licences.$inferInsert> {
  const signer = ports.pki.signingKey(await departmentSigner(tx, ports.masterKey, { code: c.issuerCode, name: c.issuerName }, c.issuedAt));
  return licenceRow(ports.issuer, c, signer, serial, version, previous);
}

function auditOf(p: ClientPrincipal | { clientId: string; department: string }, requestId: string, operation: string, row: Pick<LicenceRow, 'identifier' | 'typeCode' | 'holderCode' | 'number'>, extra: Partial<AuditRecord> = {}): AuditRecord {
  return {
    clientId: p.clientId,
    department: p.department,
    operation,
    resourceCode: row.typeCode,
    subject: row.holderCode,
    outcome: 'DONE',
    requestId,
    ...extra,
    details: { identifier: row.identifier, number: row.number, ...extra.details },
  };
}

async function issuingDepartment(db: Db, principal: ClientPrincipal, type: LicenceType): Promise<{ code: string; name: string }> {
  if (!type.issuers.includes(principal.department)) {
    throw new HubError('FORBIDDEN', `department ${principal.department} is not an issuer of licence type ${type.code}`);
  }
  const dept = await getDepartment(db, principal.department);
  if (!dept) throw new HubError('FORBIDDEN', `department ${principal.department} is not registered`);
  return { code: dept.code, name: dept.name };
}

async function existingVersion(db: Db, typeCode: string, issuerCode: string, number: string): Promise<LicenceRow | undefined> {
  const [row] = await db
    .select()
    .from(licences)
    .where(and(eq(licences.typeCode, typeCode), eq(licences.issuerCode, issuerCode), eq(licences.number, number)))
    .orderBy(desc(licences.version))
    .limit(1);
  return row;
}

/**
 * issueLicence (新发): idempotent on type + issuer + 证照编号 (the same licence again returns the one on record).
 * Signed as a VC-JOSE credential and an SD-JWT VC by the department's key (made on its first issuance); the
 * issuance and its audit entry commit together.
 */
export async function issueLicence(ctx: HubContext, ports: LicencePorts, input: IssueLicenceInput, now = new Date()): Promise<LicenceRow> {
  const type = typeof input.typeCode === 'string' ? await getLicenceType(ctx.db, input.typeCode.trim().toUpperCase()) : undefined;
  const holderCode = typeof input.holderCode === 'string' ? input.holderCode.trim().toUpperCase() : '';
  const codeError = holderCodeError(type?.holderKind ?? null, holderCode);
  if (codeError) throw codeError;
  const principal = requireRole(ctx, 'issuer');
  if (!type) throw badInput('typeCode', `licence type ${input.typeCode} is not registered`);
  const issuer = await issuingDepartment(ctx.db, principal, type);
  const p = prepare(type, { ...input, holderCode }, now);
  const existing = await existingVersion(ctx.db, type.code, issuer.code, p.number);
  if (existing) {
    if (existing.holderCode !== p.holderCode) throw new HubError('CONFLICT', `证照编号 ${p.number} of type ${type.code} is already issued to another holder`);
    return existing;
  }
  const [slot] = await allocateStatusSlots(ctx.db, 1);
  const serial = newSerial(now);
  const claims = claimsOf(p, issuer, serial, 1, slot!, now);
  return ctx.db.transaction(async (tx) => {
    const values = await signedRow(tx, ports, claims, serial, 1, null);
    const inserted = await tx.insert(licences).values(values).onConflictDoNothing({ target: [licences.typeCode, licences.issuerCode, licences.number, licences.version] }).returning();
    if (!inserted[0]) {
      // a concurrent issuance of the same 证照编号 won: answer with it
      const row = await existingVersion(tx, type.code, issuer.code, p.number);
      if (!row || row.holderCode !== p.holderCode) throw new HubError('CONFLICT', `证照编号 ${p.number} of type ${type.code} is already issued to another holder`);
      return row;
    }
    await appendInTransaction(tx, [auditOf(principal, ctx.requestId, 'LICENCE_ISSUE', inserted[0], { details: { version: 1, signer: values.signerKid } })]);
    return inserted[0];
  });
}

export interface BatchResult {
  issued: number;
  skipped: number;
  errors: { index: number; code: string; field: string | null; message: string }[];
}

const CHUNK = 500;
/** chunks in flight at once: one is signed while the database stores the one before */
const CHUNKS_IN_FLIGHT = 4;

type LicenceInsert = typeof licences.$inferInsert;

const INSERT_LICENCES = new Statement<{ identifier: string; type_code: string; holder_code: string; number: string }>(
  'hub_licence_insert',
  `insert into licences (identifier, type_code, issuer_code, issuer_name, serial, version, number, holder_name, holder_code, holder_code_type, issued_at, valid_from, valid_until, status, face, metadata, credential, sd_jwt, signer_kid, status_list, status_index, vc_signature, sd_signature)
   select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::text[], $10::text[], $11::timestamptz[],
                        $12::date[], $13::date[], $14::text[], string_to_array($15::text, chr(30))::jsonb[], string_to_array($16::text, chr(30))::jsonb[],
                        string_to_array($17::text, chr(30)), string_to_array($18::text, chr(30)), $19::text[], $20::int[], $21::int[], $22::text[], $23::text[])
   on conflict (type_code, issuer_code, number, version) do nothing
   returning identifier, type_code, holder_code, number`,
);

/**
 * One statement of array parameters for a chunk of licences, whatever its size, its array literals written here (a
 * query builder's and the driver's per-value work dominated the batch). The signed forms and the JSON columns, most
 * of a chunk's bytes, go as separated lists (db `separatedList`): the database's array parser took about 40 µs a
 * licence on them. Conflicts on type + issuer + 证照编号 + version are skipped.
 */
async function insertLicenceRows(tx: Db, values: LicenceInsert[]): Promise<{ identifier: string; type_code: string; holder_code: string; number: string }[]> {
  const col = (f: (r: LicenceInsert) => string | number | null | undefined) => arrayLiteral(values.map(f));
  const list = (f: (r: LicenceInsert) => string) => separatedList(values.map(f));
  return INSERT_LICENCES.run(tx, [
    col((r) => r.identifier),
    col((r) => r.typeCode),
    col((r) => r.issuerCode),
    col((r) => r.issuerName),
    col((r) => r.serial),
    col((r) => r.version),
    col((r) => r.number),
    col((r) => r.holderName),
    col((r) => r.holderCode),
    col((r) => r.holderCodeType),
    col((r) => (r.issuedAt as Date).toISOString()),
    col((r) => r.validFrom),
    col((r) => r.validUntil ?? null),
    col((r) => r.status),
    list((r) => JSON.stringify(r.face)),
    list((r) => JSON.stringify(r.metadata)),
    list((r) => r.credential),
    list((r) => r.sdJwt),
    col((r) => r.signerKid),
    col((r) => r.statusList),
    col((r) => r.statusIndex),
    col((r) => r.vcSignature),
    col((r) => r.sdSignature),
  ]);
}

/**
 * The 证照编号 of a chunk already on record for an issuer, each probed on the unique index (type, issuer, number,
 * version) by itself: a lateral subquery with a LIMIT is never flattened into a join, so the plan does not hang on
 * the table's statistics. Without them (a server without autovacuum has none) the planner scanned every licence of
 * the issuer for a list of 500 numbers, as an IN list (12 ms a chunk at 40,000 licences) and as a semi-join alike.
 */
const KNOWN_NUMBERS = new Statement<{ type_code: string; number: string }>(
  'hub_licence_known_numbers',
  `select k.type_code, k.number from unnest($1::text[], $2::text[]) as k(type_code, number)
   cross join lateral (select 1 from licences l where l.type_code = k.type_code and l.issuer_code = $3::text and l.number = k.number limit 1) as hit`,
);

/**
 * A batch of issuances (the job `licence.issue-batch` runs it): each valid item is issued, items already on record
 * (type + issuer + 证照编号) are skipped, invalid ones reported by index with their code and field. One transaction
 * per chunk of 500: rows and audit entries commit together.
 */
export async function issueBatchItems(
  db: Db,
  ports: LicencePorts,
  by: { clientId: string; department: string; requestId: string },
  items: IssueLicenceInput[],
  now = new Date(),
): Promise<BatchResult> {
  const result: BatchResult = { issued: 0, skipped: 0, errors: [] };
  const dept = await getDepartment(db, by.department);
  if (!dept) throw new HubError('FORBIDDEN', `department ${by.department} is not registered`);
  const issuer = { code: dept.code, name: dept.name };
  const types = new Map<string, LicenceType | undefined>();
  for (const item of items) {
    const code = typeof item?.typeCode === 'string' ? item.typeCode.trim().toUpperCase() : '';
    if (!types.has(code)) types.set(code, await getLicenceType(db, code));
  }
  const signer = ports.pki.signingKey(await db.transaction((tx) => departmentSigner(tx, ports.masterKey, issuer, now)));
  const chunk = async (start: number): Promise<void> => {
    const ready: { index: number; p: Prepared }[] = [];
    for (let index = start; index < Math.min(start + CHUNK, items.length); index++) {
      const item = items[index]!;
      try {
        const type = types.get(typeof item?.typeCode === 'string' ? item.typeCode.trim().toUpperCase() : '');
        const holderCode = typeof item?.holderCode === 'string' ? item.holderCode.trim().toUpperCase() : '';
        const codeError = holderCodeError(type?.holderKind ?? null, holderCode);
        if (codeError) throw codeError;
        if (!type) throw badInput('typeCode', `licence type ${item?.typeCode} is not registered`);
        if (!type.issuers.includes(issuer.code)) throw new HubError('FORBIDDEN', `department ${issuer.code} is not an issuer of licence type ${type.code}`);
        ready.push({ index, p: prepare(type, { ...item, holderCode }, now) });
      } catch (error) {
        if (!(error instanceof HubError)) throw error;
        result.errors.push({ index, code: error.code, field: (error.extensions.field as string | undefined) ?? null, message: error.message });
      }
    }
    if (ready.length === 0) return;
    // already on record: skipped (idempotent re-runs of the same batch), before anything is signed
    const known = await KNOWN_NUMBERS.run(db, [arrayLiteral(ready.map((r) => r.p.type.code)), arrayLiteral(ready.map((r) => r.p.number)), issuer.code]);
    const knownKeys = new Set(known.map((k) => `${k.type_code}|${k.number}`));
    const todo = ready.filter((r) => {
      const key = `${r.p.type.code}|${r.p.number}`;
      if (knownKeys.has(key)) {
        result.skipped++;
        return false;
      }
      knownKeys.add(key); // the same 证照编号 twice in one batch: the first one is issued
      return true;
    });
    if (todo.length === 0) return;
    const slots = await allocateStatusSlots(db, todo.length);
    const values: LicenceInsert[] = await Promise.all(
      todo.map((r, i) => {
        const serial = newSerial(now);
        return licenceRow(ports.issuer, claimsOf(r.p, issuer, serial, 1, slots[i]!, now), signer, serial, 1, null);
      }),
    );
    const inserted = await db.transaction(async (tx) => {
      const rowsIn = await insertLicenceRows(tx, values);
      await appendInTransaction(
        tx,
        rowsIn.map((r) => auditOf(by, by.requestId, 'LICENCE_ISSUE', { identifier: r.identifier, typeCode: r.type_code, holderCode: r.holder_code, number: r.number }, { details: { version: 1, signer: signer.kid, batch: by.requestId } })),
      );
      return rowsIn.length;
    });
    result.issued += inserted;
    result.skipped += todo.length - inserted;
  };
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const start = next;
      next += CHUNK;
      await chunk(start);
    }
  };
  await Promise.all(Array.from({ length: CHUNKS_IN_FLIGHT }, worker));
  result.errors.sort((x, y) => x.index - y.index);
  return result;
}

/** Queues a batch: the items are stored with the batch, the job carries only its id. */
export async function createLicenceBatch(ctx: HubContext, items: IssueLicenceInput[]): Promise<typeof licenceBatches.$inferSelect> {
  const principal = requireRole(ctx, 'issuer');
  if (!Array.isArray(items) || items.length === 0) throw badInput('items', 'a batch holds at least one licence');
  if (items.length > 100_000) throw badInput('items', 'at most 100,000 licences per batch');
  const [batch] = await ctx.db.insert(licenceBatches).values({ issuerCode: principal.department, clientId: principal.clientId, items: items as unknown as Record<string, unknown>[] }).returning();
  return batch!;
}

/** Runs every pending batch (the job handler). A batch is claimed with SKIP LOCKED, so workers share them. */
export async function runPendingBatches(db: Db, ports: LicencePorts, onlyId?: string): Promise<{ batches: number; issued: number }> {
  let batches = 0;
  let issued = 0;
  for (;;) {
    const claimed = await db.transaction(async (tx) => {
      const [b] = await tx
        .select({ id: licenceBatches.id })
        .from(licenceBatches)
        .where(and(eq(licenceBatches.status, 'PENDING'), ...(onlyId ? [eq(licenceBatches.id, onlyId)] : [])))
        .orderBy(licenceBatches.createdAt)
        .limit(1)
        .for('update', { skipLocked: true });
      if (!b) return undefined;
      const [row] = await tx.update(licenceBatches).set({ status: 'RUNNING' }).where(eq(licenceBatches.id, b.id)).returning();
      return row;
    });
    if (!claimed) break;
    try {
      const r = await issueBatchItems(db, ports, { clientId: claimed.clientId, department: claimed.issuerCode, requestId: `batch-${claimed.id}` }, claimed.items as unknown as IssueLicenceInput[]);
      await db.update(licenceBatches).set({ status: 'DONE', issued: r.issued, skipped: r.skipped, errors: r.errors, finishedAt: sql`now()` }).where(eq(licenceBatches.id, claimed.id));
      issued += r.issued;
    } catch (error) {
      // the issued part is on record (and audited); the batch is marked FAILED, and the same items sent again skip it
      await db
        .update(licenceBatches)
        .set({ status: 'FAILED', errors: [{ index: -1, code: 'INTERNAL_SERVER_ERROR', field: null, message: 'the batch stopped; send the same items again: those already issued are skipped' }], finishedAt: sql`now()` })
        .where(eq(licenceBatches.id, claimed.id));
      throw error;
    }
    batches++;
    if (onlyId) break;
  }
  return { batches, issued };
}

export async function getLicenceBatch(ctx: HubContext, id: string): Promise<typeof licenceBatches.$inferSelect> {
  const p = requireRole(ctx, 'issuer', 'admin');
  if (!/^[0-9a-f-]{36}$/i.test(id)) throw new HubError('NOT_FOUND', `licence batch ${id} not found`);
  const [b] = await ctx.db.select().from(licenceBatches).where(eq(licenceBatches.id, id));
  if (!b || (!p.roles.includes('admin') && b.issuerCode !== p.department)) throw new HubError('NOT_FOUND', `licence batch ${id} not found`);
  return b;
}

export async function getLicence(db: Db, identifier: string): Promise<LicenceRow | undefined> {
  const [row] = await db.select().from(licences).where(eq(licences.identifier, identifier));
  return row;
}

/** Loads a licence for a lifecycle act: issuer of its department (or admin), row locked. */
async function lockForChange(tx: Db, ctx: HubContext, identifier: string): Promise<LicenceRow> {
  const [row] = await tx.select().from(licences).where(eq(licences.identifier, identifier)).for('update');
  if (!row) throw licenceNotFound(identifier);
  requireOwnDepartment(ctx, row.issuerCode, `licence ${identifier}`);
  return row;
}

function needReason(reason: string | null | undefined): string {
  const r = reason?.trim();
  if (!r) throw badInput('reason', 'state the reason (理由) of the change');
  return r;
}

/**
 * Tells the approval systems that used a licence that it is now suspended or revoked: a notice listed for each
 * client, and a department notification its webhook delivers.
 */
async function noticeUsers(tx: Db, row: LicenceRow, status: LicenceStatus, reason: string, changeSeq: number): Promise<void> {
  const uses = await tx
    .selectDistinct({ clientId: licenceUses.clientId, department: licenceUses.department, itemCode: licenceUses.itemCode, caseId: licenceUses.caseId })
    .from(licenceUses)
    .where(eq(licenceUses.identifier, row.identifier));
  for (const u of uses) {
    await tx.insert(licenceUseNotices).values({ clientId: u.clientId, identifier: row.identifier, status, reason, itemCode: u.itemCode, caseId: u.caseId, changeSeq }).onConflictDoNothing();
  }
  const byDept = new Map<string, typeof uses>();
  for (const u of uses) byDept.set(u.department, [...(byDept.get(u.department) ?? []), u]);
  for (const [dept, list] of byDept) {
    await addNotification(tx, dept, 'LICENCE_STATUS_CHANGED', `${row.identifier}:${changeSeq}:${dept}`, {
      identifier: row.identifier,
      typeCode: row.typeCode,
      number: row.number,
      status,
      reason,
      uses: list.map((u) => ({ clientId: u.clientId, itemCode: u.itemCode, caseId: u.caseId })),
    });
  }
}

const NOTIFY_USERS: LicenceStatus[] = ['SUSPENDED', 'REVOKED', 'CANCELLED', 'WITHDRAWN'];

/** One status change: the row (the one state the status lists are drawn from), the list's version, the audit entry, the notices. */
async function setStatus(tx: Db, ctx: HubContext, row: LicenceRow, status: LicenceStatus, reason: string, operation: string, extra: Record<string, unknown> = {}): Promise<LicenceRow> {
  const [updated] = await tx.update(licences).set({ status, statusReason: reason, statusChangedAt: sql`now()`, updatedAt: sql`now()`, ...extra }).where(eq(licences.id, row.id)).returning();
  await bumpStatusList(tx, row.statusList);
  const [seq] = await appendInTransaction(tx, [auditOf(ctx.principal, ctx.requestId, operation, row, { reason, details: { from: row.status, to: status } })]);
  if (NOTIFY_USERS.includes(status)) await noticeUsers(tx, row, status, reason, seq!);
  return updated!;
}

/** 暂扣 */
export async function suspendLicence(ctx: HubContext, identifier: string, reason: string): Promise<LicenceRow> {
  requireRole(ctx, 'issuer', 'admin');
  const why = needReason(reason);
  return ctx.db.transaction(async (tx) => {
    const row = await lockForChange(tx, ctx, identifier);
    if (effectiveStatus(row) !== 'VALID') throw statusConflict(identifier, row.status, 'suspended');
    return setStatus(tx, ctx, row, 'SUSPENDED', why, 'LICENCE_SUSPEND');
  });
}

/** 暂扣发还 */
export async function reinstateLicence(ctx: HubContext, identifier: string, reason: string): Promise<LicenceRow> {
  requireRole(ctx, 'issuer', 'admin');
  const why = needReason(reason);
  return ctx.db.transaction(async (tx) => {
    const row = await lockForChange(tx, ctx, identifier);
    if (row.status !== 'SUSPENDED') throw statusConflict(identifier, row.status, 'reinstated');
    return setStatus(tx, ctx, row, 'VALID', why, 'LICENCE_REINSTATE');
  });
}

/** 撤销 REVOKED | 注销 CANCELLED | 吊销 WITHDRAWN */
export async function revokeLicence(ctx: HubContext, identifier: string, reason: string, kind: RevocationKind): Promise<LicenceRow> {
  requireRole(ctx, 'issuer', 'admin');
  const why = needReason(reason);
  if (!['REVOKED', 'CANCELLED', 'WITHDRAWN'].includes(kind)) throw badInput('kind', 'kind is REVOKED, CANCELLED or WITHDRAWN');
  return ctx.db.transaction(async (tx) => {
    const row = await lockForChange(tx, ctx, identifier);
    if (row.status !== 'VALID' && row.status !== 'SUSPENDED') throw statusConflict(identifier, row.status, kind.toLowerCase());
    return setStatus(tx, ctx, row, kind, why, `LICENCE_${kind}`);
  });
}

/** A new version (变更 or 延续): version + 1, the old one SUPERSEDED and linked to it. */
async function newVersion(ctx: HubContext, ports: LicencePorts, identifier: string, reason: string, operation: string, change: (row: LicenceRow, type: LicenceType) => { face: Record<string, unknown>; validUntil: string | null }, allowed: LicenceStatus[]): Promise<LicenceRow> {
  requireRole(ctx, 'issuer', 'admin');
  const why = needReason(reason);
  const [slot] = await allocateStatusSlots(ctx.db, 1);
  const now = new Date();
  return ctx.db.transaction(async (tx) => {
    const row = await lockForChange(tx, ctx, identifier);
    if (!allowed.includes(effectiveStatus(row))) throw statusConflict(identifier, effectiveStatus(row), operation === 'LICENCE_RENEW' ? 'renewed' : 'changed');
    if (row.version >= 999) throw new HubError('CONFLICT', `licence ${identifier} has reached version 999`);
    const type = (await getLicenceType(tx, row.typeCode))!;
    const next = change(row, type);
    const p: Prepared = { type, number: row.number, holderName: row.holderName, holderCode: row.holderCode, validFrom: row.validFrom, validUntil: next.validUntil, face: next.face };
    const claims = claimsOf(p, { code: row.issuerCode, name: row.issuerName }, row.serial, row.version + 1, slot!, now);
    const values = await signedRow(tx, ports, claims, row.serial, row.version + 1, row.identifier);
    const [inserted] = await tx.insert(licences).values(values).returning();
    await setStatus(tx, ctx, row, 'SUPERSEDED', why, operation, { supersededBy: inserted!.identifier });
    await appendInTransaction(tx, [auditOf(ctx.principal, ctx.requestId, 'LICENCE_ISSUE', inserted!, { reason: why, details: { version: inserted!.version, previous: row.identifier, signer: values.signerKid } })]);
    return inserted!;
  });
}

/** changeLicence (变更): new face, a new version; the old one SUPERSEDED. */
export function changeLicence(ctx: HubContext, ports: LicencePorts, identifier: string, face: Record<string, unknown>, reason: string): Promise<LicenceRow> {
  return newVersion(ctx, ports, identifier, reason, 'LICENCE_CHANGE', (row, type) => ({ face: validateFace(type, { ...row.face, ...(face && typeof face === 'object' ? face : {}) }), validUntil: row.validUntil }), ['VALID']);
}

/** renewLicence (延续): a later validUntil, a new version; the old one SUPERSEDED. */
export function renewLicence(ctx: HubContext, ports: LicencePorts, identifier: string, validUntil: string, reason: string): Promise<LicenceRow> {
  if (!isRealDate(validUntil)) throw badInput('validUntil', 'validUntil is a date (YYYY-MM-DD)');
  return newVersion(
    ctx,
    ports,
    identifier,
    reason,
    'LICENCE_RENEW',
    (row) => {
      if (row.validUntil && validUntil <= row.validUntil) throw badInput('validUntil', `a renewal extends the validity beyond ${row.validUntil}`);
      return { face: row.face, validUntil };
    },
    ['VALID', 'EXPIRED'],
  );
}

/**
 * 失效: licences past their validUntil become EXPIRED (the daily job), each recorded in the audit log with the
 * hub as the actor, and their status lists updated.
 */
export async function expireLicences(db: Db, today = shanghaiDate(new Date())): Promise<number> {
  return db.transaction(async (tx) => {
    const due = await tx
      .select()
      .from(licences)
      .where(and(inArray(licences.status, ['VALID', 'SUSPENDED']), sql`${licences.validUntil} < ${today}`))
      .limit(5000)
      .for('update', { skipLocked: true });
    if (due.length === 0) return 0;
    await tx.update(licences).set({ status: 'EXPIRED', statusReason: `有效期至 ${today} 前届满`, statusChangedAt: sql`now()`, updatedAt: sql`now()` }).where(inArray(licences.id, due.map((d) => d.id)));
    for (const list of new Set(due.map((d) => d.statusList))) await bumpStatusList(tx, list);
    await appendInTransaction(tx, due.map((d) => auditOf({ clientId: 'hub-system', department: d.issuerCode }, 'licence.expiry', 'LICENCE_EXPIRE', d, { reason: `validUntil ${d.validUntil}`, details: { from: d.status, to: 'EXPIRED' } })));
    return due.length;
  });
}

/** Licences of an issuer that expire within `days` (for the issuer's list and the daily notice). */
export async function expiringLicences(db: Db, issuerCode: string | null, days: number, today = shanghaiDate(new Date())): Promise<LicenceRow[]> {
  const until = new Date(Date.parse(`${today}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
  return db
    .select()
    .from(licences)
    .where(and(eq(licences.status, 'VALID'), sql`${licences.validUntil} >= ${today}`, sql`${licences.validUntil} <= ${until}`, ...(issuerCode ? [eq(licences.issuerCode, issuerCode)] : [])))
    .orderBy(licences.validUntil)
    .limit(5000);
}

/** The daily notice: each issuer hears once per licence which of its licences expire within 30 days. */
export async function notifyExpiringLicences(db: Db, days = 30): Promise<number> {
  const rows = await expiringLicences(db, null, days);
  let made = 0;
  await db.transaction(async (tx) => {
    for (const r of rows) {
      const added = await addNotification(tx, r.issuerCode, 'LICENCE_EXPIRING', r.identifier, { identifier: r.identifier, typeCode: r.typeCode, number: r.number, holderName: r.holderName, validUntil: r.validUntil });
      if (added) made++;
    }
  });
  return made;
}
