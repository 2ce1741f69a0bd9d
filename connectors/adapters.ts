import crypto from 'node:crypto';
import fs from 'node:fs';
import readline from 'node:readline';
import { parse as parseCsv } from 'csv-parse';
import pg from 'pg';

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

/** Secrets are named in the connector's config and read from the environment of the process that runs it. */
function secretFrom(env: NodeJS.ProcessEnv, name: unknown, what: string): string {
  if (typeof name !== 'string' || !name) throw new SourceError(`the connector names no environment variable for its ${what}`, false);
  const value = env[name];
  if (!value) throw new SourceError(`environment variable ${name} (the ${what}) is not set on this worker`, false);
  return value;
}

export interface HttpConfig {
  url: string;
  auth?: { type: 'none' } | { type: 'bearer'; tokenEnv: string } | { type: 'apikey'; header: string; keyEnv: string } | { type: 'hmac'; keyId: string; secretEnv: string };
  timeoutMs?: number;
  /** the source fields the cursor is made of: its update time and its record id */
  cursorFields?: { updatedAt: string; id: string };
}

/**
 * HTTP JSON with an `updatedSince` + `afterId` keyset cursor (never a timestamp alone: ties would be lost):
 * `GET {url}/records?updatedSince=…&afterId=…&limit=…` → `{ records, next }`. Bearer, API key or HMAC request signing
 * (`x-key-id`, `x-timestamp`, `x-signature` = HMAC-SHA256 of `METHOD\npath?query\ntimestamp`).
 */
export function httpAdapter(config: HttpConfig, env: NodeJS.ProcessEnv = process.env): SourceAdapter {
  const base = config.url.replace(/\/+$/, '');
  const auth = config.auth ?? { type: 'none' };
  const headersFor = (pathWithQuery: string): Record<string, string> => {
    switch (auth.type) {
      case 'bearer':
        return { authorization: `Bearer ${secretFrom(env, auth.tokenEnv, 'bearer token')}` };
      case 'apikey':
        return { [auth.header]: secretFrom(env, auth.keyEnv, 'API key') };
      case 'hmac': {
        const ts = String(Math.floor(Date.now() / 1000));
        const sig = crypto.createHmac('sha256', secretFrom(env, auth.secretEnv, 'HMAC secret')).update(`GET\n${pathWithQuery}\n${ts}`).digest('hex');
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
      let res: Response;
      try {
        res = await fetch(url, { headers: { accept: 'application/json', ...headersFor(pathWithQuery) }, signal: AbortSignal.any([signal, AbortSignal.timeout(config.timeoutMs ?? 10_000)]) });
      } catch (error) {
        if (signal.aborted) throw error;
        throw new SourceError(`request failed: ${(error as Error).name === 'TimeoutError' ? `timed out after ${config.timeoutMs ?? 10_000} ms` : (error as Error).message}`, true);
      }
      if (res.status >= 500 || res.status === 429) throw new SourceError(`HTTP ${res.status}`, true);
      if (!res.ok) throw new SourceError(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`, false);
      let body: { records?: unknown; next?: unknown };
      try {
        body = (await res.json()) as typeof body;
      } catch {
        throw new SourceError('malformed JSON in the response', true);
      }
      if (!Array.isArray(body.records)) throw new SourceError('the response has no records array', true);
      const records = body.records as Record<string, unknown>[];
      const next = body.next && typeof body.next === 'object' ? (body.next as Cursor) : null;
      const fields = config.cursorFields ?? { updatedAt: 'gxsj', id: 'id' };
      const last = records.at(-1);
      const resume = next ?? (last ? { updatedSince: String(last[fields.updatedAt]), afterId: String(last[fields.id]) } : cursor);
      return { records, next, resume };
    },
  };
}

export interface FileConfig {
  path: string;
  format: 'csv' | 'jsonl';
}

function fingerprint(path: string): string {
  const st = fs.statSync(path);
  return `${st.size}:${Math.floor(st.mtimeMs)}`;
}

/**
 * CSV (with a header row) or JSONL files, read in batches. The cursor is the line reached in this version of the
 * file (size and mtime); a new file starts again from its first line, and unchanged records are recognised by their
 * content hash downstream.
 */
export function fileAdapter(config: FileConfig): SourceAdapter {
  return {
    async fetchPage(cursor, { pageSize, signal }) {
      if (!fs.existsSync(config.path)) throw new SourceError(`file ${config.path} does not exist`, false);
      const fp = fingerprint(config.path);
      const start = cursor && cursor.file === fp ? Number(cursor.line) : 0;
      if (cursor && cursor.file === fp && cursor.done) return { records: [], next: null, resume: cursor };
      const records: Record<string, unknown>[] = [];
      let line = 0;
      let more = false;
      const stream = fs.createReadStream(config.path, { signal });
      try {
        if (config.format === 'csv') {
          const parser = stream.pipe(parseCsv({ columns: true, bom: true, skip_empty_lines: true, relax_column_count: true }));
          for await (const rec of parser as AsyncIterable<Record<string, unknown>>) {
            if (line++ < start) continue;
            if (records.length === pageSize) {
              more = true;
              break;
            }
            records.push(rec);
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
              records.push({ __malformed: text.slice(0, 500), __line: line });
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

export interface SqlConfig {
  /** environment variable holding the department database's URL */
  urlEnv: string;
  table: string;
  idColumn?: string;
  updatedColumn?: string;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

/**
 * A department's PostgreSQL table read by a `(updated_at, id)` keyset cursor. The timestamp travels as text so no
 * microsecond is lost to a JS Date, and ties on the timestamp are ordered by id.
 */
export function sqlAdapter(config: SqlConfig, env: NodeJS.ProcessEnv = process.env): SourceAdapter {
  const idColumn = config.idColumn ?? 'id';
  const updatedColumn = config.updatedColumn ?? 'updated_at';
  for (const [name, v] of [['table', config.table], ['idColumn', idColumn], ['updatedColumn', updatedColumn]] as const) {
    if (!IDENT.test(v)) throw new SourceError(`${name} "${v}" is not a plain SQL identifier`, false);
  }
  let client: pg.Client | undefined;
  return {
    async fetchPage(cursor, { pageSize }) {
      if (!client) {
        client = new pg.Client({ connectionString: secretFrom(env, config.urlEnv, 'source database URL'), application_name: 'hub-connector' });
        try {
          await client.connect();
        } catch (error) {
          client = undefined;
          throw new SourceError(`cannot connect to the source database: ${(error as Error).message}`, true);
        }
      }
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
        throw new SourceError(`source query failed: ${(error as Error).message}`, true);
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
