import { maskValue } from '../basedata/query.ts';
import { maskIdNumber } from '../core/ids.ts';
import type { GrantDecision } from '../directory/access.ts';
import type { LicenceType } from './types.ts';

/** The 信息项 of the licence base resource (a Licence's fields fall under them). */
export const LICENCE_ITEMS = ['identifier', 'typeCode', 'number', 'holderName', 'holderCode', 'issuerName', 'validUntil', 'status', 'face'] as const;

/**
 * 调用权限 as one read of licences may use it: the 信息项 its grant covers, those it may see unmasked, and which of the
 * resource's are sensitive. The holder's own authorisation (授权用证) shows everything, as the holder chose.
 */
export interface LicenceView {
  granted: ReadonlySet<string>;
  unmasked: ReadonlySet<string>;
  sensitive: ReadonlySet<string>;
}

/** What grant decisions (one for each item of a bundle) let leave, and how: what all of them allow. */
export function viewOf(...decisions: Pick<GrantDecision, 'granted' | 'unmaskedFields' | 'resource'>[]): LicenceView {
  const all = (pick: (d: (typeof decisions)[number]) => Set<string>) => new Set([...pick(decisions[0]!)].filter((f) => decisions.every((d) => pick(d).has(f))));
  return { granted: all((d) => d.granted), unmasked: all((d) => d.unmaskedFields), sensitive: new Set(decisions[0]!.resource.fields.filter((f) => f.sensitive).map((f) => f.code)) };
}

export function holderAuthorisedView(): LicenceView {
  const all = new Set<string>(LICENCE_ITEMS);
  return { granted: all, unmasked: all, sensitive: new Set() };
}

/** Whether a 信息项 may leave whole: granted, and unmasked where it is sensitive. */
export const whole = (v: LicenceView, item: string) => v.granted.has(item) && (!v.sensitive.has(item) || v.unmasked.has(item));

/**
 * The 信息项 the all-claims credential (VC-JOSE: every face field, the holder, the number) needs whole and has not. The
 * face is whole only if none of the type's face fields is sensitive or the face is granted unmasked, whatever the
 * resource says of `face` itself (a type unknown here counts as having sensitive fields).
 */
export function missingForAllClaims(v: LicenceView, type?: Pick<LicenceType, 'faceFields'>): string[] {
  const faceSensitive = !type || type.faceFields.some((f) => f.sensitive);
  return LICENCE_ITEMS.filter((i) => !whole(v, i) || (i === 'face' && faceSensitive && !v.unmasked.has('face')));
}

/** Whether the type's face field may be shown whole: the face granted, and the field not sensitive or the face unmasked. */
function faceFieldWhole(v: LicenceView, type: Pick<LicenceType, 'faceFields'> | undefined, code: string): boolean {
  if (!v.granted.has('face')) return false;
  const sensitive = type ? (type.faceFields.find((f) => f.code === code)?.sensitive ?? true) : true;
  return !sensitive || v.unmasked.has('face');
}

/** The face as the view may see it: its sensitive fields masked unless the face is granted unmasked. */
export function faceFor(v: LicenceView, type: Pick<LicenceType, 'faceFields'> | undefined, face: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(face)) out[k] = faceFieldWhole(v, type, k) ? value : maskValue(k, value);
  return out;
}

/** The holder's code as the view may see it (a USCC is a public register's code; an ID number is masked). */
export function holderCodeFor(v: LicenceView, code: string, codeType: 'ID_NUMBER' | 'USCC'): string {
  return codeType === 'USCC' || whole(v, 'holderCode') ? code : maskIdNumber(code);
}

/** 证照编号 as the view may see it: where the type's number is a personal identifier (居民身份证), as the holder's code. */
export function numberFor(v: LicenceView, type: Pick<LicenceType, 'numberIsPersonalId'> | undefined, number: string): string {
  return type?.numberIsPersonalId && !whole(v, 'holderCode') ? String(maskValue('number', number)) : number;
}

/** The GB/T 36903 claims of the licence's identity by the 信息项 each is. */
const CLAIMS_OF_ITEM: [string, string[]][] = [
  ['typeCode', ['ZZMC', 'ZZLXDM']],
  ['issuerName', ['ZZBFJG', 'ZZBFJGDM']],
  ['validUntil', ['ZZYXQQSRQ', 'ZZYXQJZRQ']],
];

/** The GB/T 36903 metadata as the view may see it: the holder's claims and a personal 证照编号 (and its 证照标识) likewise. */
export function metadataFor(v: LicenceView, type: Pick<LicenceType, 'numberIsPersonalId'> | undefined, m: Record<string, unknown>, codeType: 'ID_NUMBER' | 'USCC'): Record<string, unknown> {
  const out: Record<string, unknown> = { ...m };
  // each claim goes with the 信息项 it is: the type's name, the issuer, the validity
  for (const [item, claims] of CLAIMS_OF_ITEM) if (!v.granted.has(item)) for (const c of claims) delete out[c];
  if (!v.granted.has('holderName')) delete out.CZZT;
  if (!v.granted.has('holderCode')) delete out.CZZTDM;
  else if (typeof out.CZZTDM === 'string') out.CZZTDM = holderCodeFor(v, out.CZZTDM, codeType);
  if (!v.granted.has('number')) delete out.ZZBH;
  else if (typeof out.ZZBH === 'string') out.ZZBH = numberFor(v, type, out.ZZBH);
  return out;
}

/** The claim name of an SD-JWT disclosure (`[salt, name, value]`, base64url JSON), or null. */
function disclosureName(d: string): string | null {
  try {
    const arr = JSON.parse(Buffer.from(d, 'base64url').toString('utf8')) as unknown;
    return Array.isArray(arr) && typeof arr[1] === 'string' ? arr[1] : null;
  } catch {
    return null;
  }
}

/** Whether a disclosure of this claim may be in a presentation for the view. */
function disclosable(v: LicenceView, type: Pick<LicenceType, 'faceFields'> | undefined, name: string): boolean {
  switch (name) {
    case 'CZZT':
      return v.granted.has('holderName');
    case 'CZZTDM':
      return whole(v, 'holderCode');
    case 'ZZBH':
      // disclosable only where the number is a personal identifier: shown as the holder's code is
      return whole(v, 'holderCode') && v.granted.has('number');
    default:
      return faceFieldWhole(v, type, name);
  }
}

/**
 * An SD-JWT VC presentation for the view (SD-JWT: the issuer-signed JWT with a subset of its disclosures): the granted
 * claims alone, whole; a masked value cannot be signed, so a field the view sees masked is not disclosed at all. It
 * verifies as the issued credential does (the same issuer JWT; each disclosure still hashes into its `_sd`).
 */
export function presentationFor(v: LicenceView, type: Pick<LicenceType, 'faceFields'> | undefined, sdJwt: string): string {
  const parts = sdJwt.split('~');
  const jwt = parts[0]!;
  const kept = parts.slice(1).filter((d) => d && disclosable(v, type, disclosureName(d) ?? ''));
  return `${jwt}~${kept.map((d) => `${d}~`).join('')}`;
}
