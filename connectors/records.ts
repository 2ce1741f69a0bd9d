import { idNumberProblem, usccProblem } from '../core/ids.ts';
import type { IncomingRecord } from '../basedata/store.ts';
import type { BaseRecordKind } from '../basedata/schema.ts';

/**
 * Mapping: hub field → where it comes from in the source record.
 * `{ from: 'xb', values: { '1': '男', '2': '女' } }`, `{ from: 'csrq', transform: 'date8' }`, or for a nested object
 * `{ fields: { name: { from: 'fddbr' }, idNumber: { from: 'fddbrzjhm' } } }`.
 */
export interface FieldMapping {
  from?: string;
  transform?: 'trim' | 'date' | 'date8' | 'number' | 'list' | 'upper' | 'boolean';
  values?: Record<string, unknown>;
  fields?: Record<string, FieldMapping>;
  /** a missing or empty value is a validation failure (REQUIRED_MISSING) */
  required?: boolean;
}
export type Mapping = Record<string, FieldMapping>;

/** Reason codes of quarantine, stable for reports and for department feedback. */
export type QuarantineReason =
  | 'MALFORMED'
  | 'REQUIRED_MISSING'
  | 'ID_NUMBER_INVALID'
  | 'USCC_INVALID'
  | 'SUBJECT_CODE_INVALID'
  | 'ENUM_INVALID'
  | 'DATE_INVALID'
  | 'BIRTH_DATE_MISMATCH'
  /** the record is held by another department that is a source of the kind too: not overwritten */
  | 'HELD_BY_OTHER_SOURCE';

export class RecordProblem extends Error {
  constructor(
    readonly reason: QuarantineReason,
    message: string,
  ) {
    super(message);
  }
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

function realDate(iso: string): boolean {
  if (!DATE.test(iso)) return false;
  const d = new Date(`${iso}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(iso);
}

function transform(value: unknown, m: FieldMapping, field: string): unknown {
  if (value === undefined || value === null || value === '') return null;
  if (m.values) {
    const key = String(value);
    if (!Object.hasOwn(m.values, key)) throw new RecordProblem('ENUM_INVALID', `${field}: "${key}" is not one of ${Object.keys(m.values).join(', ')}`);
    return m.values[key];
  }
  switch (m.transform) {
    case undefined:
      return typeof value === 'string' ? value.trim() : value;
    case 'trim':
      return String(value).trim();
    case 'upper':
      return String(value).trim().toUpperCase();
    case 'number': {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new RecordProblem('MALFORMED', `${field}: "${String(value)}" is not a number`);
      return n;
    }
    case 'boolean':
      return value === true || value === 'true' || value === '1' || value === 1;
    case 'list':
      return Array.isArray(value) ? value.map(String) : String(value).split(';').map((s) => s.trim()).filter(Boolean);
    case 'date8': {
      const s = String(value).trim();
      const iso = /^\d{8}$/.test(s) ? `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}` : s;
      if (!realDate(iso)) throw new RecordProblem('DATE_INVALID', `${field}: "${s}" is not a date`);
      return iso;
    }
    case 'date': {
      const s = String(value).trim().slice(0, 10);
      if (!realDate(s)) throw new RecordProblem('DATE_INVALID', `${field}: "${String(value)}" is not a date`);
      return s;
    }
  }
}

/** Applies a mapping to one source record; throws RecordProblem. */
export function applyMapping(source: Record<string, unknown>, mapping: Mapping, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, m] of Object.entries(mapping)) {
    const name = `${prefix}${field}`;
    const value = m.fields ? applyMapping(source, m.fields, `${name}.`) : transform(m.from ? source[m.from] : undefined, m, name);
    if (m.required && (value === null || value === '')) throw new RecordProblem('REQUIRED_MISSING', `${name} is required`);
    out[field] = value;
  }
  return out;
}

export const LEGAL_PERSON_STATUSES = ['EXISTING', 'OPERATING', 'REVOKED', 'CANCELLED', 'MOVED_OUT'];
export const CREDIT_LIST_TYPES = ['RED', 'BLACK', 'PERMIT', 'SANCTION'];

function requireText(data: Record<string, unknown>, ...fields: string[]): void {
  for (const f of fields) {
    if (typeof data[f] !== 'string' || !(data[f] as string).trim()) throw new RecordProblem('REQUIRED_MISSING', `${f} is required`);
  }
}

function checkIdNumber(value: unknown, field: string): void {
  const problem = idNumberProblem(String(value ?? ''));
  if (problem) throw new RecordProblem('ID_NUMBER_INVALID', `${field} ${String(value)} fails GB 11643 (${problem})`);
}

/**
 * Validates a mapped record of a kind and returns what the store needs. `authoritative` sources may send pilot-era
 * USCCs that fail their check: accepted, and flagged PILOT_CODE.
 */
export function toIncoming(kind: BaseRecordKind, data: Record<string, unknown>, sourceId: string, options: { authoritative?: boolean } = {}): IncomingRecord {
  const flags: string[] = [];
  switch (kind) {
    case 'population': {
      requireText(data, 'idNumber', 'name');
      checkIdNumber(data.idNumber, 'idNumber');
      const id = data.idNumber as string;
      const born = `${id.slice(6, 10)}-${id.slice(10, 12)}-${id.slice(12, 14)}`;
      if (data.birthDate && data.birthDate !== born) throw new RecordProblem('BIRTH_DATE_MISMATCH', `birthDate ${String(data.birthDate)} differs from the ID number's ${born}`);
      if (data.gender && data.gender !== (Number(id[16]) % 2 === 1 ? '男' : '女')) throw new RecordProblem('ENUM_INVALID', `gender ${String(data.gender)} contradicts the ID number`);
      return { key: id, subject: id, data, sourceId, flags };
    }
    case 'legal_person': {
      requireText(data, 'uscc', 'name');
      const uscc = data.uscc as string;
      const problem = usccProblem(uscc);
      if (problem) {
        if (!(options.authoritative && problem !== 'FORMAT')) throw new RecordProblem('USCC_INVALID', `uscc ${uscc} fails GB 32100 (${problem})`);
        flags.push('PILOT_CODE');
      }
      if (data.status !== null && data.status !== undefined && !LEGAL_PERSON_STATUSES.includes(String(data.status))) {
        throw new RecordProblem('ENUM_INVALID', `status ${String(data.status)} is not one of ${LEGAL_PERSON_STATUSES.join(', ')}`);
      }
      const rep = data.legalRepresentative as Record<string, unknown> | null;
      if (rep && rep.idNumber) checkIdNumber(rep.idNumber, 'legalRepresentative.idNumber');
      return { key: uscc, subject: uscc, data, sourceId, flags };
    }
    case 'credit': {
      requireText(data, 'entryId', 'subjectCode', 'authority');
      const code = data.subjectCode as string;
      if (idNumberProblem(code) && usccProblem(code)) throw new RecordProblem('SUBJECT_CODE_INVALID', `subjectCode ${code} is neither a valid 公民身份号码 nor 统一社会信用代码`);
      if (!CREDIT_LIST_TYPES.includes(String(data.listType))) throw new RecordProblem('ENUM_INVALID', `listType ${String(data.listType)} is not one of ${CREDIT_LIST_TYPES.join(', ')}`);
      return { key: data.entryId as string, subject: code, data, sourceId, flags };
    }
  }
}

/** The mappings the department simulators' source formats need (公安, 市场监管, 信用平台 field names). */
export const PRESET_MAPPINGS: Record<BaseRecordKind, Mapping> = {
  population: {
    idNumber: { from: 'sfzh', transform: 'upper', required: true },
    name: { from: 'xm', required: true },
    gender: { from: 'xb', values: { '1': '男', '2': '女' } },
    ethnicity: { from: 'mz' },
    birthDate: { from: 'csrq', transform: 'date8' },
    birthPlace: { from: 'csd' },
    householdAddress: { from: 'hjdz' },
    registrationAuthority: { from: 'hjdjjg' },
    maritalStatus: { from: 'hyzk', values: { '10': '未婚', '20': '已婚', '30': '丧偶', '40': '离婚' } },
    deceased: { from: 'swbs', values: { '0': false, '1': true } },
  },
  legal_person: {
    uscc: { from: 'tyshxydm', transform: 'upper', required: true },
    name: { from: 'qymc', required: true },
    orgType: { from: 'qylx' },
    legalRepresentative: { fields: { name: { from: 'fddbr' }, idNumber: { from: 'fddbrzjhm', transform: 'upper' } } },
    registeredCapital: { from: 'zczb', transform: 'number' },
    establishedOn: { from: 'clrq', transform: 'date' },
    address: { from: 'zs' },
    businessScope: { from: 'jyfw' },
    registrationAuthority: { from: 'djjg' },
    status: { from: 'djzt', values: { 存续: 'EXISTING', 在业: 'OPERATING', 吊销: 'REVOKED', 注销: 'CANCELLED', 迁出: 'MOVED_OUT' } },
    approvedOn: { from: 'hzrq', transform: 'date' },
  },
  credit: {
    entryId: { from: 'id', required: true },
    subjectCode: { from: 'ztdm', transform: 'upper', required: true },
    subjectName: { from: 'ztmc' },
    listType: { from: 'lb', required: true },
    authority: { from: 'lrjg' },
    reason: { from: 'lryy' },
    basis: { from: 'yj' },
    listedOn: { from: 'lrrq', transform: 'date' },
    validUntil: { from: 'yxq', transform: 'date' },
    repairedAt: { from: 'xfrq', transform: 'date' },
    measures: { from: 'cs', transform: 'list' },
  },
};
