import 'reflect-metadata'; // @peculiar/x509 needs it loaded first
import crypto, { type KeyObject } from 'node:crypto';
import * as x509 from '@peculiar/x509';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { seal, unseal } from '../auth/master-key.ts';
import { appendInTransaction } from '../audit/writer.ts';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, notFound } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { advisoryXactLock, notify, type Database, type Db } from '../db/index.ts';
import { licenceCas, licenceSigners } from './schema.ts';

/**
 * The licence PKI. @peculiar/x509 issues the certificates (node-forge only handles RSA; the hub's keys are EC P-256),
 * node:crypto signs, and `crypto.X509Certificate` validates chains. Private keys are sealed under HUB_MASTER_KEY.
 */
export const LICENCE_KEYS_CHANNEL = 'hub_licence_keys';

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const subtle = crypto.webcrypto.subtle;
const ROOT_YEARS = 20;
const SIGNER_YEARS = 5;
const YEAR_MS = 365.25 * 24 * 3600 * 1000;

export type SignerRow = typeof licenceSigners.$inferSelect;

const fingerprintOf = (der: Buffer) => crypto.createHash('sha256').update(der).digest('hex');
/** X.509 times have whole seconds: a certificate made now must already be valid at this instant. */
const wholeSecond = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

function stamp(now: Date): string {
  return `${now.toISOString().slice(0, 10).replace(/-/g, '')}-${crypto.randomBytes(4).toString('hex')}`;
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await subtle.exportKey('pkcs8', key));
  return crypto.createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }).toString();
}

/** Creates the hub's licence root CA if there is none. Safe when N processes start at once. */
export async function ensureLicenceRoot(db: Db, masterKey: Buffer, now = new Date()): Promise<boolean> {
  return db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'licence:pki');
    const [active] = await tx.select({ id: licenceCas.id }).from(licenceCas).where(isNull(licenceCas.retiredAt)).limit(1);
    if (active) return false;
    const keys = await newKeyPair();
    const id = `licence-root-${stamp(now)}`;
    const notBefore = wholeSecond(now.getTime() - 60_000);
    const notAfter = new Date(notBefore.getTime() + ROOT_YEARS * YEAR_MS);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      name: 'CN=电子证照根证书 (hub licence root CA), O=政务数据共享交换平台',
      keys,
      notBefore,
      notAfter,
      signingAlgorithm: EC,
      serialNumber: crypto.randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const der = Buffer.from(cert.rawData);
    await tx.insert(licenceCas).values({
      id,
      certificate: der.toString('base64'),
      fingerprint: fingerprintOf(der),
      privateEnc: seal(masterKey, await pkcs8Pem(keys.privateKey), `licence_cas:${id}`),
      notBefore,
      notAfter,
    });
    await notify(tx, LICENCE_KEYS_CHANNEL, 'root');
    return true;
  });
}

/**
 * A new signing key with a certificate from the active root, inside the caller's transaction. The subject names
 * the department and its USCC (organizationIdentifier, 2.5.4.97).
 */
async function createSigner(tx: Db, masterKey: Buffer, subject: { role: 'department' | 'status'; code: string | null; name: string }, now: Date): Promise<SignerRow> {
  const [root] = await tx.select().from(licenceCas).where(isNull(licenceCas.retiredAt)).orderBy(asc(licenceCas.createdAt)).limit(1);
  if (!root) throw new HubError('CONFLICT', 'the hub has no licence root CA; start the hub once (it creates one)');
  const rootPem = unseal(masterKey, root.privateEnc, `licence_cas:${root.id}`);
  const rootDer = crypto.createPrivateKey(rootPem).export({ format: 'der', type: 'pkcs8' });
  const rootKey = await subtle.importKey('pkcs8', rootDer, EC, false, ['sign']);
  const rootCert = new x509.X509Certificate(Buffer.from(root.certificate, 'base64'));
  const keys = await newKeyPair();
  const kid = `licence-${subject.code ?? 'status'}-${stamp(now)}`;
  const notBefore = wholeSecond(now.getTime());
  const notAfter = new Date(Math.min(notBefore.getTime() + SIGNER_YEARS * YEAR_MS, root.notAfter.getTime()));
  const escape = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  const name = subject.code ? `CN=${escape(subject.name)}, O=${escape(subject.name)}, 2.5.4.97=${subject.code}` : `CN=${escape(subject.name)}, O=政务数据共享交换平台`;
  const cert = await x509.X509CertificateGenerator.create({
    subject: name,
    issuer: rootCert.subject,
    publicKey: keys.publicKey,
    signingKey: rootKey,
    signingAlgorithm: EC,
    notBefore,
    notAfter,
    serialNumber: crypto.randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.nonRepudiation, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootCert.publicKey),
    ],
  });
  const der = Buffer.from(cert.rawData);
  const publicJwk = crypto.createPublicKey({ key: Buffer.from(await subtle.exportKey('spki', keys.publicKey)), format: 'der', type: 'spki' }).export({ format: 'jwk' });
  const [row] = await tx
    .insert(licenceSigners)
    .values({
      kid,
      role: subject.role,
      departmentCode: subject.code,
      caId: root.id,
      certificate: der.toString('base64'),
      fingerprint: fingerprintOf(der),
      publicJwk: { ...publicJwk, kid, alg: 'ES256', use: 'sig' },
      privateEnc: seal(masterKey, await pkcs8Pem(keys.privateKey), `licence_signers:${kid}`),
      notBefore,
      notAfter,
    })
    .returning();
  await notify(tx, LICENCE_KEYS_CHANNEL, kid);
  return row!;
}

const usable = (now: Date) =>
  and(isNull(licenceSigners.supersededAt), isNull(licenceSigners.revokedAt), sql`${licenceSigners.notBefore} <= ${now.toISOString()}::timestamptz`, sql`${licenceSigners.notAfter} > ${now.toISOString()}::timestamptz`);

/**
 * The department's signing key now, created (with its certificate) on its first issuance, or when its certificate
 * is no longer valid. Runs in the caller's transaction; an advisory lock keeps N processes from making two.
 */
export async function departmentSigner(tx: Db, masterKey: Buffer, department: { code: string; name: string }, now = new Date()): Promise<SignerRow> {
  const find = async () =>
    (await tx.select().from(licenceSigners).where(and(eq(licenceSigners.role, 'department'), eq(licenceSigners.departmentCode, department.code), usable(now))).orderBy(asc(licenceSigners.createdAt)).limit(1))[0];
  const found = await find();
  if (found) return found;
  await advisoryXactLock(tx, `licence:signer:${department.code}`);
  return (await find()) ?? createSigner(tx, masterKey, { role: 'department', code: department.code, name: department.name }, now);
}

/** The hub's own key for status list credentials. */
export async function statusSigner(db: Db, masterKey: Buffer, now = new Date()): Promise<SignerRow> {
  return db.transaction(async (tx) => {
    const find = async () => (await tx.select().from(licenceSigners).where(and(eq(licenceSigners.role, 'status'), usable(now))).limit(1))[0];
    const found = await find();
    if (found) return found;
    await advisoryXactLock(tx, 'licence:signer:status');
    return (await find()) ?? createSigner(tx, masterKey, { role: 'status', code: null, name: '电子证照状态列表签发 (hub status lists)' }, now);
  });
}

/** 密钥轮换: a new key signs from now on; the old one keeps verifying what it signed (its chain stays valid). */
export async function rotateDepartmentKey(ctx: HubContext, masterKey: Buffer, department: { code: string; name: string }, reason: string): Promise<SignerRow> {
  requireRole(ctx, 'issuer', 'admin');
  requireOwnDepartment(ctx, department.code, `the signing key of ${department.code}`);
  if (!reason?.trim()) throw badInput('reason', 'state why the key is rotated');
  return ctx.db.transaction(async (tx) => {
    await advisoryXactLock(tx, `licence:signer:${department.code}`);
    const now = new Date();
    const old = await tx
      .update(licenceSigners)
      .set({ supersededAt: now })
      .where(and(eq(licenceSigners.role, 'department'), eq(licenceSigners.departmentCode, department.code), isNull(licenceSigners.supersededAt)))
      .returning({ kid: licenceSigners.kid });
    const signer = await createSigner(tx, masterKey, { role: 'department', code: department.code, name: department.name }, now);
    await appendInTransaction(tx, [
      { clientId: ctx.principal.clientId, department: ctx.principal.department, operation: 'LICENCE_KEY_ROTATE', subject: department.code, outcome: 'DONE', reason: reason.trim(), requestId: ctx.requestId, details: { kid: signer.kid, superseded: old.map((o) => o.kid) } },
    ]);
    return signer;
  });
}

/**
 * 证书吊销 (key compromise): from `at` (default now; may lie in the past, when the compromise began) everything the
 * key signed fails with CHAIN; what it signed before stays valid. The department's next issuance gets a new key.
 */
export async function revokeSigningCertificate(ctx: HubContext, kid: string, reason: string, at?: string | null): Promise<SignerRow> {
  requireRole(ctx, 'issuer', 'admin');
  const [row] = await ctx.db.select().from(licenceSigners).where(eq(licenceSigners.kid, kid));
  if (!row || row.role !== 'department') throw notFound(`licence signing key ${kid}`);
  requireOwnDepartment(ctx, row.departmentCode ?? '', `the signing key ${kid}`);
  if (!reason?.trim()) throw badInput('reason', 'state why the certificate is revoked');
  const when = at ? new Date(at) : new Date();
  if (Number.isNaN(when.getTime())) throw badInput('at', 'at must be an ISO instant');
  if (when.getTime() > Date.now() + 1000) throw badInput('at', 'a revocation takes effect now or from a past instant');
  return ctx.db.transaction(async (tx) => {
    const [updated] = await tx
      .update(licenceSigners)
      .set({ revokedAt: when, revocationReason: reason.trim(), supersededAt: sql`coalesce(${licenceSigners.supersededAt}, now())` })
      .where(and(eq(licenceSigners.kid, kid), isNull(licenceSigners.revokedAt)))
      .returning();
    if (!updated) throw new HubError('CONFLICT', `licence signing key ${kid} is already revoked`);
    await appendInTransaction(tx, [
      { clientId: ctx.principal.clientId, department: ctx.principal.department, operation: 'LICENCE_CERT_REVOKE', subject: row.departmentCode, outcome: 'DONE', reason: reason.trim(), requestId: ctx.requestId, details: { kid, revokedAt: when.toISOString(), fingerprint: row.fingerprint } },
    ]);
    await notify(tx, LICENCE_KEYS_CHANNEL, kid);
    return updated;
  });
}

export type ChainResult =
  | { ok: true; publicKey: KeyObject; notBefore: number; notAfter: number; fingerprint: string; subject: string }
  | { ok: false; why: string };

export interface LicenceSigningKey {
  kid: string;
  privateKey: KeyObject;
  /** leaf first, standard base64 DER */
  x5c: string[];
  departmentCode: string | null;
}

const MAX_CHAIN_CACHE = 20_000;

/**
 * The licence keys in memory: trusted roots, the public JWKS entries with their chains, unsealed private keys by
 * kid, and x5c chains validated once (cached by the chain's certificates). NOTIFY reloads every process.
 */
export class LicencePki {
  private roots = new Map<string, crypto.X509Certificate>();
  private rootB64 = new Map<string, string>();
  private signers = new Map<string, SignerRow>();
  private privateKeys = new Map<string, KeyObject>();
  private chains = new Map<string, ChainResult>();
  private unlisten: (() => Promise<void>) | undefined;

  private constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
  ) {}

  /** Loaded once, without listening for changes (short-lived tools: the seed, the CLI). */
  static async load(db: Db, masterKey: Buffer): Promise<LicencePki> {
    await ensureLicenceRoot(db, masterKey);
    const pki = new LicencePki(db, masterKey);
    await pki.reload();
    return pki;
  }

  static async open(database: Database, masterKey: Buffer, logger?: Logger): Promise<LicencePki> {
    const pki = await LicencePki.load(database.db, masterKey);
    pki.unlisten = await database.listen(LICENCE_KEYS_CHANNEL, () => {
      pki.reload().catch((err: unknown) => logger?.error({ err }, 'reloading licence keys failed'));
    });
    return pki;
  }

  async reload(): Promise<void> {
    const cas = await this.db.select().from(licenceCas);
    const roots = new Map<string, crypto.X509Certificate>();
    const rootB64 = new Map<string, string>();
    for (const c of cas) {
      roots.set(c.fingerprint, new crypto.X509Certificate(Buffer.from(c.certificate, 'base64')));
      rootB64.set(c.id, c.certificate);
    }
    const signers = new Map<string, SignerRow>();
    for (const s of await this.db.select().from(licenceSigners)) signers.set(s.kid, s);
    this.roots = roots;
    this.rootB64 = rootB64;
    this.signers = signers;
    this.chains.clear();
  }

  /** A signing key's chain (leaf first), re-reading the keys once when the kid is new to this process. */
  async chainOf(kid: string): Promise<{ kid: string; x5c: string[] }> {
    let row = this.signers.get(kid);
    if (!row) {
      await this.reload();
      row = this.signers.get(kid);
    }
    const root = row && this.rootB64.get(row.caId);
    if (!row || !root) throw new HubError('NOT_FOUND', `licence signing key ${kid} not found`);
    return { kid, x5c: [row.certificate, root] };
  }

  /** Whether a signing key's certificate has been revoked (key compromise). */
  isRevoked(kid: string): boolean {
    return Boolean(this.signers.get(kid)?.revokedAt);
  }

  /** The hub's root certificates (base64 DER), for verifiers that pin them. */
  rootCertificates(): string[] {
    return [...this.rootB64.values()];
  }

  /** The private key and chain of a signer row (unsealed once per process). */
  signingKey(row: SignerRow): LicenceSigningKey {
    if (!this.signers.has(row.kid)) this.signers.set(row.kid, row); // made in this process just now
    let key = this.privateKeys.get(row.kid);
    if (!key) {
      key = crypto.createPrivateKey(unseal(this.masterKey, row.privateEnc, `licence_signers:${row.kid}`));
      this.privateKeys.set(row.kid, key);
    }
    const root = this.rootB64.get(row.caId);
    if (!root) throw new HubError('CONFLICT', `licence root ${row.caId} is not loaded`);
    return { kid: row.kid, privateKey: key, x5c: [row.certificate, root], departmentCode: row.departmentCode };
  }

  async statusSigningKey(): Promise<LicenceSigningKey> {
    const row = await statusSigner(this.db, this.masterKey);
    if (!this.rootB64.has(row.caId)) await this.reload();
    return this.signingKey(row);
  }

  /**
   * Validates an x5c chain (leaf first) against the hub's roots with crypto.X509Certificate: the leaf is no CA, is
   * issued and signed by a trusted root. Results are cached by the chain, so a hot path pays this once per key.
   */
  validateChain(x5c: unknown): ChainResult {
    if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 3 || !x5c.every((c) => typeof c === 'string')) return { ok: false, why: 'no x5c chain' };
    const cacheKey = (x5c as string[]).join('.');
    const cached = this.chains.get(cacheKey);
    if (cached) return cached;
    const result = this.checkChain(x5c as string[]);
    if (this.chains.size >= MAX_CHAIN_CACHE) this.chains.clear();
    this.chains.set(cacheKey, result);
    return result;
  }

  private checkChain(x5c: string[]): ChainResult {
    let leaf: crypto.X509Certificate;
    let given: crypto.X509Certificate[];
    try {
      leaf = new crypto.X509Certificate(Buffer.from(x5c[0]!, 'base64'));
      given = x5c.slice(1).map((c) => new crypto.X509Certificate(Buffer.from(c, 'base64')));
    } catch {
      return { ok: false, why: 'a certificate does not parse' };
    }
    if (leaf.ca) return { ok: false, why: 'the leaf is a CA certificate' };
    const candidates = given.length ? given : [...this.roots.values()];
    for (const issuer of candidates) {
      const fp = fingerprintOf(Buffer.from(issuer.raw));
      const trusted = this.roots.get(fp);
      if (!trusted || !trusted.ca) continue;
      if (!leaf.checkIssued(trusted) || !leaf.verify(trusted.publicKey)) continue;
      return {
        ok: true,
        publicKey: leaf.publicKey,
        notBefore: new Date(leaf.validFrom).getTime(),
        notAfter: new Date(leaf.validTo).getTime(),
        fingerprint: fingerprintOf(Buffer.from(leaf.raw)),
        subject: leaf.subject,
      };
    }
    return { ok: false, why: 'the chain does not lead to the hub licence root' };
  }

  /** The JWKS entries: every licence signing key with its chain (x5c leaf first), revoked ones left out. */
  jwks(now = Date.now()): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const s of this.signers.values()) {
      if (s.revokedAt && s.revokedAt.getTime() <= now) continue;
      const root = this.rootB64.get(s.caId);
      if (!root) continue;
      out.push({ ...s.publicJwk, x5c: [s.certificate, root], purpose: 'licence' });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.unlisten?.();
  }
}
