import { eq } from 'drizzle-orm';
import { appendInTransaction } from '../audit/writer.ts';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, isUniqueViolation } from '../core/errors.ts';
import { usccProblem } from '../core/ids.ts';
import { digitsAt, isRealDay } from '../core/time.ts';
import type { Db } from '../db/index.ts';
import { HOLDER_KINDS, licenceTypes, type FaceField, type HolderKind } from './schema.ts';

export type LicenceType = typeof licenceTypes.$inferSelect;

export interface FaceFieldInput {
  code: string;
  name: string;
  dataType: string;
  length?: number | null;
  sensitive?: boolean | null;
}

export interface LicenceTypeInput {
  code: string;
  name: string;
  definingDepartment: string;
  holderKind: HolderKind;
  issuers: string[];
  faceFields: FaceFieldInput[];
  /** default validity in years; absent or null = no expiry unless the issuer gives validUntil */
  validityYears?: number | null;
  /** face fields that may be left out (all others are required) */
  optionalFields?: string[] | null;
  /** 证照编号 is a personal identifier (the 居民身份证's is the 公民身份号码) */
  numberIsPersonalId?: boolean | null;
}

const DATA_TYPES = new Set(['C', 'D', 'N', 'Y', 'I', 'L', 'M']);

/**
 * registerLicenceType (证照目录): admin or the defining department. The type code is the defining body's USCC and a
 * 3-character sequence (GB/T 36904).
 */
export async function registerLicenceType(ctx: HubContext, input: LicenceTypeInput): Promise<LicenceType> {
  requireRole(ctx, 'issuer', 'provider', 'admin');
  const definingDepartment = input.definingDepartment?.trim().toUpperCase() ?? '';
  if (usccProblem(definingDepartment)) throw new HubError('INVALID_USCC', `definingDepartment ${definingDepartment} is not a valid 统一社会信用代码`, { field: 'definingDepartment' });
  for (const issuer of input.issuers ?? []) {
    if (usccProblem(issuer)) throw new HubError('INVALID_USCC', `issuer ${issuer} is not a valid 统一社会信用代码`, { field: 'issuers' });
  }
  requireOwnDepartment(ctx, definingDepartment, `licence type ${input.code}`);
  const code = input.code?.trim().toUpperCase() ?? '';
  if (!/^[0-9A-Z]{21}$/.test(code)) throw badInput('code', '证照类型代码 is 21 characters: the defining body\'s USCC and a 3-character sequence');
  if (code.slice(0, 18) !== definingDepartment) throw badInput('code', `证照类型代码 ${code} must begin with the defining department's USCC ${definingDepartment}`);
  const name = input.name?.trim();
  if (!name) throw badInput('name', 'a licence type has a name');
  if (!HOLDER_KINDS.includes(input.holderKind)) throw badInput('holderKind', 'holderKind is PERSON or LEGAL_PERSON');
  const issuers = [...new Set(input.issuers ?? [])];
  if (issuers.length === 0) throw badInput('issuers', 'name the departments that may issue this licence');
  if (input.validityYears !== undefined && input.validityYears !== null && (!Number.isInteger(input.validityYears) || input.validityYears < 1 || input.validityYears > 100)) {
    throw badInput('validityYears', 'validityYears is a whole number of years (1..100), or absent for no expiry');
  }
  const optional = new Set(input.optionalFields ?? []);
  const seen = new Set<string>();
  const faceFields: FaceField[] = (input.faceFields ?? []).map((f, i) => {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(f.code ?? '')) throw badInput(`faceFields.${i}.code`, 'a face field code is a name of letters, digits and _');
    if (['CZZT', 'CZZTDM', '_sd', '_sd_alg'].includes(f.code)) throw badInput(`faceFields.${i}.code`, `${f.code} is reserved`);
    if (seen.has(f.code)) throw badInput(`faceFields.${i}.code`, `face field ${f.code} appears twice`);
    seen.add(f.code);
    if (!f.name?.trim()) throw badInput(`faceFields.${i}.name`, 'a face field has a name');
    if (!DATA_TYPES.has(f.dataType)) throw badInput(`faceFields.${i}.dataType`, 'dataType is one of C D N Y I L M');
    return { code: f.code, name: f.name.trim(), dataType: f.dataType, length: f.length ?? null, sensitive: Boolean(f.sensitive), required: !optional.has(f.code) };
  });
  for (const o of optional) if (!seen.has(o)) throw badInput('optionalFields', `${o} is not a face field`);
  return ctx.db.transaction(async (tx) => {
    let row: LicenceType;
    try {
      [row] = (await tx
        .insert(licenceTypes)
        .values({ code, name, definingDepartment, holderKind: input.holderKind, issuers, faceFields, validityYears: input.validityYears ?? null, numberIsPersonalId: Boolean(input.numberIsPersonalId) })
        .returning()) as [LicenceType];
    } catch (error) {
      if (isUniqueViolation(error)) throw new HubError('CONFLICT', `licence type ${code} is already registered`, {}, { cause: error });
      throw error;
    }
    await appendInTransaction(tx, [
      { clientId: ctx.principal.clientId, department: ctx.principal.department, operation: 'LICENCE_TYPE_REGISTER', resourceCode: code, outcome: 'DONE', requestId: ctx.requestId, details: { name, issuers, holderKind: input.holderKind, validityYears: input.validityYears ?? null, numberIsPersonalId: Boolean(input.numberIsPersonalId) } },
    ]);
    return row;
  });
}

export async function getLicenceType(db: Db, code: string): Promise<LicenceType | undefined> {
  const [row] = await db.select().from(licenceTypes).where(eq(licenceTypes.code, code));
  return row;
}

export async function listLicenceTypes(db: Db): Promise<LicenceType[]> {
  return db.select().from(licenceTypes).orderBy(licenceTypes.code);
}

/** A calendar date written YYYY-MM-DD (year 0001 to 9999; arithmetic, as a batch checks thousands). */
function isRealDate(v: string): boolean {
  if (typeof v !== 'string' || v.length !== 10 || v[4] !== '-' || v[7] !== '-') return false;
  const y = digitsAt(v, 0, 4);
  return y >= 1 && isRealDay(y, digitsAt(v, 5, 2), digitsAt(v, 8, 2));
}

/** Checks 照面信息 against the type: every required field present, no unknown field, each of its data type. */
export function validateFace(type: LicenceType, face: unknown, fieldPrefix = 'face'): Record<string, unknown> {
  if (!face || typeof face !== 'object' || Array.isArray(face)) throw badInput(fieldPrefix, 'face is an object of the type\'s face fields');
  const given = face as Record<string, unknown>;
  const known = new Map(type.faceFields.map((f) => [f.code, f]));
  for (const k of Object.keys(given)) if (!known.has(k)) throw badInput(`${fieldPrefix}.${k}`, `licence type ${type.code} has no face field ${k}`);
  const out: Record<string, unknown> = {};
  for (const f of type.faceFields) {
    const v = given[f.code];
    const field = `${fieldPrefix}.${f.code}`;
    if (v === undefined || v === null || v === '') {
      if (f.required) throw badInput(field, `${f.name} (${f.code}) is required`);
      continue;
    }
    switch (f.dataType) {
      case 'C':
        if (typeof v !== 'string') throw badInput(field, `${f.name} is text`);
        // characters are counted only past the limit in UTF-16 units (never fewer than the characters)
        if (f.length && v.length > f.length && [...v].length > f.length) throw badInput(field, `${f.name} is at most ${f.length} characters`);
        break;
      case 'D':
        if (typeof v !== 'string' || !isRealDate(v)) throw badInput(field, `${f.name} is a date (YYYY-MM-DD)`);
        break;
      case 'N':
      case 'Y':
        if (typeof v !== 'number' || !Number.isFinite(v)) throw badInput(field, `${f.name} is a number`);
        break;
      case 'I':
        if (typeof v !== 'number' || !Number.isInteger(v)) throw badInput(field, `${f.name} is a whole number`);
        break;
      case 'L':
        if (typeof v !== 'boolean') throw badInput(field, `${f.name} is true or false`);
        break;
      default:
        if (typeof v === 'string' && f.length && v.length > f.length && [...v].length > f.length) throw badInput(field, `${f.name} is at most ${f.length} characters`);
    }
    out[f.code] = v;
  }
  return out;
}

export { isRealDate };
