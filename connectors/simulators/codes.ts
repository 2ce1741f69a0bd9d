/**
 * Table-driven versions of the GB 11643 / GB 32100 / GB 11714 check characters (the same algorithms as core/ids.ts,
 * which the tests check every generated code against), for generating a million codes quickly.
 */

export const ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
export const ID_CHECK = '10X98765432';

export const USCC_CHARS = '0123456789ABCDEFGHJKLMNPQRTUWXY';
const USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2];

const USCC_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < USCC_CHARS.length; i++) USCC_VALUE[USCC_CHARS.charCodeAt(i)] = i;
const ORG_VALUE = new Int8Array(128).fill(-1);
for (let c = 48; c <= 57; c++) ORG_VALUE[c] = c - 48;
for (let c = 65; c <= 90; c++) ORG_VALUE[c] = c - 55;

/** GB 11643 check character of 17 digits. */
export function idCheck(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += (first17.charCodeAt(i) - 48) * ID_WEIGHTS[i]!;
  return ID_CHECK[sum % 11]!;
}

/** GB 11714 check character of an 8-character organisation code body (0-9, A-Z). */
export function orgCheck(body8: string): string {
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const v = ORG_VALUE[body8.charCodeAt(i)] ?? -1;
    if (v < 0) throw new RangeError(`not an organisation code body: ${body8}`);
    sum += v * ORG_WEIGHTS[i]!;
  }
  const c = 11 - (sum % 11);
  return c === 10 ? 'X' : c === 11 ? '0' : String(c);
}

/** GB 32100 check character of the first 17 characters. */
export function usccCheck(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i++) {
    const v = USCC_VALUE[first17.charCodeAt(i)] ?? -1;
    if (v < 0) throw new RangeError(`not a USCC prefix: ${first17}`);
    sum += v * USCC_WEIGHTS[i]!;
  }
  return USCC_CHARS[(31 - (sum % 31)) % 31]!;
}

/** A valid USCC from authority + category, region and organisation code body (as core/ids.ts makeUscc). */
export function buildUscc(authorityAndCategory: string, region: string, orgBody: string): string {
  const first17 = authorityAndCategory + region + orgBody + orgCheck(orgBody);
  return first17 + usccCheck(first17);
}
