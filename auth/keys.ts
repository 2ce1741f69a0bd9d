import crypto, { type KeyObject } from 'node:crypto';
import { recordAct } from '../audit/acts.ts';
import { and, asc, eq, gt, isNull, or, sql } from 'drizzle-orm';
import { CLI_ACTOR, type Actor } from '../core/context.ts';
import { HubError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { advisoryXactLock, notify, type Database, type Db } from '../db/index.ts';
import { seal, unseal } from './master-key.ts';
import { HUB_KEY_PURPOSES, hubKeys, type HubKeyPurpose } from './schema.ts';

export const KEYS_CHANNEL = 'hub_keys';

/** How long a superseded key keeps verifying, per purpose: what it signed must stay checkable. */
const GRACE_SECONDS: Record<HubKeyPurpose, number | null> = {
  token: 10 * 60 + 60, // access-token lifetime + clock skew
  audit: null, // checkpoints are verified for as long as the log is kept
  receipt: null, // receipts are archived in case files
};

const ALG = 'ES256';

function newKid(purpose: HubKeyPurpose): string {
  return `hub-${purpose}-${new Date().toISOString().slice(0, 10).replace(/-/g, '')}-${crypto.randomBytes(4).toString('hex')}`;
}

async function insertKey(tx: Db, masterKey: Buffer, purpose: HubKeyPurpose): Promise<string> {
  const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = newKid(purpose);
  const publicJwk = { ...publicKey.export({ format: 'jwk' }), kid, alg: ALG, use: 'sig' };
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  await tx.insert(hubKeys).values({ kid, purpose, alg: ALG, publicJwk, privateEnc: seal(masterKey, pem, `hub_keys:${kid}`) });
  return kid;
}

/** Creates a signing key for every purpose that has none. Safe when N processes start at once. */
export async function ensureHubKeys(db: Db, masterKey: Buffer): Promise<string[]> {
  return db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'hub:keys');
    const created: string[] = [];
    for (const purpose of HUB_KEY_PURPOSES) {
      const [active] = await tx
        .select({ kid: hubKeys.kid })
        .from(hubKeys)
        .where(and(eq(hubKeys.purpose, purpose), isNull(hubKeys.supersededAt), isNull(hubKeys.verifyUntil)))
        .limit(1);
      if (!active) created.push(await insertKey(tx, masterKey, purpose));
    }
    if (created.length) await notify(tx, KEYS_CHANNEL, 'created');
    return created;
  });
}

/**
 * 轮换: a new key takes over signing; the previous ones keep verifying for their purpose's grace period (tokens), or
 * for good (audit checkpoints, receipts), and stay in the JWKS until then.
 */
export async function rotateHubKey(db: Db, masterKey: Buffer, purpose: HubKeyPurpose, actor: Actor = CLI_ACTOR): Promise<{ kid: string; superseded: string[] }> {
  return db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'hub:keys');
    const grace = GRACE_SECONDS[purpose];
    const superseded = await tx
      .update(hubKeys)
      .set({
        supersededAt: sql`now()`,
        verifyUntil: grace === null ? null : sql`now() + make_interval(secs => ${grace})`,
      })
      .where(and(eq(hubKeys.purpose, purpose), isNull(hubKeys.supersededAt)))
      .returning({ kid: hubKeys.kid });
    const kid = await insertKey(tx, masterKey, purpose);
    await recordAct(tx, actor, 'HUB_KEY_ROTATE', { details: { purpose, kid, superseded: superseded.map((r) => r.kid) } });
    await notify(tx, KEYS_CHANNEL, 'rotated');
    return { kid, superseded: superseded.map((r) => r.kid) };
  });
}

/** Ends a key at once (after a compromise): it verifies nothing more and leaves the JWKS. */
export async function retireHubKey(db: Db, kid: string, actor: Actor = CLI_ACTOR): Promise<void> {
  await db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'hub:keys');
    const [row] = await tx.select().from(hubKeys).where(eq(hubKeys.kid, kid));
    if (!row) throw new HubError('NOT_FOUND', `hub key ${kid} not found`);
    if (!row.supersededAt) {
      throw new HubError('CONFLICT', `hub key ${kid} is the active ${row.purpose} key; rotate first, then retire it`);
    }
    await tx.update(hubKeys).set({ verifyUntil: sql`now()` }).where(eq(hubKeys.kid, kid));
    // kids and purposes only, never key material
    await recordAct(tx, actor, 'HUB_KEY_RETIRE', { details: { purpose: row.purpose, kid } });
    await notify(tx, KEYS_CHANNEL, 'retired');
  });
}

export interface HubKeyInfo {
  kid: string;
  purpose: HubKeyPurpose;
  alg: string;
  createdAt: Date;
  supersededAt: Date | null;
  verifyUntil: Date | null;
}

export async function listHubKeys(db: Db): Promise<HubKeyInfo[]> {
  return db
    .select({
      kid: hubKeys.kid,
      purpose: hubKeys.purpose,
      alg: hubKeys.alg,
      createdAt: hubKeys.createdAt,
      supersededAt: hubKeys.supersededAt,
      verifyUntil: hubKeys.verifyUntil,
    })
    .from(hubKeys)
    .orderBy(asc(hubKeys.purpose), asc(hubKeys.createdAt));
}

interface LoadedKey {
  kid: string;
  purpose: HubKeyPurpose;
  alg: string;
  publicJwk: Record<string, unknown>;
  publicKey: KeyObject;
  /** ms since epoch; Infinity when open-ended */
  verifyUntil: number;
  superseded: boolean;
  sealed: string;
  privateKey?: KeyObject;
}

export interface Signer {
  kid: string;
  alg: string;
  privateKey: KeyObject;
}

/**
 * The hub's keys in memory: parsed once, refreshed when any process changes them (NOTIFY), and re-read when an
 * unknown kid shows up (at most once a second), so N gateways agree within moments of a rotation or retirement.
 * Expiry needs no refresh: verifyUntil is checked on every use.
 */
export class KeyRing {
  private keys = new Map<string, LoadedKey>();
  private lastMissReload = 0;
  private unlisten: (() => Promise<void>) | undefined;

  private constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
    private readonly logger?: Logger,
  ) {}

  static async open(database: Database, masterKey: Buffer, logger?: Logger): Promise<KeyRing> {
    const ring = new KeyRing(database.db, masterKey, logger);
    await ring.reload();
    ring.unlisten = await database.listen(KEYS_CHANNEL, () => {
      ring.reload().catch((err: unknown) => ring.logger?.error({ err }, 'reloading hub keys failed'));
    });
    return ring;
  }

  async reload(): Promise<void> {
    const rows = await this.db
      .select()
      .from(hubKeys)
      .where(or(isNull(hubKeys.verifyUntil), gt(hubKeys.verifyUntil, sql`now()`)));
    const next = new Map<string, LoadedKey>();
    for (const r of rows) {
      const previous = this.keys.get(r.kid);
      next.set(r.kid, {
        kid: r.kid,
        purpose: r.purpose,
        alg: r.alg,
        publicJwk: r.publicJwk,
        publicKey: previous?.publicKey ?? crypto.createPublicKey({ key: r.publicJwk as crypto.JsonWebKey, format: 'jwk' }),
        verifyUntil: r.verifyUntil ? r.verifyUntil.getTime() : Number.POSITIVE_INFINITY,
        superseded: r.supersededAt !== null,
        sealed: r.privateEnc,
        ...(previous?.privateKey ? { privateKey: previous.privateKey } : {}),
      });
    }
    this.keys = next;
  }

  /** The key that signs for a purpose now: the newest one not superseded. */
  signer(purpose: HubKeyPurpose): Signer {
    let best: LoadedKey | undefined;
    for (const k of this.keys.values()) {
      if (k.purpose === purpose && !k.superseded) best = k;
    }
    if (!best) throw new HubError('NOT_FOUND', `no active ${purpose} key; run hub migrate and start the hub once`);
    best.privateKey ??= crypto.createPrivateKey(unseal(this.masterKey, best.sealed, `hub_keys:${best.kid}`));
    return { kid: best.kid, alg: best.alg, privateKey: best.privateKey };
  }

  /** The public key for a kid of a purpose, if it may still verify at `now`. */
  verificationKey(kid: string, purpose: HubKeyPurpose, now = Date.now()): KeyObject | undefined {
    const k = this.keys.get(kid);
    if (!k || k.purpose !== purpose || now >= k.verifyUntil) return undefined;
    return k.publicKey;
  }

  /** Like verificationKey, but re-reads the database once when the kid is unknown (another process rotated). */
  async verificationKeyFresh(kid: string, purpose: HubKeyPurpose): Promise<KeyObject | undefined> {
    const found = this.verificationKey(kid, purpose);
    if (found || this.keys.has(kid)) return found;
    const now = Date.now();
    if (now - this.lastMissReload < 1000) return undefined;
    this.lastMissReload = now;
    await this.reload();
    return this.verificationKey(kid, purpose);
  }

  /** The public JWKS: every key that may still verify something. */
  jwks(now = Date.now()): { keys: Record<string, unknown>[] } {
    return {
      keys: [...this.keys.values()].filter((k) => now < k.verifyUntil).map((k) => k.publicJwk),
    };
  }

  async close(): Promise<void> {
    await this.unlisten?.();
  }
}

/** The public key of a hub audit key by kid, from the database (for `hub audit verify`). */
export async function auditPublicKey(db: Db, kid: string): Promise<KeyObject | undefined> {
  const [row] = await db.select({ jwk: hubKeys.publicJwk, purpose: hubKeys.purpose }).from(hubKeys).where(eq(hubKeys.kid, kid));
  if (!row || row.purpose !== 'audit') return undefined;
  return crypto.createPublicKey({ key: row.jwk as crypto.JsonWebKey, format: 'jwk' });
}
