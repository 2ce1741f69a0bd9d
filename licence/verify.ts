import DataLoader from 'dataloader';
import { eq, inArray } from 'drizzle-orm';
import type { Db } from '../db/index.ts';
import { beijingDate, disclosureDigest } from './credentials.ts';
import { identifierProblem } from './identifier.ts';
import { effectiveStatus } from './issue.ts';
import { decodeCompactJws, verifyEs256 } from './jws.ts';
import type { LicencePki } from './pki.ts';
import { licences, licenceSigners, type LicenceStatus } from './schema.ts';

export const VERIFICATION_REASONS = ['SIGNATURE', 'CHAIN', 'CERT_NOT_VALID_AT_ISSUANCE', 'REVOKED', 'SUSPENDED', 'SUPERSEDED', 'EXPIRED', 'NOT_YET_VALID', 'CHECK_DIGIT', 'DISCLOSURE', 'MALFORMED'] as const;
export type VerificationReason = (typeof VERIFICATION_REASONS)[number];

/** The licence as the verifier found it on record (the stored credential texts are loaded only when asked for). */
export type VerifiedLicence = Omit<typeof licences.$inferSelect, 'credential' | 'sdJwt'> & { credential?: string; sdJwt?: string };

export interface LicenceVerification {
  valid: boolean;
  status: LicenceStatus | null;
  reasons: VerificationReason[];
  licence: VerifiedLicence | null;
  /** which form was presented */
  format: 'vc+jwt' | 'dc+sd-jwt' | null;
  /** the disclosed claims of an SD-JWT VC (name → value), when they check */
  disclosed?: Record<string, unknown>;
}

type RecordRow = VerifiedLicence & { signerRevokedAt: Date | null; signerFingerprint: string };

const MAX_CREDENTIAL = 64 * 1024;

/** Every column but the two credential texts (kilobytes each, and the verifier holds the one presented). */
const recordColumns = {
    id: licences.id,
    identifier: licences.identifier,
    typeCode: licences.typeCode,
    issuerCode: licences.issuerCode,
    issuerName: licences.issuerName,
    serial: licences.serial,
    version: licences.version,
    number: licences.number,
    holderName: licences.holderName,
    holderCode: licences.holderCode,
    holderCodeType: licences.holderCodeType,
    issuedAt: licences.issuedAt,
    validFrom: licences.validFrom,
    validUntil: licences.validUntil,
    status: licences.status,
    statusReason: licences.statusReason,
    statusChangedAt: licences.statusChangedAt,
    face: licences.face,
    metadata: licences.metadata,
    signerKid: licences.signerKid,
    statusList: licences.statusList,
    statusIndex: licences.statusIndex,
    previousIdentifier: licences.previousIdentifier,
    supersededBy: licences.supersededBy,
    createdAt: licences.createdAt,
    updatedAt: licences.updatedAt,
};

/**
 * verifyLicence: signature (crypto.verify with the chain's cached KeyObject), chain to the hub root (validated once
 * per certificate, cached), certificate valid at issuance and not revoked before it, status and validity from the
 * database on every call (records of concurrent calls share one query; nothing about a verification is cached),
 * identifier check digit, disclosures.
 */
export class LicenceVerifier {
  private readonly loader: DataLoader<string, RecordRow | null>;

  constructor(
    private readonly db: Db,
    private readonly pki: LicencePki,
  ) {
    this.loader = new DataLoader<string, RecordRow | null>(
      async (ids) => {
        const found = await this.db
          .select({ ...recordColumns, signerRevokedAt: licenceSigners.revokedAt, signerFingerprint: licenceSigners.fingerprint })
          .from(licences)
          .innerJoin(licenceSigners, eq(licenceSigners.kid, licences.signerKid))
          .where(inArray(licences.identifier, [...ids]));
        const by = new Map(found.map((r) => [r.identifier, r as RecordRow]));
        return ids.map((id) => by.get(id) ?? null);
      },
      { cache: false, maxBatchSize: 500, batchScheduleFn: (run) => setImmediate(run) },
    );
  }

  async verify(credential: string, now = Date.now()): Promise<LicenceVerification> {
    const reasons = new Set<VerificationReason>();
    const fail = (format: LicenceVerification['format'] = null): LicenceVerification => ({ valid: false, status: null, reasons: ['MALFORMED'], licence: null, format });
    if (typeof credential !== 'string' || credential.length === 0 || credential.length > MAX_CREDENTIAL) return fail();
    const text = credential.trim();
    const tilde = text.indexOf('~');
    const sd = tilde >= 0;
    const jws = decodeCompactJws(sd ? text.slice(0, tilde) : text);
    const format = sd ? 'dc+sd-jwt' : 'vc+jwt';
    if (!jws || jws.header.alg !== 'ES256' || jws.header.typ !== format) return fail(sd ? 'dc+sd-jwt' : jws ? 'vc+jwt' : null);
    const { header, payload } = jws;

    // chain and signature
    const chain = this.pki.validateChain(header.x5c);
    if (!chain.ok) reasons.add('CHAIN');
    else if (!verifyEs256(jws.signingInput, jws.signature, chain.publicKey)) reasons.add('SIGNATURE');

    // identifier and its check character
    const subject = sd ? payload : (payload.credentialSubject as Record<string, unknown> | undefined);
    const identifier = subject && typeof subject === 'object' ? subject.ZZBS : undefined;
    if (typeof identifier !== 'string') return fail(format);
    const problem = identifierProblem(identifier);
    if (problem === 'FORMAT') return fail(format);
    if (problem === 'CHECK_DIGIT') reasons.add('CHECK_DIGIT');

    // disclosures: each must hash to an entry of _sd, none twice
    let disclosed: Record<string, unknown> | undefined;
    if (sd) {
      disclosed = {};
      const parts = text.slice(tilde + 1).split('~');
      const last = parts.pop(); // '' when there is no key-binding JWT
      if (last) reasons.add('DISCLOSURE'); // key binding is not part of hub licences
      const digests = new Set(Array.isArray(payload._sd) ? (payload._sd as unknown[]) : []);
      const used = new Set<string>();
      if (payload._sd_alg !== 'sha-256') reasons.add('DISCLOSURE');
      for (const d of parts) {
        const digest = disclosureDigest(d);
        if (!digests.has(digest) || used.has(digest)) {
          reasons.add('DISCLOSURE');
          continue;
        }
        used.add(digest);
        try {
          const arr = JSON.parse(Buffer.from(d, 'base64url').toString('utf8')) as unknown;
          if (!Array.isArray(arr) || arr.length !== 3 || typeof arr[0] !== 'string' || typeof arr[1] !== 'string') throw new Error('not a disclosure');
          disclosed[arr[1]] = arr[2];
        } catch {
          reasons.add('DISCLOSURE');
        }
      }
    }

    // validity as the credential states it
    const today = beijingDate(new Date(now));
    const from = sd ? (typeof payload.nbf === 'number' ? payload.nbf * 1000 : null) : Date.parse(String(payload.validFrom));
    const until = sd ? (typeof payload.exp === 'number' ? payload.exp * 1000 : null) : payload.validUntil ? Date.parse(String(payload.validUntil)) : null;
    if (from !== null && !Number.isNaN(from) && now < from) reasons.add('NOT_YET_VALID');
    if (until !== null && (Number.isNaN(until) || now > until)) reasons.add('EXPIRED');

    // the record: status, and the key's certificate at the time of issuance
    const record = await this.loader.load(identifier);
    let status: LicenceStatus | null = null;
    if (!record) {
      // a signature the hub holds no record of: a compromised key's forgery, or not from this hub at all
      if (chain.ok) reasons.add(this.revokedKid(header.kid) ? 'CHAIN' : 'SIGNATURE');
    } else {
      status = effectiveStatus(record, today);
      if (record.signerKid !== header.kid) reasons.add('SIGNATURE');
      if (chain.ok) {
        if (chain.fingerprint !== record.signerFingerprint) reasons.add('CHAIN');
        const issued = record.issuedAt.getTime();
        if (issued < chain.notBefore || issued > chain.notAfter) reasons.add('CERT_NOT_VALID_AT_ISSUANCE');
        if (record.signerRevokedAt && record.signerRevokedAt.getTime() <= issued) reasons.add('CHAIN');
      }
      if (status === 'SUSPENDED') reasons.add('SUSPENDED');
      else if (status === 'REVOKED' || status === 'CANCELLED' || status === 'WITHDRAWN') reasons.add('REVOKED');
      else if (status === 'SUPERSEDED') reasons.add('SUPERSEDED');
      else if (status === 'EXPIRED') reasons.add('EXPIRED');
      if (record.validFrom > today) reasons.add('NOT_YET_VALID');
    }
    const { signerRevokedAt: _r, signerFingerprint: _f, ...licence } = record ?? { signerRevokedAt: null, signerFingerprint: '' };
    return {
      valid: reasons.size === 0,
      status,
      reasons: VERIFICATION_REASONS.filter((r) => reasons.has(r)),
      licence: record ? (licence as VerifiedLicence) : null,
      format,
      ...(disclosed ? { disclosed } : {}),
    };
  }

  private revokedKid(kid: unknown): boolean {
    return typeof kid === 'string' && this.pki.isRevoked(kid);
  }
}
