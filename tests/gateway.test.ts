import { Writable } from 'node:stream';
import { getIntrospectionQuery, GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientFile } from '../auth/client-file.ts';
import { HubError } from '../core/errors.ts';
import { createLogger, lazyChild } from '../core/logger.ts';
import { maskError, printHubSchema } from '../gateway/graphql.ts';
import fs from 'node:fs';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, type TestHub } from './helpers/hub.ts';

function capture(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { lines, logger: createLogger({ level }, stream) };
}

describe('logs', () => {
  it('mask 公民身份号码 in every line, whoever logs them, and redact secrets', () => {
    const { lines, logger } = capture();
    logger.info({ subject: '11010519491231002X', nested: { q: 'person(idNumber: "360426199101010071")' } }, 'lookup of 440524188001010014');
    logger.info({ req: { headers: { authorization: 'Bearer abc.def.ghi' } } }, 'request');
    const text = JSON.stringify(lines);
    expect(text).not.toMatch(/11010519491231002X|360426199101010071|440524188001010014/);
    expect(lines[0]).toMatchObject({ subject: '110105********002X', msg: 'lookup of 440524********0014' });
    expect(text).not.toContain('abc.def.ghi');
  });

  it('give each request a child that is made on first use and logs like one made at once', () => {
    const { lines, logger } = capture();
    let made = 0;
    const child = logger.child;
    logger.child = function (this: typeof logger, ...args: Parameters<typeof child>) {
      made++;
      return child.apply(this, args);
    } as typeof child;
    const log = lazyChild(logger, { reqId: 'r-1' });
    expect(made).toBe(0);
    log.info({ subject: '11010519491231002X' }, 'read');
    log.warn('again');
    expect(made).toBe(1);
    log.level = 'error';
    log.info('not written: the child is at error now');
    logger.info('written: the parent stays at info');
    log.child({ step: 2 }).error('nested');
    expect(lines.map((l) => [l.reqId, l.msg, l.step])).toEqual([
      ['r-1', 'read', undefined],
      ['r-1', 'again', undefined],
      [undefined, 'written: the parent stays at info', undefined],
      ['r-1', 'nested', 2],
    ]);
    expect(lines[0]).toMatchObject({ subject: '110105********002X' });
  });
});

describe('GraphQL errors', () => {
  it('pass HubErrors with their code and mask everything else without detail', () => {
    const { lines, logger } = capture();
    const hub = new HubError('GRANT_MISSING', 'no grant', { missing: { resource: 'R' } });
    expect(maskError(hub, 'Unexpected error.', logger)).toBe(hub);
    const wrapped = new GraphQLError('relation "secret_table" does not exist', { originalError: new Error('relation "secret_table" does not exist') });
    const masked = maskError(wrapped, 'Unexpected error.', logger);
    expect(masked.message).toBe('Unexpected error.');
    expect(masked.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR' });
    expect(JSON.stringify(masked.toJSON())).not.toMatch(/secret_table|stack/);
    expect(lines[0]).toMatchObject({ level: 50, msg: 'unexpected error in a resolver' });
  });

  it('the committed SDL is the schema the code builds', () => {
    expect(fs.readFileSync('gateway/schema.graphql', 'utf8')).toBe(printHubSchema());
  });
});

describe.each(drivers())('the gateway (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let token: string;
  let consumer: ClientFile;
  const logs = capture('debug');

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database, { logger: logs.logger });
    consumer = await hub.newClient(['consumer']);
    token = await hub.token(consumer);
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('gives every request an id, echoed in a header and in its log line', async () => {
    const r = await fetch(`${hub.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-request-id': 'case-2026-0001' },
      body: JSON.stringify({ query: '{ viewer { clientId } }' }),
    });
    expect(r.headers.get('x-request-id')).toBe('case-2026-0001');
    const generated = await fetch(`${hub.url}/healthz`);
    const id = generated.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await expect.poll(() => logs.lines.some((l) => l.reqId === 'case-2026-0001' && l.clientId === consumer.client_id)).toBe(true);
    await expect.poll(() => logs.lines.some((l) => l.reqId === id && l.path === '/healthz')).toBe(true);
    for (const l of logs.lines.filter((x) => x.msg === 'request')) expect(l.reqId).toBeTruthy();
  });

  it('answers healthz and readyz, and readyz fails when a dependency does', async () => {
    expect(await (await fetch(`${hub.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${hub.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { database: 'ok' } });
    const failing = await startTestHub(tdb.database, { probes: [{ name: 'redis', check: async () => Promise.reject(new Error('down')) }] });
    try {
      const r = await fetch(`${failing.url}/readyz`);
      expect(r.status).toBe(503);
      expect(await r.json()).toEqual({ status: 'not ready', checks: { database: 'ok', redis: 'failing' } });
    } finally {
      await failing.close();
    }
  });

  it('counts requests, latency by GraphQL operation and errors by code, per app', async () => {
    await hub.graphql('query WhoAmI { viewer { clientId } }', token);
    await hub.graphql('{ viewer { clientId } }');
    await hub.graphql('{ nosuchfield }', token);
    const text = await (await fetch(`${hub.url}/metrics`)).text();
    expect(text).toMatch(/hub_graphql_operation_duration_seconds_count\{operation="WhoAmI"\} [1-9]/);
    expect(text).toMatch(/hub_graphql_errors_total\{code="UNAUTHENTICATED"\} [1-9]/);
    expect(text).toMatch(/hub_graphql_errors_total\{code="GRAPHQL_VALIDATION_FAILED"\} [1-9]/);
    expect(text).toMatch(/hub_http_requests_total\{method="POST",route="\/graphql",status="200"\} [1-9]/);
    // a second app in the same process keeps its own registry
    const other = await startTestHub(tdb.database);
    try {
      const otherText = await (await fetch(`${other.url}/metrics`)).text();
      expect(otherText).not.toMatch(/operation="WhoAmI"/);
    } finally {
      await other.close();
    }
  });

  it('limits depth, aliases and cost, with a code', async () => {
    const aliases = Array.from({ length: 30 }, (_, i) => `a${i}: viewer { clientId }`).join(' ');
    const r1 = await hub.graphql(`{ ${aliases} }`, token);
    expect(r1.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r1.body.errors?.[0]?.message).toMatch(/alias/i);
    const deep = `{ __schema { types { fields { type { ${'ofType { '.repeat(14)}name${' }'.repeat(14)} } } } } }`;
    const r2 = await hub.graphql(deep, token);
    expect(r2.body.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r2.body.errors?.[0]?.message).toMatch(/depth/i);
    expect(r2.body.data).toBeUndefined();
    const r3 = await hub.graphql(getIntrospectionQuery(), token);
    expect(r3.body.errors).toBeUndefined();
    expect(r3.body.data?.__schema).toBeTruthy();
  });

  it('reads the body itself: over 1 MiB is refused (413) whatever Content-Length says; malformed JSON and GET still answered by yoga', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const big = JSON.stringify({ query: `{ viewer { clientId } } # ${'x'.repeat(1024 * 1024)}` });
    const declared = await fetch(`${hub.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: big });
    expect(declared.status).toBe(413);
    // chunked: no Content-Length, so only counting the bytes read finds it too large
    const chunks = Buffer.from(big);
    const stream = new ReadableStream({ start(c) { for (let i = 0; i < chunks.length; i += 65536) c.enqueue(chunks.subarray(i, i + 65536)); c.close(); } });
    const chunked = await fetch(`${hub.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(((await chunked.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('BAD_USER_INPUT');
    const small = new ReadableStream({ start(c) { c.enqueue(Buffer.from(JSON.stringify({ query: '{ viewer { clientId } }' }))); c.close(); } });
    const okChunked = await fetch(`${hub.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: small, duplex: 'half' } as RequestInit);
    expect(((await okChunked.json()) as { data: { viewer: { clientId: string } } }).data.viewer.clientId).toBe(consumer.client_id);
    const malformed = await fetch(`${hub.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{"query": ' });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { errors: unknown[] }).errors.length).toBeGreaterThan(0);
    const text = await fetch(`${hub.url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/graphql+json' }, body: JSON.stringify({ query: '{ viewer { clientId } }' }) });
    expect(((await text.json()) as { data: { viewer: { clientId: string } } }).data.viewer.clientId).toBe(consumer.client_id);
    const get = await fetch(`${hub.url}/graphql?query=${encodeURIComponent('{ viewer { clientId } }')}`, { headers: { ...auth, accept: 'application/json' } });
    expect(((await get.json()) as { data: { viewer: { clientId: string } } }).data.viewer.clientId).toBe(consumer.client_id);
  });

  it('requires a token for every operation, introspection included', async () => {
    const r = await hub.graphql('{ __schema { queryType { name } } }');
    expect(r.status).toBe(401);
    expect(r.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(r.headers.get('www-authenticate')).toBe('Bearer');
  });
});
