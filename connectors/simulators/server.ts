/**
 * A department source system over HTTP (node:http, JSON), for the hub's connectors to pull from:
 *
 * - `GET /records?updatedSince=<ISO>&afterId=<id>&limit=<1..5000, default 1000>` → `{ records, next }` (SourceData.page)
 * - `GET /export.csv`, `GET /export.jsonl`: the whole current snapshot, streamed
 * - `POST /control/faults` `{ mode, count?, delayMs? }`: the next `count` authenticated /records requests fail that way
 * - `POST /control/advance` `{ share }` → `{ generation, changed }`
 * - `GET /control/stats` → `{ kind, generation, records, requests, recordsServed, unauthorized, faults }`
 *
 * /records and /export* need the configured auth (401 JSON otherwise); the control endpoints need none.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkAuth, type SimulatorAuth } from './auth.ts';
import { writeSnapshotTo, type ExportFormat } from './export.ts';
import type { InvalidReason, RecordOf, SourceKind } from './records.ts';
import { CursorError, SourceData, type SourceOptions } from './source.ts';

export type FaultMode = 'error500' | 'timeout' | 'malformed' | 'slow' | 'repeat' | 'none';
export const FAULT_MODES: readonly FaultMode[] = ['error500', 'timeout', 'malformed', 'slow', 'repeat', 'none'];

export interface FaultSpec {
  mode: FaultMode;
  /** how many of the next /records requests (default 1) */
  count?: number;
  /** the delay of `slow` (default 2000 ms) */
  delayMs?: number;
}

export interface FaultState {
  mode: FaultMode;
  remaining: number;
  delayMs: number;
}

export interface SimulatorStats {
  kind: SourceKind;
  generation: number;
  /** requests to /records and /export* (refused ones included) */
  requests: number;
  /** the records the source holds */
  records: number;
  /** records sent in /records answers (repeats included, exports not) */
  recordsServed: number;
  unauthorized: number;
  faults: FaultState;
}

export interface SimulatorOptions<K extends SourceKind = SourceKind> extends SourceOptions<K> {
  auth: SimulatorAuth;
  /** default 127.0.0.1 */
  host?: string;
  /** default 0: any free port */
  port?: number;
}

export interface Simulator<K extends SourceKind = SourceKind> {
  readonly kind: K;
  readonly seed: number;
  /** http://host:port, no trailing slash */
  readonly url: string;
  readonly recordCount: number;
  readonly generation: number;
  readonly source: SourceData<K>;
  /** Stops listening and ends every connection, held (timeout) and delayed (slow) requests included. */
  close(): Promise<void>;
  advance(share: number): { generation: number; changed: number };
  setFaults(faults: FaultSpec): FaultState;
  stats(): SimulatorStats;
  /** Record i as currently served. */
  current(index: number): RecordOf[K];
  invalidReason(index: number): InvalidReason | null;
}

const DEFAULT_LIMIT = 1000;
const MAX_BODY = 64 * 1024;

class BadRequest extends Error {}

function sendJson(res: http.ServerResponse, status: number, body: unknown, extra: http.OutgoingHttpHeaders = {}): void {
  sendText(res, status, JSON.stringify(body), extra);
}

function sendText(res: http.ServerResponse, status: number, text: string | Buffer, extra: http.OutgoingHttpHeaders = {}): void {
  if (res.destroyed) return;
  const body = typeof text === 'string' ? Buffer.from(text) : text;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length, ...extra });
  res.end(body);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new BadRequest('the body is too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (!text) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new BadRequest('the body is not JSON');
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new BadRequest('the body must be a JSON object');
  return value as Record<string, unknown>;
}

/** Validates a fault switch (from JSON or code). */
export function parseFaults(body: Record<string, unknown>): Required<FaultSpec> {
  const mode = body.mode;
  if (typeof mode !== 'string' || !FAULT_MODES.includes(mode as FaultMode)) throw new BadRequest(`mode must be one of ${FAULT_MODES.join(', ')}`);
  const count = body.count ?? 1;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) throw new BadRequest('count must be a non-negative integer');
  const delayMs = body.delayMs ?? 2000;
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0 || delayMs > 600_000) throw new BadRequest('delayMs must be in 0..600000');
  return { mode: mode as FaultMode, count, delayMs };
}

export async function startSimulator<K extends SourceKind>(options: SimulatorOptions<K>): Promise<Simulator<K>> {
  const source = new SourceData(options);
  const auth = options.auth;
  if (!auth || !['bearer', 'apikey', 'hmac'].includes(auth.type)) throw new Error('a simulator needs auth: bearer, apikey or hmac');
  const host = options.host ?? '127.0.0.1';

  let faults: FaultState = { mode: 'none', remaining: 0, delayMs: 2000 };
  const counters = { requests: 0, recordsServed: 0, unauthorized: 0 };
  let last: { body: Buffer; count: number } | null = null;
  const held = new Set<http.ServerResponse>();
  const timers = new Set<NodeJS.Timeout>();
  let closing = false;

  const setFaults = (spec: FaultSpec): FaultState => {
    const f = parseFaults(spec as unknown as Record<string, unknown>);
    faults = f.mode === 'none' || f.count === 0 ? { mode: 'none', remaining: 0, delayMs: f.delayMs } : { mode: f.mode, remaining: f.count, delayMs: f.delayMs };
    return { ...faults };
  };
  const takeFault = (): FaultMode => {
    if (faults.remaining <= 0) return 'none';
    const mode = faults.mode;
    if (--faults.remaining === 0) faults = { mode: 'none', remaining: 0, delayMs: faults.delayMs };
    return mode;
  };

  const authorised = (req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const problem = checkAuth(auth, req.method ?? 'GET', req.url ?? '/', req.headers);
    if (problem === null) return true;
    counters.unauthorized++;
    sendJson(res, 401, { error: 'UNAUTHORIZED', message: problem }, auth.type === 'bearer' ? { 'www-authenticate': 'Bearer' } : {});
    return false;
  };

  const records = (req: http.IncomingMessage, res: http.ServerResponse, params: URLSearchParams): void => {
    counters.requests++;
    if (!authorised(req, res)) return;
    const mode = takeFault();
    if (mode === 'error500') return sendJson(res, 500, { error: 'INTERNAL', message: 'simulated source failure' });
    if (mode === 'timeout') {
      // never answered: held until the client gives up or the simulator closes
      held.add(res);
      res.on('close', () => held.delete(res));
      return;
    }
    if (mode === 'repeat' && last) {
      counters.recordsServed += last.count;
      return sendText(res, 200, last.body);
    }
    const limitText = params.get('limit');
    if (limitText !== null && !/^\d{1,6}$/.test(limitText)) throw new CursorError('limit must be an integer in 1..5000');
    const page = source.page({ updatedSince: params.get('updatedSince') ?? undefined, afterId: params.get('afterId') ?? undefined }, limitText === null ? DEFAULT_LIMIT : Number(limitText));
    const json = JSON.stringify(page);
    if (mode === 'malformed') return sendText(res, 200, json.slice(0, Math.max(1, Math.floor(json.length / 2))));
    const body = Buffer.from(json);
    last = { body, count: page.records.length };
    const send = () => {
      counters.recordsServed += page.records.length;
      sendText(res, 200, body);
    };
    if (mode !== 'slow') return send();
    const timer = setTimeout(() => {
      timers.delete(timer);
      send();
    }, faults.delayMs);
    timers.add(timer);
    res.on('close', () => {
      clearTimeout(timer);
      timers.delete(timer);
    });
  };

  const exportSnapshot = async (req: http.IncomingMessage, res: http.ServerResponse, format: ExportFormat): Promise<void> => {
    counters.requests++;
    if (!authorised(req, res)) return;
    res.writeHead(200, {
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8; header=present' : 'application/x-ndjson; charset=utf-8',
      'content-disposition': `attachment; filename="${source.kind}.${format}"`,
    });
    await writeSnapshotTo(source, res, format);
    if (!res.destroyed) res.end();
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /records':
        return records(req, res, url.searchParams);
      case 'GET /export.csv':
        return exportSnapshot(req, res, 'csv');
      case 'GET /export.jsonl':
        return exportSnapshot(req, res, 'jsonl');
      case 'POST /control/faults':
        return sendJson(res, 200, setFaults((await readJson(req)) as unknown as FaultSpec));
      case 'POST /control/advance': {
        const share = (await readJson(req)).share ?? 0.1;
        if (typeof share !== 'number' || !(share >= 0 && share <= 1)) throw new BadRequest('share must be a number in 0..1');
        return sendJson(res, 200, source.advance(share));
      }
      case 'GET /control/stats':
        return sendJson(res, 200, stats());
      default:
        return sendJson(res, 404, { error: 'NOT_FOUND', message: `no ${route}` });
    }
  };

  const stats = (): SimulatorStats => ({ kind: source.kind, generation: source.generation, records: source.recordCount, ...counters, faults: { ...faults } });

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (error instanceof BadRequest || error instanceof CursorError) sendJson(res, 400, { error: 'BAD_REQUEST', message: error.message });
      else sendJson(res, 500, { error: 'INTERNAL', message: 'unexpected error' });
    });
  });
  server.keepAliveTimeout = 5000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  return {
    kind: source.kind,
    seed: source.seed,
    url,
    recordCount: source.recordCount,
    get generation() {
      return source.generation;
    },
    source,
    async close() {
      if (closing) return;
      closing = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const res of held) res.destroy();
      held.clear();
      server.closeAllConnections();
      await closed;
    },
    advance: (share) => source.advance(share),
    setFaults,
    stats,
    current: (index) => source.current(index),
    invalidReason: (index) => source.invalidReason(index),
  };
}
