import crypto from 'node:crypto';
import { randomBytesPooled } from '../core/random.ts';
import { enc, signDetachedJwsAsync } from './jws.ts';
import { shanghaiDate } from '../core/time.ts';
import type { LicenceSigningKey } from './pki.ts';
import { statusListUri } from './status-list.ts';

/** What both credential forms of one licence version say. */
export interface LicenceClaims {
  identifier: string;
  typeCode: string;
  typeName: string;
  number: string;
  holderName: string;
  holderCode: string;
  holderCodeType: 'ID_NUMBER' | 'USCC';
  issuerName: string;
  issuerCode: string;
  issuedAt: Date;
  /** YYYY-MM-DD */
  validFrom: string;
  validUntil: string | null;
  face: Record<string, unknown>;
  statusList: number;
  statusIndex: number;
  /** the type's 证照编号 is a personal identifier (居民身份证): in the SD-JWT VC it is disclosable, not in clear */
  numberIsPersonalId?: boolean;
}

/** 持证主体代码类型: 111 公民身份号码, 001 统一社会信用代码 */
export const HOLDER_CODE_TYPE_GBT = { ID_NUMBER: '111', USCC: '001' } as const;

/** The GB/T 36903 metadata of a licence version (field names as deployed systems use them). */
export function gbt36903Metadata(c: LicenceClaims, signerKid: string): Record<string, unknown> {
  return {
    ZZMC: c.typeName,
    ZZLXDM: c.typeCode,
    ZZBH: c.number,
    ZZBS: c.identifier,
    ZZBFJG: c.issuerName,
    ZZBFJGDM: c.issuerCode,
    ZZBFRQ: shanghaiDate(c.issuedAt),
    CZZT: c.holderName,
    CZZTDM: c.holderCode,
    CZZTDMLX: HOLDER_CODE_TYPE_GBT[c.holderCodeType],
    ZZYXQQSRQ: c.validFrom,
    ZZYXQJZRQ: c.validUntil ?? '长期',
    QZ: { signer: signerKid, time: c.issuedAt.toISOString() },
  };
}

export const dayStart = (date: string) => `${date}T00:00:00+08:00`;
export const dayEnd = (date: string) => `${date}T23:59:59+08:00`;

export function licenceUrl(hubIssuer: string, identifier: string): string {
  return `${hubIssuer}/licences/${identifier}`;
}

/** The encoded protected header of a hub signing key for a type (its x5c is fixed per kid), made once. */
const headers = new Map<string, string>();
export function protectedHeader(key: Pick<LicenceSigningKey, 'kid' | 'x5c'>, typ: string): string {
  const k = `${key.kid}|${typ}`;
  let h = headers.get(k);
  if (!h) {
    h = enc({ alg: 'ES256', typ, kid: key.kid, x5c: key.x5c });
    if (headers.size > 1000) headers.clear();
    headers.set(k, h);
  }
  return h;
}

/**
 * W3C VC 2.0 in JOSE form: the payload is the credential itself (typ vc+jwt), x5c in the header. Returned in its
 * stored form, without the header (`attachHeader` puts it back).
 */
export function signVcJose(hubIssuer: string, c: LicenceClaims, key: LicenceSigningKey, metadata = gbt36903Metadata(c, key.kid)): Promise<string> {
  const statusBase = { type: 'BitstringStatusListEntry', statusListIndex: String(c.statusIndex) };
  const revocation = statusListUri(hubIssuer, c.statusList, 'revocation');
  const suspension = statusListUri(hubIssuer, c.statusList, 'suspension');
  const vc = {
    '@context': ['https://www.w3.org/ns/credentials/v2'],
    id: licenceUrl(hubIssuer, c.identifier),
    type: ['VerifiableCredential', 'ElectronicLicence'],
    issuer: { id: `${hubIssuer}/departments/${c.issuerCode}`, name: c.issuerName },
    validFrom: dayStart(c.validFrom),
    ...(c.validUntil ? { validUntil: dayEnd(c.validUntil) } : {}),
    credentialSubject: { ...metadata, face: c.face },
    credentialStatus: [
      { id: `${revocation}#${c.statusIndex}`, statusPurpose: 'revocation', statusListCredential: revocation, ...statusBase },
      { id: `${suspension}#${c.statusIndex}`, statusPurpose: 'suspension', statusListCredential: suspension, ...statusBase },
    ],
  };
  return signDetachedJwsAsync(protectedHeader(key, 'vc+jwt'), vc, key);
}

export function vctOf(hubIssuer: string, typeCode: string): string {
  return `${hubIssuer}/licence-types/${typeCode}`;
}

/** A disclosure's digest as it stands in `_sd` (sha-256 over the base64url text). */
export function disclosureDigest(disclosure: string): string {
  return crypto.hash('sha256', disclosure, 'base64url');
}

/**
 * SD-JWT VC (typ dc+sd-jwt, vct): the holder's name and code and every face field are selectively disclosable;
 * the licence's identity (type, number, identifier, issuer, dates) is not, except a number that is a personal
 * identifier (the 居民身份证's is the 公民身份号码): a presentation that discloses nothing shows no ID number. The
 * identifier (ZZBS) is made of the type, the issuer and a random serial, never of the number. Status: an IETF Token
 * Status List entry. Returned in its stored form, without the header.
 */
export async function signSdJwtVc(hubIssuer: string, c: LicenceClaims, key: LicenceSigningKey, m = gbt36903Metadata(c, key.kid)): Promise<string> {
  const disclosable: [string, unknown][] = [
    ['CZZT', c.holderName],
    ['CZZTDM', c.holderCode],
    ...(c.numberIsPersonalId ? ([['ZZBH', m.ZZBH]] as [string, unknown][]) : []),
    ...Object.entries(c.face),
  ];
  const salts = randomBytesPooled(16 * disclosable.length);
  const disclosures = disclosable.map(([name, value], i) => Buffer.from(JSON.stringify([salts.subarray(i * 16, i * 16 + 16).toString('base64url'), name, value])).toString('base64url'));
  const payload = {
    iss: `${hubIssuer}/departments/${c.issuerCode}`,
    iat: Math.floor(c.issuedAt.getTime() / 1000),
    nbf: Math.floor(new Date(dayStart(c.validFrom)).getTime() / 1000),
    ...(c.validUntil ? { exp: Math.floor(new Date(dayEnd(c.validUntil)).getTime() / 1000) } : {}),
    vct: vctOf(hubIssuer, c.typeCode),
    ZZMC: m.ZZMC,
    ZZLXDM: m.ZZLXDM,
    ...(c.numberIsPersonalId ? {} : { ZZBH: m.ZZBH }),
    ZZBS: m.ZZBS,
    ZZBFJG: m.ZZBFJG,
    ZZBFJGDM: m.ZZBFJGDM,
    ZZBFRQ: m.ZZBFRQ,
    CZZTDMLX: m.CZZTDMLX,
    ZZYXQQSRQ: m.ZZYXQQSRQ,
    ZZYXQJZRQ: m.ZZYXQJZRQ,
    status: { status_list: { idx: c.statusIndex, uri: statusListUri(hubIssuer, c.statusList) } },
    _sd: disclosures.map(disclosureDigest).sort(),
    _sd_alg: 'sha-256',
  };
  const jws = await signDetachedJwsAsync(protectedHeader(key, 'dc+sd-jwt'), payload, key);
  return `${jws}~${disclosures.join('~')}~`;
}

/**
 * A credential from its stored form, which lacks the protected header: the header (alg, typ, kid, x5c) is the same on
 * every licence a key signs, so it is kept once, with the key, and put back on reading.
 */
export function attachHeader(key: Pick<LicenceSigningKey, 'kid' | 'x5c'>, typ: 'vc+jwt' | 'dc+sd-jwt', stored: string): string {
  return `${protectedHeader(key, typ)}.${stored}`;
}
