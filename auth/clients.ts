import crypto, { type KeyObject } from 'node:crypto';
import { recordAct } from '../audit/acts.ts';
import { and, asc, eq, isNull, sql } from 'drizzle-orm';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { CLI_ACTOR, type Actor } from '../core/context.ts';
import { badInput, HubError, notFound } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { notify, type Database, type Db } from '../db/index.ts';
import { departments } from '../directory/schema.ts';
import { CLIENT_ROLES, clientKeys, clients, type ClientRole } from './schema.ts';

export const CLIENTS_CHANNEL = 'hub_clients';

/** Client key algorithms the token endpoint accepts (API-CONTRACT.md). */
export const CLIENT_KEY_ALGS = ['ES256', 'EdDSA', 'Ed25519'] as const;

export interface ClientRecord {
  clientId: string;
  name: string;
  department: string;
  roles: ClientRole[];
  permissions: string[];
  status: 'active' | 'disabled';
  createdAt: Date;
  disabledAt: Date | null;
  keys: { kid: string; alg: string | undefined; createdAt: Date; revokedAt: Date | null }[];
}

/** Checks a client's public key: EC P-256 or OKP Ed25519, and no private part. Returns it with its kid. */
export async function normalisePublicJwk(input: unknown): Promise<{ kid: string; jwk: Record<string, unknown> }> {
  if (!input || typeof input !== 'object') throw badInput('jwk', 'the key must be a JWK object');
  const jwk = input as Record<string, unknown>;
  if ('d' in jwk || 'k' in jwk) throw badInput('jwk', 'register the public key only: the JWK has a private or secret part');
  let publicJwk: Record<string, unknown>;
  if (jwk.kty === 'EC' && jwk.crv === 'P-256' && typeof jwk.x === 'string' && typeof jwk.y === 'string') {
    publicJwk = { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, alg: 'ES256' };
  } else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' && typeof jwk.x === 'string') {
    publicJwk = { kty: 'OKP', crv: 'Ed25519', x: jwk.x, alg: jwk.alg === 'Ed25519' ? 'Ed25519' : 'EdDSA' };
  } else {
    throw badInput('jwk', 'the key must be an EC P-256 (ES256) or OKP Ed25519 (EdDSA) public JWK');
  }
  try {
    crypto.createPublicKey({ key: publicJwk as crypto.JsonWebKey, format: 'jwk' });
  } catch (error) {
    throw new HubError('BAD_USER_INPUT', 'the JWK is not a valid public key', { field: 'jwk' }, { cause: error });
  }
  const kid = typeof jwk.kid === 'string' && jwk.kid ? jwk.kid : await calculateJwkThumbprint(publicJwk as JWK);
  return { kid, jwk: { ...publicJwk, kid } };
}

export function parseRoles(roles: readonly string[]): ClientRole[] {
  const unique = [...new Set(roles.map((r) => r.trim()).filter(Boolean))];
  if (unique.length === 0) throw badInput('roles', `give at least one role of ${CLIENT_ROLES.join(', ')}`);
  for (const r of unique) {
    if (!(CLIENT_ROLES as readonly string[]).includes(r)) throw badInput('roles', `unknown role "${r}"; roles are ${CLIENT_ROLES.join(', ')}`);
  }
  return unique as ClientRole[];
}

export interface CreateClientInput {
  name: string;
  department: string;
  roles: readonly string[];
  jwk: unknown;
  /** A chosen id (seeds); otherwise one is generated. */
  clientId?: string;
  /** 'withhold': may record reads hidden from the holder's own view, with their legal basis */
  permissions?: readonly string[];
}

export const CLIENT_PERMISSIONS = ['withhold'] as const;

/**
 * The audit entry of an act on a client, in the act's transaction. These acts run from the command line (no
 * principal: the actor is 'hub-cli') or for an admin; the entry names the client acted on and its key ids, never
 * key material.
 */
async function auditClientAct(tx: Db, actor: Actor, operation: string, clientId: string, extra: { reason?: string | null; details?: Record<string, unknown> } = {}): Promise<void> {
  await recordAct(tx, actor, operation, { reason: extra.reason ?? null, details: { client: clientId, ...extra.details } });
}

/** Registers a client system with its first public key. */
export async function createClient(db: Db, input: CreateClientInput, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  const name = input.name.trim();
  if (!name) throw badInput('name', 'a client needs a name');
  const roles = parseRoles(input.roles);
  const key = await normalisePublicJwk(input.jwk);
  const clientId = input.clientId ?? `hub-${crypto.randomBytes(8).toString('hex')}`;
  const permissions = [...new Set(input.permissions ?? [])];
  for (const p of permissions) {
    if (!(CLIENT_PERMISSIONS as readonly string[]).includes(p)) throw badInput('permissions', `unknown permission "${p}"; permissions are ${CLIENT_PERMISSIONS.join(', ')}`);
  }
  if (!/^[A-Za-z0-9._-]{3,64}$/.test(clientId)) throw badInput('clientId', 'a client id is 3–64 letters, digits, dot, dash or underscore');
  await db.transaction(async (tx) => {
    const [dept] = await tx.select({ code: departments.code }).from(departments).where(eq(departments.code, input.department));
    if (!dept) throw badInput('department', `department ${input.department} is not registered (hub departments create)`);
    const inserted = await tx
      .insert(clients)
      .values({ clientId, name, departmentCode: input.department, roles, permissions })
      .onConflictDoNothing()
      .returning({ clientId: clients.clientId });
    if (inserted.length === 0) throw new HubError('CONFLICT', `client ${clientId} already exists`);
    await tx.insert(clientKeys).values({ clientId, kid: key.kid, jwk: key.jwk });
    await auditClientAct(tx, actor, 'CLIENT_CREATE', clientId, { details: { name, department: input.department, roles, permissions, kid: key.kid } });
    await notify(tx, CLIENTS_CHANNEL, clientId);
  });
  return (await getClient(db, clientId))!;
}

export async function getClient(db: Db, clientId: string): Promise<ClientRecord | undefined> {
  const [c] = await db.select().from(clients).where(eq(clients.clientId, clientId));
  if (!c) return undefined;
  const keys = await db.select().from(clientKeys).where(eq(clientKeys.clientId, clientId)).orderBy(asc(clientKeys.createdAt));
  return toRecord(c, keys);
}

export async function listClients(db: Db, filter: { department?: string } = {}): Promise<ClientRecord[]> {
  const cs = await db
    .select()
    .from(clients)
    .where(filter.department ? eq(clients.departmentCode, filter.department) : undefined)
    .orderBy(asc(clients.createdAt), asc(clients.clientId));
  const keys = await db.select().from(clientKeys).orderBy(asc(clientKeys.createdAt));
  return cs.map((c) => toRecord(c, keys.filter((k) => k.clientId === c.clientId)));
}

function toRecord(c: typeof clients.$inferSelect, keys: (typeof clientKeys.$inferSelect)[]): ClientRecord {
  return {
    clientId: c.clientId,
    name: c.name,
    department: c.departmentCode,
    roles: c.roles as ClientRole[],
    permissions: c.permissions,
    status: c.status,
    createdAt: c.createdAt,
    disabledAt: c.disabledAt,
    keys: keys.map((k) => ({ kid: k.kid, alg: k.jwk.alg as string | undefined, createdAt: k.createdAt, revokedAt: k.revokedAt })),
  };
}

async function changed(tx: Db, clientId: string): Promise<void> {
  await tx.update(clients).set({ updatedAt: sql`now()` }).where(eq(clients.clientId, clientId));
  await notify(tx, CLIENTS_CHANNEL, clientId);
}

/** Disables a client: its assertions and the access tokens it already holds are refused from now on. */
export async function disableClient(db: Db, clientId: string, reason: string, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  await db.transaction(async (tx) => {
    const r = await tx
      .update(clients)
      .set({ status: 'disabled', disabledAt: sql`now()`, disabledReason: reason })
      .where(eq(clients.clientId, clientId))
      .returning({ clientId: clients.clientId });
    if (r.length === 0) throw notFound(`client ${clientId}`);
    await auditClientAct(tx, actor, 'CLIENT_DISABLE', clientId, { reason });
    await changed(tx, clientId);
  });
  return (await getClient(db, clientId))!;
}

export async function enableClient(db: Db, clientId: string, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  await db.transaction(async (tx) => {
    const r = await tx
      .update(clients)
      .set({ status: 'active', disabledAt: null, disabledReason: null })
      .where(eq(clients.clientId, clientId))
      .returning({ clientId: clients.clientId });
    if (r.length === 0) throw notFound(`client ${clientId}`);
    await auditClientAct(tx, actor, 'CLIENT_ENABLE', clientId);
    await changed(tx, clientId);
  });
  return (await getClient(db, clientId))!;
}

/**
 * Adds a public key; with `replace`, the client's other keys are revoked in the same transaction (key
 * replacement). Without it both keys work, so a client can roll its key over without downtime.
 */
export async function addClientKey(db: Db, clientId: string, jwk: unknown, options: { replace?: boolean } = {}, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  return putClientKey(db, clientId, jwk, Boolean(options.replace), 'CLIENT_ADD_KEY', actor);
}

/**
 * `hub clients rotate-key`: a key the hub made takes over; the old keys are revoked unless `keepOld` (revoke them
 * later, once the client system uses the new one).
 */
export async function rotateClientKey(db: Db, clientId: string, jwk: unknown, options: { keepOld?: boolean } = {}, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  return putClientKey(db, clientId, jwk, !options.keepOld, 'CLIENT_ROTATE_KEY', actor);
}

async function putClientKey(db: Db, clientId: string, jwk: unknown, replace: boolean, operation: 'CLIENT_ADD_KEY' | 'CLIENT_ROTATE_KEY', actor: Actor): Promise<ClientRecord> {
  const key = await normalisePublicJwk(jwk);
  await db.transaction(async (tx) => {
    const [c] = await tx.select({ clientId: clients.clientId }).from(clients).where(eq(clients.clientId, clientId));
    if (!c) throw notFound(`client ${clientId}`);
    const revoked = replace
      ? await tx
          .update(clientKeys)
          .set({ revokedAt: sql`now()` })
          .where(and(eq(clientKeys.clientId, clientId), isNull(clientKeys.revokedAt)))
          .returning({ kid: clientKeys.kid })
      : [];
    const inserted = await tx.insert(clientKeys).values({ clientId, kid: key.kid, jwk: key.jwk }).onConflictDoNothing().returning();
    if (inserted.length === 0) throw new HubError('CONFLICT', `client ${clientId} already has a key with kid ${key.kid}`);
    await auditClientAct(tx, actor, operation, clientId, { details: { kid: key.kid, revoked: revoked.map((k) => k.kid) } });
    await changed(tx, clientId);
  });
  return (await getClient(db, clientId))!;
}

export async function revokeClientKey(db: Db, clientId: string, kid: string, actor: Actor = CLI_ACTOR): Promise<ClientRecord> {
  await db.transaction(async (tx) => {
    const r = await tx
      .update(clientKeys)
      .set({ revokedAt: sql`now()` })
      .where(and(eq(clientKeys.clientId, clientId), eq(clientKeys.kid, kid), isNull(clientKeys.revokedAt)))
      .returning();
    if (r.length === 0) throw notFound(`active key ${kid} of client ${clientId}`);
    await auditClientAct(tx, actor, 'CLIENT_REVOKE_KEY', clientId, { details: { kid } });
    await changed(tx, clientId);
  });
  return (await getClient(db, clientId))!;
}

export interface CachedClient {
  clientId: string;
  name: string;
  department: string;
  roles: ClientRole[];
  permissions: string[];
  active: boolean;
  keys: { kid: string; alg: string; key: KeyObject }[];
}

/**
 * Clients in memory for the hot path (token endpoint and every Bearer check). An entry is dropped the moment any
 * process changes that client (NOTIFY), so disabling a client or revoking a key takes effect at once everywhere.
 */
export class ClientCache {
  private entries = new Map<string, Promise<CachedClient | null>>();
  private unlisten: (() => Promise<void>) | undefined;

  private constructor(private readonly db: Db) {}

  static async open(database: Database, logger?: Logger): Promise<ClientCache> {
    const cache = new ClientCache(database.db);
    cache.unlisten = await database.listen(CLIENTS_CHANNEL, (clientId) => {
      logger?.debug({ clientId }, 'client changed');
      cache.entries.delete(clientId);
    });
    return cache;
  }

  get(clientId: string): Promise<CachedClient | null> {
    let entry = this.entries.get(clientId);
    if (!entry) {
      entry = this.load(clientId);
      this.entries.set(clientId, entry);
      // Unknown ids are not remembered: a flood of made-up ids must not grow the cache.
      entry.then(
        (c) => c === null && this.entries.delete(clientId),
        () => this.entries.delete(clientId),
      );
    }
    return entry;
  }

  private async load(clientId: string): Promise<CachedClient | null> {
    const [c] = await this.db.select().from(clients).where(eq(clients.clientId, clientId));
    if (!c) return null;
    const keys = await this.db
      .select()
      .from(clientKeys)
      .where(and(eq(clientKeys.clientId, clientId), isNull(clientKeys.revokedAt)));
    return {
      clientId: c.clientId,
      name: c.name,
      department: c.departmentCode,
      roles: c.roles as ClientRole[],
      permissions: c.permissions,
      active: c.status === 'active',
      keys: keys.map((k) => ({
        kid: k.kid,
        alg: String(k.jwk.alg),
        key: crypto.createPublicKey({ key: k.jwk as crypto.JsonWebKey, format: 'jwk' }),
      })),
    };
  }

  async close(): Promise<void> {
    await this.unlisten?.();
  }
}
