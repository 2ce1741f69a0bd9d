import crypto from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import express, { type Request, type Response } from 'express';
import { sql } from 'drizzle-orm';
import type { Redis } from 'ioredis';
import { listCheckpoints } from '../audit/checkpoints.ts';
import { createReadLimiter } from '../basedata/rate-limit.ts';
import { exportEntries, type EntryFilter } from '../audit/findings.ts';
import { OAuthError } from '../auth/oauth.ts';
import type { JobQueuePort } from '../connectors/graphql.ts';
import { HubError } from '../core/errors.ts';
import { maskIdNumbers } from '../core/ids.ts';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { lazyChild, type Logger } from '../core/logger.ts';
import { presentationPage, viewPresentation } from '../licence/holder.ts';
import { getLicenceType } from '../licence/types.ts';
import type { VerifiedLicence } from '../licence/verify.ts';
import { directRequest, type DirectOptions } from './direct.ts';
import { buildYoga, finishResult, maskError } from './graphql.ts';
import { createMetrics, routeLabel, type HubMetrics } from './metrics.ts';
import type { HubServices } from './services.ts';

export interface HubApp {
  /** The node:http listener: /graphql goes straight to yoga, everything else to express. */
  listener: RequestListener;
  metrics: HubMetrics;
}

export interface ReadinessProbe {
  name: string;
  check(): Promise<void>;
}

export interface BuildAppOptions {
  /** Extra readiness checks (Redis when configured). */
  probes?: ReadinessProbe[];
  graphiql?: boolean;
  defaultMetrics?: boolean;
  /** where runConnector puts its work: BullMQ, or the in-process runner */
  jobs?: JobQueuePort;
  /** Redis, when configured: rate limits are shared through it */
  redis?: Redis;
  /**
   * false hands every GraphQL request to yoga's own HTTP handling, which the direct path (gateway/direct.ts) must answer
   * like; tests compare the two. Default true.
   */
  directGraphql?: boolean;
}

const MAX_GRAPHQL_BODY = 1024 * 1024;

function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && /^[\w.:-]{1,64}$/.test(given) ? given : crypto.randomUUID();
}

/** The token of an `Authorization: Bearer …` header, or null. */
function bearerToken(header: string | undefined): string | null {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
}

/**
 * The body of a GraphQL POST, read here rather than by yoga (whose fetch-API request streams, size-limiting transform
 * stream and abort signals cost more than the lookup they carry); null when it grows past the limit, whatever
 * Content-Length said.
 */
function readBody(req: IncomingMessage, limit: number): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      // past the limit the rest is read and dropped
      chunks.length = 0;
      resolve(null);
    });
    // past the limit the promise is settled already, and this resolve does nothing
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

/**
 * What the fetch-API adapter is handed as the already-read body: JSON parsed here (it then skips its own parse and
 * stream), anything else as text for yoga to judge, with its own error for a body it cannot read.
 */
function parsedBody(text: string, contentType: string | undefined): unknown {
  if (contentType?.includes('json')) {
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === 'object' && Object.keys(parsed).length > 0) return parsed;
    } catch {
      // yoga answers a malformed body with its own error
    }
  }
  return text;
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A GraphQL request that failed outside anything yoga answers: the masked error, without detail. */
function internalError(res: ServerResponse): void {
  sendJson(res, 500, { errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
}

function tooLarge(res: ServerResponse): void {
  sendJson(res, 413, { errors: [{ message: 'request body too large', extensions: { code: 'BAD_USER_INPUT' } }] });
}

export function buildApp(services: HubServices, options: BuildAppOptions = {}): HubApp {
  const { logger, oauth, keys, database } = services;
  const metrics = createMetrics({ defaultMetrics: options.defaultMetrics ?? false });
  const yoga = buildYoga({ db: database.db, logger, metrics, graphiql: options.graphiql ?? false, grants: services.grants,
    audit: services.audit,
    keys: services.keys,
    issuer: services.config.issuer,
    limiter: createReadLimiter({ pointsPerSecond: services.config.readRate, redis: options.redis }),
    masterKey: services.masterKey,
    egress: services.egress,
    oidcIssuer: services.config.oidc?.issuer,
    licence: services.licence,
    jobs: options.jobs ?? {
      enqueue: () => {
        throw new HubError('CONFLICT', 'this hub process runs no jobs');
      },
    },
  });
  const direct: DirectOptions = {
    yoga: yoga as unknown as DirectOptions['yoga'],
    finish: (result) => finishResult(result, metrics),
    maskError: (error) => maskError(error, 'Unexpected error.', logger),
  };
  const answeredDirect = metrics.graphqlRequests.labels({ handler: 'direct' });
  const answeredByYoga = metrics.graphqlRequests.labels({ handler: 'yoga' });
  const probes: ReadinessProbe[] = [
    { name: 'database', check: async () => void (await database.db.execute(sql`select 1`)) },
    ...(options.probes ?? []),
  ];

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  app.get('/.well-known/oauth-authorization-server', (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json(oauth.metadata());
  });
  app.get('/.well-known/jwks.json', (_req, res) => {
    res.set('cache-control', 'public, max-age=60').json({ keys: [...keys.jwks().keys, ...services.licence.pki.jwks()] });
  });
  // POST /verify: no auth, limited per client address; the same answer as verifyLicence
  const verifyLimiter: RateLimiterAbstract = options.redis
    ? new RateLimiterRedis({ storeClient: options.redis, points: services.config.verifyRate, duration: 1, keyPrefix: 'hub:rl:verify' })
    : new RateLimiterMemory({ points: services.config.verifyRate, duration: 1, keyPrefix: 'hub:rl:verify' });
  app.post('/verify', express.json({ limit: '128kb' }), async (req: Request, res: Response) => {
    res.set('cache-control', 'no-store');
    try {
      await verifyLimiter.consume(req.socket.remoteAddress ?? 'unknown');
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      const retryAfter = Math.max(1, Math.ceil(error.msBeforeNext / 1000));
      res.status(429).set('retry-after', String(retryAfter)).json({ error: 'RATE_LIMITED', retryAfter });
      return;
    }
    const credential = (req.body as { credential?: unknown } | undefined)?.credential;
    if (typeof credential !== 'string') {
      res.status(400).json({ error: 'BAD_USER_INPUT', field: 'credential', message: 'send { "credential": "<VC-JOSE JWT or SD-JWT VC>" }' });
      return;
    }
    let r;
    try {
      r = await services.licence.verifier.verify(credential);
    } catch (error) {
      req.log.error({ err: error }, 'verification failed');
      res.status(500).json({ error: 'INTERNAL_SERVER_ERROR' });
      return;
    }
    res.json({ valid: r.valid, status: r.status, reasons: r.reasons, format: r.format, disclosed: r.disclosed ?? null, licence: r.licence ? publicLicence(r.licence) : null });
  });
  // 亮证: the one-time page a holder's QR code opens
  app.get('/licences/show/:token', async (req: Request, res: Response) => {
    res.set({ 'cache-control': 'no-store', 'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff', 'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'" });
    let shown;
    try {
      shown = await viewPresentation(database.db, String(req.params.token), req.socket.remoteAddress ?? null);
    } catch (error) {
      req.log.error({ err: error }, 'showing a licence failed');
      res.status(500).type('text').send('error');
      return;
    }
    if (!shown) {
      res.status(410).type('html').send('<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>亮证</title><p>此亮证链接已使用或已过期。</p></html>');
      return;
    }
    const type = await getLicenceType(database.db, shown.row.typeCode);
    const fields = type?.faceFields ?? [];
    res.status(200).type('html').send(presentationPage(shown, new Set(fields.filter((f) => f.sensitive).map((f) => f.code)), new Map(fields.map((f) => [f.code, f.name]))));
  });
  // GET /status-lists/:id: one state, two formats by Accept
  app.get('/status-lists/:id', async (req: Request, res: Response) => {
    const id = Number(req.params.id);
    const purpose = req.query.purpose === 'suspension' ? 'suspension' : req.query.purpose === undefined || req.query.purpose === 'revocation' ? 'revocation' : null;
    if (!Number.isInteger(id) || id < 1 || !purpose) {
      res.status(404).json({ error: 'not_found' });
      return;
    }
    const format = (req.headers.accept ?? '').includes('application/statuslist+jwt') ? 'statuslist+jwt' : 'vc+jwt';
    try {
      const r = await services.licence.statusLists.render(id, format, purpose);
      res.set({ 'cache-control': 'public, max-age=60', etag: r.etag, vary: 'Accept', 'content-type': r.contentType });
      if (req.headers['if-none-match'] === r.etag) {
        res.status(304).end();
        return;
      }
      res.status(200).send(r.body);
    } catch (error) {
      if (error instanceof HubError && error.code === 'NOT_FOUND') {
        res.status(404).json({ error: 'not_found' });
        return;
      }
      req.log.error({ err: error }, 'rendering a status list failed');
      res.status(500).json({ error: 'INTERNAL_SERVER_ERROR' });
    }
  });
  app.post('/oauth/token', express.urlencoded({ extended: false, limit: '64kb' }), async (req: Request, res: Response) => {
    res.set('cache-control', 'no-store').set('pragma', 'no-cache');
    if (!req.is('application/x-www-form-urlencoded')) {
      res.status(400).json({ error: 'invalid_request', error_description: 'send the parameters as application/x-www-form-urlencoded' });
      return;
    }
    const params = Object.fromEntries(
      Object.entries((req.body ?? {}) as Record<string, unknown>).map(([k, v]) => [k, typeof v === 'string' ? v : undefined]),
    );
    try {
      const token = await oauth.exchange(params);
      res.json(token);
    } catch (error) {
      if (error instanceof OAuthError) {
        req.log.info({ clientId: params.client_id, error: error.error, reason: error.description }, 'token refused');
        if (error.status === 401) res.set('www-authenticate', 'private_key_jwt');
        res.status(error.status).json({ error: error.error, error_description: error.description });
        return;
      }
      req.log.error({ err: error }, 'token endpoint failed');
      res.status(500).json({ error: 'server_error', error_description: 'the token could not be issued' });
    }
  });
  app.get('/audit/checkpoints', async (req, res) => {
    const limit = Math.min(Number(req.query.limit ?? 100) || 100, 1000);
    const rows = await listCheckpoints(database.db, limit);
    res.set('cache-control', 'public, max-age=10').json({
      checkpoints: rows.map((c) => ({ treeSize: c.treeSize, rootHash: c.rootHash, lastHash: c.lastHash, signature: c.signature, kid: c.kid, createdAt: c.createdAt.toISOString() })),
    });
  });
  /** Streaming export of the audit log (auditors): CSV for people (ID numbers masked) or JSONL for machines. */
  app.get('/audit/export', async (req, res) => {
    let principal;
    try {
      const token = bearerToken(req.headers.authorization);
      if (!token) throw new HubError('UNAUTHENTICATED', 'an Authorization: Bearer access token is required');
      principal = await oauth.verifyAccessToken(token);
    } catch (error) {
      res.status(401).json({ error: 'UNAUTHENTICATED', message: error instanceof HubError ? error.message : 'the token could not be checked' });
      return;
    }
    if (principal.kind !== 'client' || !principal.roles.includes('auditor')) {
      res.status(403).json({ error: 'FORBIDDEN', message: 'the export needs the auditor role' });
      return;
    }
    const repeated = Object.keys(req.query).find((k) => typeof req.query[k] !== 'string');
    if (repeated) {
      res.status(400).json({ error: 'BAD_USER_INPUT', message: `${repeated} is given more than once, or not as a text` });
      return;
    }
    const q = req.query as Record<string, string | undefined>;
    const format = q.format === 'jsonl' ? 'jsonl' : q.format === 'csv' || q.format === undefined ? 'csv' : null;
    const from = q.from ? new Date(q.from) : undefined;
    const to = q.to ? new Date(q.to) : undefined;
    if (!format || (from && Number.isNaN(from.getTime())) || (to && Number.isNaN(to.getTime()))) {
      res.status(400).json({ error: 'BAD_USER_INPUT', message: 'format is csv or jsonl; from and to are ISO instants' });
      return;
    }
    // the filters of accessLog, by the same names
    const filter: EntryFilter = { from, to };
    for (const k of ['clientId', 'department', 'resourceCode', 'subject', 'itemCode', 'caseId', 'operation', 'outcome'] as const) filter[k] = q[k];
    // the export is recorded before any entry leaves the hub
    await services.audit.append({ clientId: principal.clientId, department: principal.department, operation: 'AUDIT_EXPORT', outcome: 'DONE', requestId: req.get('x-request-id') ?? null, details: { format, ...q } });
    res.status(200).set({
      'content-type': format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'content-disposition': `attachment; filename="audit-${new Date().toISOString().slice(0, 10)}.${format}"`,
      'cache-control': 'no-store',
    });
    try {
      for await (const chunk of exportEntries(database.db, filter, format)) {
        if (!res.write(chunk)) await new Promise((r) => res.once('drain', r));
      }
      res.end();
    } catch (error) {
      req.log.error({ err: error }, 'audit export failed');
      res.destroy(error as Error);
    }
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (req, res) => {
    const checks: Record<string, string> = {};
    let ready = true;
    await Promise.all(
      probes.map(async (p) => {
        try {
          await Promise.race([p.check(), new Promise((_r, reject) => setTimeout(() => reject(new Error('timed out')), 2000).unref())]);
          checks[p.name] = 'ok';
        } catch (error) {
          ready = false;
          checks[p.name] = 'failing';
          req.log.warn({ err: error, probe: p.name }, 'readiness check failed');
        }
      }),
    );
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.use((_req, res) => {
    res.status(404).json({ error: 'not_found' });
  });

  const unauthenticated = (res: ServerResponse, message: string) => {
    metrics.graphqlErrors.inc({ code: 'UNAUTHENTICATED' });
    sendJson(res, 401, { errors: [{ message, extensions: { code: 'UNAUTHENTICATED' } }] }, { 'www-authenticate': 'Bearer' });
  };

  const graphql = (req: IncomingMessage, res: ServerResponse, requestId: string) => {
    const log = lazyChild(logger, { reqId: requestId });
    (req as IncomingMessage & { log: typeof log }).log = log;
    if (req.method === 'GET' && options.graphiql && (req.headers.accept ?? '').includes('text/html')) {
      void yoga.handle(req, res, { requestId, log } as never);
      return;
    }
    if (Number(req.headers['content-length'] ?? 0) > MAX_GRAPHQL_BODY) {
      tooLarge(res);
      return;
    }
    const token = bearerToken(req.headers.authorization);
    if (!token) {
      unauthenticated(res, 'an Authorization: Bearer access token is required');
      return;
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    Promise.all([oauth.verifyAccessToken(token), hasBody ? readBody(req, MAX_GRAPHQL_BODY) : null]).then(
      ([principal, text]) => {
        (req as IncomingMessage & { clientId?: string }).clientId = principal.kind === 'client' ? principal.clientId : 'holder';
        if (hasBody && text === null) {
          tooLarge(res);
          return;
        }
        if (text) {
          const body = parsedBody(text, req.headers['content-type']);
          const answer = options.directGraphql === false ? null : directRequest(direct, req, body, { principal, requestId, log });
          if (answer) {
            answeredDirect.inc();
            answer(res).catch((error: unknown) => {
              log.error({ err: error }, 'answering a GraphQL request failed');
              if (!res.headersSent) internalError(res);
              else res.destroy();
            });
            return;
          }
          (req as IncomingMessage & { body?: unknown }).body = body;
        }
        answeredByYoga.inc();
        void yoga.handle(req, res, { principal, requestId, log });
      },
      (error: unknown) => {
        if (error instanceof HubError) return unauthenticated(res, error.message);
        log.error({ err: error }, 'access token check failed');
        internalError(res);
      },
    );
  };

  const listener: RequestListener = (req, res) => {
    const started = process.hrtime.bigint();
    const requestId = requestIdOf(req);
    res.setHeader('x-request-id', requestId);
    const q = req.url?.indexOf('?') ?? -1;
    const pathname = q >= 0 ? req.url!.slice(0, q) : (req.url ?? '/');
    const route = routeLabel(pathname);
    res.once('finish', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      metrics.httpRequests.inc({ method: req.method ?? 'GET', route, status: String(res.statusCode) });
      metrics.httpDuration.observe({ route }, seconds);
      // Every request is counted in /metrics and every data access is in the audit log; the access log line is
      // kept for failures (info) and available for all requests at HUB_LOG_LEVEL=debug.
      const level = res.statusCode >= 400 ? 'info' : 'debug';
      if (!logger.isLevelEnabled(level)) return;
      logger[level](
        {
          reqId: requestId,
          method: req.method,
          path: pathname,
          status: res.statusCode,
          ms: Math.round(seconds * 10000) / 10,
          clientId: (req as IncomingMessage & { clientId?: string }).clientId,
        },
        'request',
      );
    });
    if (pathname === '/graphql') {
      graphql(req, res, requestId);
      return;
    }
    (req as IncomingMessage & { log: unknown }).log = lazyChild(logger, { reqId: requestId });
    app(req as Request, res as Response);
  };

  return { listener, metrics };
}

/**
 * What POST /verify says about the licence on record: its identity and status, not the holder's data; a 证照编号 that is
 * a 公民身份号码 (the 居民身份证's) masked, as everywhere a licence is shown to people.
 */
function publicLicence(l: VerifiedLicence) {
  return { identifier: l.identifier, version: l.version, typeCode: l.typeCode, name: l.name, number: maskIdNumbers(l.number), issuerName: l.issuerName, issuerCode: l.issuerCode, issuedAt: l.issuedAt.toISOString(), validFrom: l.validFrom, validUntil: l.validUntil };
}

declare module 'express-serve-static-core' {
  interface Request {
    log: Logger;
  }
}
