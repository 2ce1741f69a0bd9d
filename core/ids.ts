/**
 * Check algorithms for the subject codes the hub keys everything on (DOMAIN.md has the verified vectors).
 * - 公民身份号码 (GB 11643-1999)
 * - 统一社会信用代码 (GB 32100-2015) with its embedded organisation code (GB 11714)
 */

import { digitsAt, isRealDay } from './time.ts';

const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK = '10X98765432';

/** The GB 11643 check character for the first 17 digits. */
export function idNumberCheckChar(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += (first17.charCodeAt(i) - 48) * ID_WEIGHTS[i]!;
  return ID_CHECK[sum % 11]!;
}

/**
 * Whether the YYYYMMDD at `at` names a real day from 1800 on (arithmetic, in place: it runs for every subject of every
 * read, and makes no closure, which tsx would name on every call).
 */
function isRealDateAt(text: string, at: number): boolean {
  const y = digitsAt(text, at, 4);
  return y >= 1800 && isRealDay(y, digitsAt(text, at + 4, 2), digitsAt(text, at + 6, 2));
}

export type IdNumberProblem = 'FORMAT' | 'BIRTH_DATE' | 'CHECK_DIGIT';

/** Why a 公民身份号码 is invalid, or null when it is valid. Lower-case x is not accepted: the standard prints X. */
export function idNumberProblem(value: string): IdNumberProblem | null {
  if (!/^[1-9]\d{16}[\dX]$/.test(value)) return 'FORMAT';
  if (!isRealDateAt(value, 6)) return 'BIRTH_DATE';
  if (idNumberCheckChar(value) !== value[17]) return 'CHECK_DIGIT';
  return null;
}

export function isValidIdNumber(value: string): boolean {
  return idNumberProblem(value) === null;
}

const USCC_CHARS = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2];

/** The GB 32100 check character for the first 17 characters, or null if one is outside the charset. */
export function usccCheckChar(first17: string): string | null {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const v = USCC_CHARS.indexOf(first17[i]!);
    if (v < 0) return null;
    sum += v * USCC_WEIGHTS[i]!;
  }
  return USCC_CHARS[(31 - (sum % 31)) % 31]!;
}

/** The GB 11714 check character for an 8-character organisation code body. */
export function orgCodeCheckChar(body8: string): string | null {
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const c = body8[i]!;
    const v = c >= '0' && c <= '9' ? c.charCodeAt(0) - 48 : c >= 'A' && c <= 'Z' ? c.charCodeAt(0) - 55 : -1;
    if (v < 0) return null;
    sum += v * ORG_WEIGHTS[i]!;
  }
  const c = 11 - (sum % 11);
  return c === 10 ? 'X' : c === 11 ? '0' : String(c);
}

export type UsccProblem = 'FORMAT' | 'CHECK_DIGIT' | 'ORG_CODE';

/** Why a 统一社会信用代码 is invalid, or null when it is valid. */
export function usccProblem(value: string): UsccProblem | null {
  if (!/^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$/.test(value)) return 'FORMAT';
  if (usccCheckChar(value.slice(0, 17)) !== value[17]) return 'CHECK_DIGIT';
  if (orgCodeCheckChar(value.slice(8, 16)) !== value[16]) return 'ORG_CODE';
  return null;
}

export function isValidUscc(value: string): boolean {
  return usccProblem(value) === null;
}

/**
 * Builds a valid USCC from its parts (for seeds and simulators): registration authority + category (2 chars),
 * region (6 digits), organisation code body (8 chars); both check characters are computed.
 */
export function makeUscc(authorityAndCategory: string, region: string, orgBody: string): string {
  const org = orgBody + orgCodeCheckChar(orgBody);
  const first17 = authorityAndCategory + region + org;
  const check = usccCheckChar(first17);
  if (check === null || org.length !== 9) throw new Error(`cannot build a USCC from ${first17}`);
  return first17 + check;
}

/** 18 characters that look like a 公民身份号码 (region, a 19xx/20xx date, sequence, check), not inside a longer run. */
const ID_LIKE = /(?<![0-9A-Za-z])([1-9]\d{5})((?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))(\d{3}[\dXx])(?![0-9A-Za-z])/g;

/**
 * Masks every 公民身份号码-shaped run in a text: region kept, birth date hidden, sequence and check kept
 * (110105********002X). Over-masking an 18-digit number that is not an ID is the safe error.
 */
export function maskIdNumbers(text: string): string {
  return text.replace(ID_LIKE, (_m, region: string, _birth: string, tail: string) => `${region}********${tail}`);
}

/** Masks one known ID number (for display). */
export function maskIdNumber(id: string): string {
  return id.length === 18 ? `${id.slice(0, 6)}********${id.slice(14)}` : '*'.repeat(id.length);
}
