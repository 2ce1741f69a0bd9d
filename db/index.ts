import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql, type SQL } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import type { Pool, PoolClient } from 'pg';
import type { Logger } from '../core/logger.ts';
import { acquireDataDirLock, secureDataDir, type DataDirLock } from './lock.ts';
import * as schema from './schema.ts';

export { schema };
export type Schema = typeof schema;

/** The one database handle type: the same for node-postgres and PGlite, and for a transaction of either. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;

export const MIGRATIONS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'migrations');

export interface Database {
  db: Db;
  driver: 'pg' | 'pglite';
  /** The connection URL (pg only), for work that needs its own session, such as migrations. */
  url?: string;
  /** PGlite: whether the session should work as hub_app (migrations step out of it and back). */
  appRole?: boolean;
  /**
   * Runs `fn` on one dedicated connection (pg) — for session-level advisory locks, which die with the connection
   * when a process is killed. PGlite has a single session; callers guard re-entry within the process themselves.
   */
  session<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /** Subscribes to a NOTIFY channel; the returned function unsubscribes. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  /** For the embedded driver: the directory, or 'memory://' for a throw-away database. */
  dataDir?: string;
  poolSize?: number;
  logger?: Logger;
  /**
   * Work as the role `hub_app`, which owns nothing and may not UPDATE, DELETE or TRUNCATE the audit log or the base
   * data history. Every hub process does; migrations and administrative tools connect as the owner.
   */
  appRole?: boolean;
}

export const APP_ROLE = 'hub_app';

/**
 * Opens PostgreSQL through node-postgres when a URL is given, else embedded PGlite in dataDir (locked, so a second
 * process is refused rather than silently diverging).
 */
export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl, options.poolSize ?? 20, options.logger, Boolean(options.appRole));
  return openPglite(options.dataDir ?? '.hub', Boolean(options.appRole));
}

/** int8 as a JS number (ids and counts stay far below 2^53), numeric as string: the same from both drivers. */
const INT8 = 20;
/** bytea as a Buffer from both (PGlite would give a bare Uint8Array). */
const BYTEA = 17;
const parseBytea = (v: string) => Buffer.from(v.startsWith('\\x') ? v.slice(2) : v, 'hex');

async function openPostgres(url: string, poolSize: number, logger: Logger | undefined, appRole: boolean): Promise<Database> {
  const pg = (await import('pg')).default;
  const { drizzle } = await import('drizzle-orm/node-postgres');
  pg.types.setTypeParser(INT8, (v: string) => Number(v));
  // The role is a startup parameter, so no connection of the pool ever works as the owner.
  const pool = new pg.Pool({ connectionString: url, max: poolSize, application_name: 'hub', ...(appRole ? { options: `-c role=${APP_ROLE}` } : {}) });
  pool.on('error', (err) => logger?.error({ err }, 'idle database connection failed'));
  const db = drizzle(pool, { schema }) as unknown as Db;
  const listeners = new Map<string, Set<(p: string) => void>>();
  let listenClient: PoolClient | undefined;

  return {
    db,
    driver: 'pg',
    url,
    async session(fn) {
      const client = await pool.connect();
      try {
        return await fn(drizzle(client, { schema }) as unknown as Db);
      } finally {
        client.release();
      }
    },
    async listen(channel, onPayload) {
      if (!listenClient) {
        listenClient = await pool.connect();
        listenClient.on('notification', (msg) => {
          for (const cb of listeners.get(msg.channel) ?? []) cb(msg.payload ?? '');
        });
      }
      let set = listeners.get(channel);
      if (!set) {
        set = new Set();
        listeners.set(channel, set);
        await listenClient.query(`LISTEN "${channel.replace(/"/g, '')}"`);
      }
      set.add(onPayload);
      return async () => {
        set.delete(onPayload);
      };
    },
    async close() {
      listenClient?.release();
      listenClient = undefined;
      await pool.end();
    },
  };
}

async function openPglite(dataDir: string, appRole: boolean): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const { drizzle } = await import('drizzle-orm/pglite');
  const memory = dataDir.startsWith('memory://');
  let lock: DataDirLock | undefined;
  if (!memory) {
    // owner only, before PGlite writes anything (and an older directory put right)
    secureDataDir(dataDir);
    lock = acquireDataDirLock(dataDir);
  }
  try {
    const client = await PGlite.create(memory ? undefined : path.join(dataDir, 'pgdata'), {
      extensions: { pg_trgm },
      parsers: { [INT8]: (v: string) => Number(v), [BYTEA]: parseBytea },
    });
    // a fresh database is unpacked with modes of its own (0666 files), whatever the umask: put right once more
    if (!memory) secureDataDir(dataDir);
    const db = drizzle(client, { schema }) as unknown as Db;
    const database: Database = {
      db,
      driver: 'pglite',
      appRole,
      session: (fn) => fn(db),
      async listen(channel, onPayload) {
        const unsub = await client.listen(channel, onPayload);
        return async () => unsub();
      },
      async close() {
        await client.close();
        lock?.release();
      },
    };
    // PGlite has one session: it switches role once the role exists (after the first migration, see migrate.ts).
    if (appRole) await switchToAppRole(database);
    return database;
  } catch (error) {
    lock?.release();
    throw error;
  }
}

/** Rows of a raw SQL statement, the same shape from both drivers. */
export async function rows<T extends Record<string, unknown>>(db: Db, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown as { rows: T[] };
  return result.rows;
}

/**
 * A PostgreSQL array literal (`{"a","b",NULL}`) of texts or numbers, for an `unnest($n::text[])`-style parameter:
 * what the driver would write, without its per-value work (texts quoted, `"` and `\` escaped, null as NULL).
 */
export function arrayLiteral(values: readonly (string | number | null | undefined)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    if (v === null || v === undefined) out += 'NULL';
    else if (typeof v === 'number') out += String(v);
    // indexOf scans a long text (a signed credential) far faster than a regular expression
    else out += v.indexOf('"') < 0 && v.indexOf('\\') < 0 ? `"${v}"` : `"${v.replace(/["\\]/g, '\\$&')}"`;
  }
  return `${out}}`;
}

/** The separator of `separatedList`: ASCII RS, which JSON text, base64url and hex never hold. */
export const LIST_SEPARATOR = '\u001e';

/**
 * Texts as one parameter for `string_to_array($n::text, chr(30))`: for machine-made texts that never hold the
 * separator (JSON, which escapes every control character; signed forms; hex). PostgreSQL splits such a text at a
 * fraction of what its array parser takes for the same values as an array literal (500 signed credentials: 5 ms
 * against 15 ms, most of it the parser walking and unquoting every character), and nothing is escaped here.
 * With `nullAs`, a null is written as that text, for `string_to_array($n::text, chr(30), nullAs)`.
 * Refuses a value that is empty, holds the separator or equals `nullAs`: it would shift or change the values.
 */
export function separatedList(values: readonly (string | null)[], nullAs?: string): string {
  if (nullAs !== undefined && (nullAs.length === 0 || nullAs.includes(LIST_SEPARATOR))) throw new Error('separatedList: nullAs is empty or holds the separator');
  let out = '';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += LIST_SEPARATOR;
    if (v === null || v === undefined) {
      if (nullAs === undefined) throw new Error(`separatedList: value ${i} is null`);
      out += nullAs;
    } else if (v.length === 0 || v === nullAs || v.indexOf(LIST_SEPARATOR) >= 0) throw new Error(`separatedList: value ${i} is empty, the null mark or holds the separator`);
    else out += v;
  }
  return out;
}

/**
 * A hot statement: fixed SQL text with positional parameters ($1, $2 …), a named server-side prepared statement on
 * PostgreSQL (parsed and planned once per pooled connection, and no query builder walked per call), on the pool or
 * on the connection a transaction holds. On PGlite (in process, no round trip to save) it runs as an ordinary
 * parameterised query.
 */
export class Statement<T extends Record<string, unknown>> {
  private readonly pieces: { text: string; param: number }[] = [];
  private readonly tail: string;

  constructor(
    readonly name: string,
    readonly text: string,
  ) {
    const re = /\$(\d+)/g;
    let last = 0;
    for (let m = re.exec(text); m; m = re.exec(text)) {
      this.pieces.push({ text: text.slice(last, m.index), param: Number(m[1]) - 1 });
      last = m.index + m[0].length;
    }
    this.tail = text.slice(last);
  }

  async run(db: Db, values: readonly unknown[]): Promise<T[]> {
    const client = pgPool(db) ?? pgTransactionClient(db);
    if (client) return this.runOn(client, values);
    const chunks: SQL[] = [];
    for (const p of this.pieces) chunks.push(sql.raw(p.text), sql`${sql.param(values[p.param])}`);
    chunks.push(sql.raw(this.tail));
    return rows<T>(db, sql.join(chunks));
  }

  /** On a connection of node-postgres's own (a pooled client holding a transaction), as the named statement. */
  async runOn(client: StatementClient, values: readonly unknown[]): Promise<T[]> {
    return (await client.query({ name: this.name, text: this.text, values })).rows as T[];
  }
}

/**
 * The node-postgres pool behind a handle, or null: on PGlite, and inside a transaction (whose handle holds one
 * pooled client instead, which must carry every statement of it).
 */
export function pgPool(db: Db): Pool | null {
  const client = (db as unknown as { $client?: Partial<Pool> }).$client;
  return client && typeof client.totalCount === 'number' && typeof client.connect === 'function' ? (client as Pool) : null;
}

/**
 * The node-postgres client a transaction (or a dedicated session) of drizzle holds, or null (PGlite, or a pool).
 * Statements run on it by name, so a hot statement inside a transaction is planned once per connection too: run
 * unnamed, its array parameters were folded into the plan as constants and copied, parse and plan, every time.
 */
export function pgTransactionClient(db: Db): PoolClient | null {
  const client = (db as unknown as { session?: { client?: Partial<PoolClient> } }).session?.client;
  return client && typeof client.release === 'function' && typeof client.query === 'function' ? (client as PoolClient) : null;
}

/** What a Statement needs of a node-postgres pool or client. */
export interface StatementClient {
  query(q: { name: string; text: string; values: readonly unknown[] }): Promise<{ rows: unknown[] }>;
}

/** Sends a NOTIFY (inside the caller's transaction when given one, so it is delivered only on commit). */
export async function notify(db: Db, channel: string, payload: string): Promise<void> {
  await db.execute(sql`select pg_notify(${channel}, ${payload})`);
}

/** A transaction-scoped advisory lock: serialises one kind of work across every process on the database. */
export async function advisoryXactLock(tx: Db, name: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext(${name}))`);
}

/** PGlite: works as hub_app from now on, if the role exists yet (the first migration creates it). */
export async function switchToAppRole(database: Database): Promise<void> {
  const [r] = await rows<{ exists: boolean }>(database.db, sql`select exists (select 1 from pg_roles where rolname = ${APP_ROLE}) as exists`);
  if (r?.exists) await database.db.execute(sql.raw(`set role ${APP_ROLE}`));
}
