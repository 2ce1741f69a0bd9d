import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { parse as parseCsv } from 'csv-parse';
import pg from 'pg';
import { EgressRefused, type EgressPolicy, type EgressResponse } from '../core/egress.ts';
import { maskIdNumbers } from '../core/ids.ts';
import { parseConnectorConfig, type FileConfig, type HttpConfig, type SqlConfig } from './config.ts';
import type { AdapterKind } from './schema.ts';
import { SecretUnavailable, type SecretReader } from './secrets.ts';

/** Where a pull stands; opaque to the engine, stored as the connector's checkpoint after each committed batch. */
export type Cursor = Record<string, unknown>;

export interface SourcePage {
  records: Record<string, unknown>[];
  /** the cursor for the next page, or null when the source has nothing more now */
  next: Cursor | null;
  /** where the next run starts when this was the last page (after the last record seen) */
  resume: Cursor | null;
}

export interface SourceAdapter {
  fetchPage(cursor: Cursor | null, options: { pageSize: number; signal: AbortSignal }): Promise<SourcePage>;
  close?(): Promise<void>;
}

/** A failure talking to the source; `retryable` ones (5xx, timeouts, malformed bodies) are retried with backoff. */
export class SourceError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}

/** What a connector's adapter may use of the hub: nothing else of its process, files or database. */
export interface SourcePorts {
  /** every address an adapter calls passes it */
  egress: EgressPolicy;
  /** the connector's department's source secrets, and no one else's */
  secrets: SecretReader;
  /** HUB_IMPORT_DIR: file sources only from its <department code>/ folder; absent, file connectors do not run */
  importDir?: string | undefined;
  /** the hub's own database, which a SQL source may never be */
  hubDatabase?: DatabaseIdentity | null;
}

/** A short excerpt of a source's answer for an error text: ID numbers masked, control characters dropped. */
function excerpt(body: Buffer): string {
  const text = maskIdNumbers(body.subarray(0, 400).toString('utf8')).replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/** An adapter's failure in a form fit for a run's error text: what failed, never what a secret or a record held. */
function requestFailure(error: unknown, timeoutMs: number): SourceError {
  if (error instanceof EgressRefused) return new SourceError(`EGRESS_REFUSED (${error.reason}): ${error.message}`, false);
  if (error instanceof SecretUnavailable) return new SourceError(error.message, false);
  const e = error as { name?: string; code?: string };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return new SourceError(`request failed: timed out after ${timeoutMs} ms`, true);
  return new SourceError(`request failed: ${e.code ?? e.name ?? 'network error'}`, true);
}

/**
 * HTTP JSON with an `updatedSince` + `afterId` keyset cursor (never a timestamp alone: ties would be lost):
 * `GET {url}/records?updatedSince=…&afterId=…&limit=…` → `{ records, next }`. Bearer, API key or HMAC request signing
 * (`x-key-id`, `x-timestamp`, `x-signature` = HMAC-SHA256 of `METHOD\npath?query\ntimestamp`), the key a source
 * secret of the connector's department. Every request goes through the egress policy.
 */
export function httpAdapter(config: HttpConfig, ports: Pick<SourcePorts, 'egress' | 'secrets'>): SourceAdapter {
  const base = config.url.replace(/\/+$/, '');
  const auth = config.auth ?? { type: 'none' as const };
  const timeoutMs = config.timeoutMs ?? 10_000;
  const headersFor = async (pathWithQuery: string): Promise<Record<string, string>> => {
    switch (auth.type) {
      case 'bearer':
        return { authorization: `Bearer ${await ports.secrets.read(auth.secret)}` };
      case 'apikey':
        return { [auth.header]: await ports.secrets.read(auth.secret) };
      case 'hmac': {
        const ts = String(Math.floor(Date.now() / 1000));
        const sig = crypto.createHmac('sha256', await ports.secrets.read(auth.secret)).update(`GET\n${pathWithQuery}\n${ts}`).digest('hex');
        return { 'x-key-id': auth.keyId, 'x-timestamp': ts, 'x-signature': sig };
      }
      default:
        return {};
    }
  };
  return {
    async fetchPage(cursor, { pageSize, signal }) {
      const params = new URLSearchParams({ limit: String(pageSize) });
      if (cursor?.updatedSince) params.set('updatedSince', String(cursor.updatedSince));
      if (cursor?.afterId) params.set('afterId', String(cursor.afterId));
      const url = new URL(`${base}/records?${params}`);
      const pathWithQuery = `${url.pathname}${url.search}`;
      let res: EgressResponse;
      try {
        // no redirect is followed: a source answers at the address an admin approved, or not at all (a redirect to
        // another listed source would make that source's answer this connector's records)
        res = await ports.egress.request(url, { headers: { accept: 'application/json', ...(await headersFor(pathWithQuery)) }, signal, timeoutMs, maxRedirects: 0 });
      } catch (error) {
        if (signal.aborted) throw error;
        throw requestFailure(error, timeoutMs);
      }
      if (res.status >= 500 || res.status === 429) throw new SourceError(`HTTP ${res.status}`, true);
      if (res.status < 200 || res.status >= 300) throw new SourceError(`HTTP ${res.status}: ${excerpt(res.body)}`, false);
      let body: { records?: unknown; next?: unknown };
      try {
        body = JSON.parse(res.body.toString('utf8')) as typeof body;
      } catch {
        throw new SourceError('malformed JSON in the response', true);
      }
      if (!body || !Array.isArray(body.records)) throw new SourceError('the response has no records array', true);
      const records = body.records as Record<string, unknown>[];
      const next = body.next && typeof body.next === 'object' && !Array.isArray(body.next) ? (body.next as Cursor) : null;
      const fields = config.cursorFields ?? { updatedAt: 'gxsj', id: 'id' };
      const last = records.at(-1);
      const resume = next ?? (last && typeof last === 'object' ? { updatedSince: String(last[fields.updatedAt]), afterId: String(last[fields.id]) } : cursor);
      return { records, next, resume };
    },
  };
}

/**
 * The file a connector names, opened where it really is: under HUB_IMPORT_DIR/<department code>/ (real paths
 * compared, so no `..` and no symbolic link leads out), a regular file, opened without following a link in its last
 * step; the open descriptor's own path is compared again, so a link swapped in between is caught.
 */
function openImportFile(config: FileConfig, importDir: string | undefined, departmentCode: string): { fd: number; size: number; mtimeMs: number } {
  if (!importDir) throw new SourceError('IMPORT_DIR_UNSET: file sources need HUB_IMPORT_DIR (files are read only from HUB_IMPORT_DIR/<department code>/)', false);
  let root: string;
  try {
    root = fs.realpathSync(path.join(importDir, departmentCode));
  } catch {
    throw new SourceError(`FILE_NOT_FOUND: the import folder of department ${departmentCode} does not exist`, false);
  }
  let real: string;
  try {
    real = fs.realpathSync(path.join(root, config.path));
  } catch {
    throw new SourceError(`FILE_NOT_FOUND: ${config.path} does not exist in the department's import folder`, false);
  }
  const inside = (p: string) => p.startsWith(root + path.sep);
  if (!inside(real)) throw new SourceError(`FILE_OUTSIDE_IMPORT_DIR: ${config.path} leads outside the department's import folder`, false);
  let fd: number;
  try {
    fd = fs.openSync(real, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw new SourceError(`FILE_UNREADABLE: ${config.path} (${(error as { code?: string }).code ?? 'error'})`, false);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SourceError(`FILE_UNREADABLE: ${config.path} is not a regular file`, false);
    // a hard link is the same file as another path, which may lie outside the folder: one name only
    if (st.nlink !== 1) throw new SourceError(`FILE_OUTSIDE_IMPORT_DIR: ${config.path} has more than one name (a hard link)`, false);
    let opened = real;
    try {
      opened = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      // no /proc here: the checks before stand alone
    }
    if (!inside(opened)) throw new SourceError(`FILE_OUTSIDE_IMPORT_DIR: ${config.path} leads outside the department's import folder`, false);
    return { fd, size: st.size, mtimeMs: st.mtimeMs };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/**
 * CSV (with a header row) or JSONL files from the department's import folder, read in batches. The cursor is the line
 * reached in this version of the file (size and mtime); a new file starts again from its first line, and unchanged
 * records are recognised by their content hash downstream. A line that does not parse is passed on as its line number
 * alone: its content never reaches quarantine or a run's error text.
 */
export function fileAdapter(config: FileConfig, ports: Pick<SourcePorts, 'importDir'>, departmentCode: string): SourceAdapter {
  return {
    async fetchPage(cursor, { pageSize, signal }) {
      const { fd, size, mtimeMs } = openImportFile(config, ports.importDir, departmentCode);
      const fp = `${size}:${Math.floor(mtimeMs)}`;
      const start = cursor && cursor.file === fp ? Number(cursor.line) : 0;
      if (cursor && cursor.file === fp && cursor.done) {
        fs.closeSync(fd);
        return { records: [], next: null, resume: cursor };
      }
      const records: Record<string, unknown>[] = [];
      let line = 0;
      let more = false;
      const stream = fs.createReadStream('', { fd, signal, autoClose: true });
      try {
        if (config.format === 'csv') {
          const parser = stream.pipe(parseCsv({ columns: true, bom: true, skip_empty_lines: true, relax_column_count: true }));
          try {
            for await (const rec of parser as AsyncIterable<Record<string, unknown>>) {
              if (line++ < start) continue;
              if (records.length === pageSize) {
                more = true;
                break;
              }
              records.push(rec);
            }
          } catch (error) {
            if (signal.aborted) throw error;
            // csv-parse quotes the offending text in its message: only where it stopped is said
            throw new SourceError(`MALFORMED_FILE: the CSV does not parse after record ${line} (${(error as { code?: string }).code ?? 'error'})`, false);
          }
        } else {
          const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
          for await (const text of rl) {
            if (!text.trim()) continue;
            if (line++ < start) continue;
            if (records.length === pageSize) {
              more = true;
              break;
            }
            try {
              records.push(JSON.parse(text) as Record<string, unknown>);
            } catch {
              records.push({ __malformed: true, __line: line });
            }
          }
        }
      } finally {
        stream.destroy();
      }
      const reached = start + records.length;
      const position = { file: fp, line: reached };
      return { records, next: more ? position : null, resume: more ? position : { ...position, done: true } };
    },
  };
}

/** Which database a connection reached: the server's system identifier and the database's name. */
export interface DatabaseIdentity {
  systemIdentifier: string;
  name: string;
}

/** The identity of the database a handle or client is connected to, or null where the server will not say. */
export async function databaseIdentity(query: (text: string) => Promise<{ rows: Record<string, unknown>[] }>): Promise<DatabaseIdentity | null> {
  try {
    const { rows } = await query('select system_identifier::text as id, current_database() as name from pg_control_system()');
    const r = rows[0];
    return r ? { systemIdentifier: String(r.id), name: String(r.name) } : null;
  } catch {
    return null;
  }
}

/** A socket for the pg driver whose connection passes the egress policy (its DNS answer checked before connecting). */
function egressSocket(egress: EgressPolicy): () => net.Socket {
  return () => {
    const socket = new net.Socket();
    const connect = socket.connect.bind(socket) as (options: net.TcpSocketConnectOpts) => net.Socket;
    (socket as unknown as { connect: (port: number, host: string) => net.Socket }).connect = (port: number, host: string) => {
      try {
        egress.checkSocketTarget(host, port);
      } catch (error) {
        process.nextTick(() => socket.destroy(error as Error));
        return socket;
      }
      return connect({ port, host, lookup: egress.lookupFor(host, port) });
    };
    return socket;
  };
}

/**
 * A department's PostgreSQL table read by a `(updated_at, id)` keyset cursor. The timestamp travels as text so no
 * microsecond is lost to a JS Date, and ties on the timestamp are ordered by id. Where the database is, is in the
 * (approved) config; its password is a source secret of the department. The connection passes the egress policy, is
 * read-only from its first statement
 * (default_transaction_read_only), and is refused when it reaches the hub's own database (the server's system
 * identifier and the database's name, not the URL's text, are compared). Errors say the SQLSTATE, never the
 * driver's message (it can quote values).
 */
export function sqlAdapter(config: SqlConfig, ports: Pick<SourcePorts, 'egress' | 'secrets' | 'hubDatabase'>): SourceAdapter {
  const idColumn = config.idColumn ?? 'id';
  const updatedColumn = config.updatedColumn ?? 'updated_at';
  let client: pg.Client | undefined;
  const open = async (): Promise<pg.Client> => {
    let password: string;
    try {
      password = await ports.secrets.read(config.secret);
    } catch (error) {
      throw requestFailure(error, 0);
    }
    // every connection parameter given, so the driver reads none from the hub's environment (PGPASSWORD, PGUSER,
    // PGSSLMODE …) or its files (~/.pgpass, certificates); read-only and bounded from the first statement
    const c = new pg.Client({
      host: config.host,
      port: config.port ?? 5432,
      database: config.database,
      user: config.user,
      password: () => password,
      ssl: config.sslmode === 'require' ? { rejectUnauthorized: false } : config.sslmode === 'verify-full' ? { rejectUnauthorized: true, servername: config.host } : false,
      application_name: 'hub-connector',
      options: '-c default_transaction_read_only=on -c statement_timeout=60000',
      stream: egressSocket(ports.egress),
      connectionTimeoutMillis: 10_000,
    });
    c.on('error', () => undefined); // a dropped connection fails the query in flight; the next page reconnects
    try {
      await c.connect();
    } catch (error) {
      await c.end().catch(() => undefined);
      if (error instanceof EgressRefused) throw requestFailure(error, 0);
      const code = (error as { code?: string }).code;
      // 28xxx: authentication; 3D000: no such database: retrying will not help
      throw new SourceError(`cannot connect to the source database (${code ?? 'error'})`, !(code && /^(28|3D)/.test(code)));
    }
    try {
      const identity = await databaseIdentity((text) => c.query(text));
      const hub = ports.hubDatabase;
      if (!identity) throw new SourceError('SOURCE_UNVERIFIABLE: the source database does not say which server it is (pg_control_system)', false);
      if (hub && identity.systemIdentifier === hub.systemIdentifier && identity.name === hub.name) throw new SourceError("SOURCE_IS_HUB: the source is the hub's own database", false);
      const { rows } = await c.query<{ ro: string }>("select current_setting('default_transaction_read_only') as ro");
      if (rows[0]?.ro !== 'on') throw new SourceError('SOURCE_NOT_READ_ONLY: the source connection could not be made read-only', false);
    } catch (error) {
      await c.end().catch(() => undefined);
      throw error instanceof SourceError ? error : new SourceError(`the source database check failed (${(error as { code?: string }).code ?? 'error'})`, true);
    }
    return c;
  };
  return {
    async fetchPage(cursor, { pageSize }) {
      client ??= await open();
      const q = cursor
        ? {
            text: `select *, ${updatedColumn}::text as "__cursor_ts" from ${config.table}
                   where (${updatedColumn}, ${idColumn}::text) > ($1::timestamptz, $2::text)
                   order by ${updatedColumn}, ${idColumn}::text limit $3`,
            values: [cursor.updatedSince, cursor.afterId, pageSize],
          }
        : { text: `select *, ${updatedColumn}::text as "__cursor_ts" from ${config.table} order by ${updatedColumn}, ${idColumn}::text limit $1`, values: [pageSize] };
      let result: pg.QueryResult<Record<string, unknown>>;
      try {
        result = await client.query(q);
      } catch (error) {
        await client.end().catch(() => undefined);
        client = undefined;
        const code = (error as { code?: string }).code;
        // 42xxx: the table or a column is not there, or no privilege: a configuration problem, not a passing one
        throw new SourceError(`source query failed (SQLSTATE ${code ?? 'unknown'})`, !(code && /^42/.test(code)));
      }
      const records = result.rows.map(({ __cursor_ts: _ts, ...r }) => r);
      const last = result.rows.at(-1);
      const next = last ? { updatedSince: last.__cursor_ts, afterId: String(last[idColumn]) } : cursor;
      return { records, next: result.rows.length === pageSize ? next : null, resume: next };
    },
    async close() {
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}

/** The adapter of a connector, bound to its department's secrets and import folder. */
export function adapterFor(connector: { adapter: AdapterKind; config: Record<string, unknown>; departmentCode: string }, ports: SourcePorts): SourceAdapter {
  const config = parseConnectorConfig(connector.adapter, connector.config);
  switch (connector.adapter) {
    case 'http':
      return httpAdapter(config as HttpConfig, ports);
    case 'file':
      return fileAdapter(config as FileConfig, ports, connector.departmentCode);
    case 'sql':
      return sqlAdapter(config as SqlConfig, ports);
  }
}
