import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { and, desc, eq, ne, sql } from 'drizzle-orm';
import { notFound } from '../core/errors.ts';
import { advisoryXactLock, type Db } from '../db/index.ts';
import { signCompactJws } from './jws.ts';
import type { LicencePki } from './pki.ts';
import { licences, licenceStatusLists, type LicenceStatus } from './schema.ts';

/**
 * Two status-list worlds from one state (the licence rows' status):
 * - W3C Bitstring Status List (for the VC-JOSE credential): GZIP, most significant bit first, multibase `u`
 *   base64url; one list per purpose (revocation, suspension), 1 bit per entry.
 * - IETF Token Status List (for the SD-JWT VC): zlib, least significant bit first, 2 bits per entry
 *   (0 VALID, 1 INVALID, 2 SUSPENDED), served as `application/statuslist+jwt`.
 */
export const STATUS_LIST_SIZE = 131_072; // the W3C minimum (16 KB), so a list hides which entry is whose
export const TOKEN_STATUS = { VALID: 0, INVALID: 1, SUSPENDED: 2 } as const;

export type StatusPurpose = 'revocation' | 'suspension';

export function tokenStatusOf(status: LicenceStatus): number {
  if (status === 'VALID') return TOKEN_STATUS.VALID;
  if (status === 'SUSPENDED') return TOKEN_STATUS.SUSPENDED;
  return TOKEN_STATUS.INVALID;
}

export function statusListUri(issuer: string, id: number, purpose?: StatusPurpose): string {
  return `${issuer}/status-lists/${id}${purpose === 'suspension' ? '?purpose=suspension' : ''}`;
}

/** Round tables of a seed: 4 rounds × 512 random 9-bit values, drawn once from HMAC-SHA256 of the seed. */
const roundTables = new Map<string, Uint16Array>();

function tablesOf(seed: string): Uint16Array {
  let t = roundTables.get(seed);
  if (!t) {
    t = new Uint16Array(4 * 512);
    const key = Buffer.from(seed, 'hex');
    for (let block = 0; block < (4 * 512 * 2) / 32; block++) {
      const h = crypto.createHmac('sha256', key).update(`feistel-${block}`).digest();
      for (let j = 0; j < 16; j++) t[block * 16 + j] = ((h[2 * j]! << 8) | h[2 * j + 1]!) & 0x1ff;
    }
    if (roundTables.size > 64) roundTables.clear();
    roundTables.set(seed, t);
  }
  return t;
}

/**
 * A fixed random permutation of [0, size): a 4-round Feistel network on 18 bits whose round functions are random
 * tables keyed by the list's seed, with cycle-walking into the range. Counter n of a list always maps to the same
 * index, and no two counters collide.
 */
export function permutedIndex(seed: string, n: number, size = STATUS_LIST_SIZE): number {
  const t = tablesOf(seed);
  let x = n;
  do {
    let l = x >>> 9;
    let r = x & 0x1ff;
    for (let round = 0; round < 4; round++) {
      const next = l ^ t[round * 512 + r]!;
      l = r;
      r = next;
    }
    x = (l << 9) | r;
  } while (x >= size);
  return x;
}

export interface StatusSlot {
  list: number;
  index: number;
}

/**
 * Takes n slots in its own short statement (outside the issuing transaction, so issuers do not queue on the list
 * row while they sign): a slot taken by an issuance that then fails stays unused, which is harmless.
 */
export async function allocateStatusSlots(db: Db, n: number): Promise<StatusSlot[]> {
  const out: StatusSlot[] = [];
  while (out.length < n) {
    const want = n - out.length;
    const [list] = await db.select().from(licenceStatusLists).orderBy(desc(licenceStatusLists.id)).limit(1);
    if (list) {
      const take = Math.min(want, list.size - list.allocated);
      if (take > 0) {
        const [r] = await db
          .update(licenceStatusLists)
          .set({ allocated: sql`${licenceStatusLists.allocated} + ${take}` })
          .where(and(eq(licenceStatusLists.id, list.id), sql`${licenceStatusLists.allocated} + ${take} <= ${licenceStatusLists.size}`))
          .returning({ allocated: licenceStatusLists.allocated });
        if (r) {
          for (let c = r.allocated - take; c < r.allocated; c++) out.push({ list: list.id, index: permutedIndex(list.seed, c, list.size) });
          continue;
        }
        continue; // another process took them first: look again
      }
    }
    await db.transaction(async (tx) => {
      await advisoryXactLock(tx, 'licence:status-lists');
      const [latest] = await tx.select().from(licenceStatusLists).orderBy(desc(licenceStatusLists.id)).limit(1);
      if (latest && latest.id !== list?.id) return; // someone made a new one meanwhile
      if (latest && latest.allocated < latest.size) return;
      await tx.insert(licenceStatusLists).values({ id: (latest?.id ?? 0) + 1, size: STATUS_LIST_SIZE, seed: crypto.randomBytes(16).toString('hex') });
    });
  }
  return out;
}

/** Called in the transaction of every status change: the rendered lists are named by the version. */
export async function bumpStatusList(tx: Db, list: number): Promise<void> {
  await tx.update(licenceStatusLists).set({ version: sql`${licenceStatusLists.version} + 1`, updatedAt: sql`now()` }).where(eq(licenceStatusLists.id, list));
}

/** MSB-first bitstring (W3C), 1 bit per entry. */
export function w3cBitstring(size: number, set: Iterable<number>): Buffer {
  const bytes = Buffer.alloc(size / 8);
  for (const i of set) bytes[i >> 3]! |= 0x80 >> (i & 7);
  return bytes;
}

/** LSB-first 2-bit list (IETF Token Status List). */
export function tokenStatusBytes(size: number, entries: Iterable<[number, number]>): Buffer {
  const bytes = Buffer.alloc(size / 4);
  for (const [i, v] of entries) bytes[i >> 2]! |= (v & 3) << ((i & 3) * 2);
  return bytes;
}

export type StatusListFormat = 'vc+jwt' | 'statuslist+jwt';

export interface RenderedStatusList {
  body: string;
  contentType: string;
  etag: string;
  version: number;
}

const RENDER_TTL_MS = 60 * 60 * 1000;
const TOKEN_TTL_S = 300;

/**
 * Renders a list in one format from the licences' current statuses, signed by the hub's status key. Renderings are
 * remembered per list version (a status change bumps it), and re-signed hourly so `exp` never runs out.
 */
export class StatusListService {
  private rendered = new Map<string, { at: number; r: RenderedStatusList }>();

  constructor(
    private readonly db: Db,
    private readonly pki: LicencePki,
    private readonly issuer: string,
  ) {}

  async render(id: number, format: StatusListFormat, purpose: StatusPurpose = 'revocation'): Promise<RenderedStatusList> {
    const [list] = await this.db.select().from(licenceStatusLists).where(eq(licenceStatusLists.id, id));
    if (!list) throw notFound(`status list ${id}`);
    const key = `${id}:${format}:${format === 'vc+jwt' ? purpose : ''}`;
    const hit = this.rendered.get(key);
    if (hit && hit.r.version === list.version && Date.now() - hit.at < RENDER_TTL_MS) return hit.r;
    const rows = await this.db
      .select({ index: licences.statusIndex, status: licences.status })
      .from(licences)
      .where(and(eq(licences.statusList, id), ne(licences.status, 'VALID')));
    const signer = await this.pki.statusSigningKey();
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'ES256', kid: signer.kid, x5c: signer.x5c };
    let body: string;
    let contentType: string;
    if (format === 'statuslist+jwt') {
      const lst = zlib.deflateSync(tokenStatusBytes(list.size, rows.map((r) => [r.index, tokenStatusOf(r.status)] as [number, number])), { level: 9 }).toString('base64url');
      body = signCompactJws({ ...header, typ: 'statuslist+jwt' }, { sub: statusListUri(this.issuer, id), iss: this.issuer, iat: now, exp: now + 24 * 3600, ttl: TOKEN_TTL_S, status_list: { bits: 2, lst } }, signer.privateKey);
      contentType = 'application/statuslist+jwt';
    } else {
      const bits = rows.filter((r) => (purpose === 'suspension' ? r.status === 'SUSPENDED' : tokenStatusOf(r.status) === TOKEN_STATUS.INVALID)).map((r) => r.index);
      const encodedList = `u${zlib.gzipSync(w3cBitstring(list.size, bits), { level: 9 }).toString('base64url')}`;
      const uri = statusListUri(this.issuer, id, purpose);
      body = signCompactJws(
        { ...header, typ: 'vc+jwt' },
        {
          '@context': ['https://www.w3.org/ns/credentials/v2'],
          id: uri,
          type: ['VerifiableCredential', 'BitstringStatusListCredential'],
          issuer: this.issuer,
          validFrom: new Date(now * 1000).toISOString(),
          validUntil: new Date((now + 24 * 3600) * 1000).toISOString(),
          credentialSubject: { id: `${uri}#list`, type: 'BitstringStatusList', statusPurpose: purpose, encodedList },
        },
        signer.privateKey,
      );
      contentType = 'application/vc+jwt';
    }
    const r = { body, contentType, etag: `"sl-${id}-${list.version}-${format === 'vc+jwt' ? purpose : 'token'}-${now}"`, version: list.version };
    this.rendered.set(key, { at: Date.now(), r });
    return r;
  }
}
