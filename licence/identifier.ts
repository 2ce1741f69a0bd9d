/**
 * 电子证照标识 (GB/T 36904-2018):
 * `1.2.156.3005.2.<证照类型代码>.<颁证机构代码>.<流水号>.<版本号>.<校验位>`, the check character computed with
 * ISO/IEC 7064 MOD 37,36 over type + issuer + serial + version (no dots, no root).
 */
export const IDENTIFIER_ROOT = '1.2.156.3005.2';
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
/** each character code's value in ALPHABET, -1 for any other (codes past 127 are checked before the lookup) */
const VALUE = Int8Array.from({ length: 128 }, (_, c) => ALPHABET.indexOf(String.fromCharCode(c)));

/**
 * The MOD 37,36 check character of a string of digits and upper-case letters, or null if another character occurs.
 * Every verification computes one, so characters are looked up by code rather than searched for in the alphabet.
 */
export function mod3736CheckChar(body: string): string | null {
  let p = 36;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    const a = c < 128 ? VALUE[c]! : -1;
    if (a < 0) return null;
    // (p + a) mod 36 with 0 read as 36, then 2s mod 37: p is 1..36 and a 0..35, so one subtraction does each
    let s = p + a;
    if (s > 36) s -= 36;
    p = 2 * s;
    if (p >= 37) p -= 37;
  }
  return ALPHABET[(37 - p) % 36]!;
}

export interface LicenceIdentifierParts {
  typeCode: string;
  issuerCode: string;
  serial: string;
  /** 1..999 */
  version: number;
}

export function formatVersion(version: number): string {
  if (!Number.isInteger(version) || version < 1 || version > 999) throw new RangeError(`licence version ${version} is outside 1..999`);
  return String(version).padStart(3, '0');
}

/** Builds the identifier with its check character. */
export function makeLicenceIdentifier(p: LicenceIdentifierParts): string {
  const v = formatVersion(p.version);
  const check = mod3736CheckChar(`${p.typeCode}${p.issuerCode}${p.serial}${v}`);
  if (check === null) throw new RangeError('licence identifier parts hold characters outside 0-9 and A-Z');
  return `${IDENTIFIER_ROOT}.${p.typeCode}.${p.issuerCode}.${p.serial}.${v}.${check}`;
}

export type IdentifierProblem = 'FORMAT' | 'CHECK_DIGIT';

const SHAPE = /^1\.2\.156\.3005\.2\.([0-9A-Z]{21})\.([0-9A-Z]{18})\.([0-9A-Z]{1,40})\.(\d{3})\.([0-9A-Z])$/;

/** Splits an identifier into its parts (null when its shape is wrong; the check character is not checked here). */
export function parseLicenceIdentifier(identifier: string): (LicenceIdentifierParts & { check: string }) | null {
  const m = SHAPE.exec(identifier);
  if (!m) return null;
  return { typeCode: m[1]!, issuerCode: m[2]!, serial: m[3]!, version: Number(m[4]), check: m[5]! };
}

/** Whether a parsed identifier's last character is the MOD 37,36 check character of the rest. */
export function checkDigitHolds(p: LicenceIdentifierParts & { check: string }): boolean {
  return mod3736CheckChar(`${p.typeCode}${p.issuerCode}${p.serial}${formatVersion(p.version)}`) === p.check;
}

export function identifierProblem(identifier: string): IdentifierProblem | null {
  const p = parseLicenceIdentifier(identifier);
  if (!p || p.version < 1) return 'FORMAT';
  return checkDigitHolds(p) ? null : 'CHECK_DIGIT';
}
