import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { GraphQLScalarType } from 'graphql';
import { createSchema, createYoga } from 'graphql-yoga';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readClientFile } from '../auth/client-file.ts';
import { runSync } from '../connectors/sync.ts';
import { approvedSource, testSources } from './helpers/sources.ts';
import { createLogger } from '../core/logger.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { directParams, directRequest, isJsonContentType, regularMediaType, type DirectOptions } from '../gateway/direct.ts';
import { maskError } from '../gateway/graphql.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { startTestHub, type TestHub } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const ALICE = '11010519491231002X';
const ITEM = '350100-DJ-0001';
const PERSON = 'query($id: String!, $p: PurposeInput!) { person(idNumber: $id, purpose: $p) { idNumber name gender birthDate } }';

interface Answer {
  status: number;
  headers: Record<string, string | null>;
  body: unknown;
}

/** The answer with what must differ between two reads taken out: audit ids (new entries) become their count. */
function comparable(body: unknown): unknown {
  if (!body || typeof body !== 'object') return body;
  const b = body as { extensions?: { auditIds?: unknown[] } };
  if (!b.extensions?.auditIds) return body;
  return { ...b, extensions: { ...b.extensions, auditIds: b.extensions.auditIds.length } };
}

describe('GraphQL requests answered without yoga’s fetch adapter', () => {
  let tdb: TestDatabase;
  let direct: TestHub;
  let yoga: TestHub;
  let token: string;

  beforeAll(async () => {
    tdb = await createTestDatabase('pglite');
    direct = await startTestHub(tdb.database);
    yoga = await startTestHub(tdb.database, { directGraphql: false });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-direct-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: 'http://hub.test/oauth/token', logger: log });
    token = await direct.token(readClientFile(path.join(dir, 'demo-client.json')));
    fs.mkdirSync(path.join(dir, DEMO_DEPARTMENTS[0].code));
    const file = path.join(dir, DEMO_DEPARTMENTS[0].code, 'population.jsonl');
    fs.writeFileSync(file, JSON.stringify({ id: 'P1', sfzh: ALICE, xm: '王丽', xb: '2', mz: '01', csrq: '19491231', csd: '北京市', hjdz: '北京市朝阳区建国路88号', hjdjjg: '北京市公安局朝阳分局', hyzk: '10', swbs: '0' }));
    await approvedSource(tdb.database.db, { id: 'pop-file', name: '人口', departmentCode: DEMO_DEPARTMENTS[0].code, kind: 'population', adapter: 'file', config: { path: 'population.jsonl', format: 'jsonl' } }, { designate: false });
    expect((await runSync(tdb.database, 'pop-file', testSources({ importDir: dir }))).inserted).toBe(1);
  });
  afterAll(async () => {
    await direct?.close();
    await yoga?.close();
    await tdb?.drop();
  });

  async function ask(hub: TestHub, body: string, headers: Record<string, string> = {}, path = '/graphql'): Promise<Answer> {
    const r = await fetch(`${hub.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, ...headers }, body });
    const text = await r.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // compared as text
    }
    const pick = ['content-type', 'access-control-allow-origin', 'vary', 'allow', 'accept'];
    return { status: r.status, headers: Object.fromEntries(pick.map((h) => [h, r.headers.get(h)])), body: comparable(parsed) };
  }

  /** How many GraphQL requests each handler of the hub answered. */
  async function handled(hub: TestHub): Promise<{ direct: number; yoga: number }> {
    const text = await (await fetch(`${hub.url}/metrics`)).text();
    const count = (handler: string) => Number(new RegExp(`hub_graphql_requests_total\\{handler="${handler}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    return { direct: count('direct'), yoga: count('yoga') };
  }

  /** The answers of both hubs, and which handler of the direct hub answered. */
  async function both(body: string, headers: Record<string, string> = {}, path?: string) {
    const before = await handled(direct);
    const mine = await ask(direct, body, headers, path);
    const after = await handled(direct);
    const handler = after.direct > before.direct ? 'direct' : after.yoga > before.yoga ? 'yoga' : 'none';
    const theirs = await ask(yoga, body, headers, path);
    return { mine, theirs, handler };
  }

  const lookup = (id: string, itemCode = ITEM) => JSON.stringify({ query: PERSON, variables: { id, p: { itemCode, caseId: 'FZ-1' } } });

  it('answers a lookup itself, as yoga would answer it', async () => {
    const { mine, theirs, handler } = await both(lookup(ALICE));
    expect(mine.body).toEqual({ data: { person: { idNumber: expect.any(String), name: '王丽', gender: '女', birthDate: '1949-12-31' } }, extensions: { auditIds: 1 } });
    expect(mine).toEqual(theirs);
    expect(handler).toBe('direct');
    const yogaOnly = await handled(yoga);
    expect(yogaOnly.direct).toBe(0);
    expect(yogaOnly.yoga).toBeGreaterThan(0);
  });

  const cases: [string, 'direct' | 'yoga', string, Record<string, string>?][] = [
    ['a plain query', 'direct', JSON.stringify({ query: '{ viewer { clientId roles } }' })],
    ['named operations, one chosen', 'direct', JSON.stringify({ query: 'query A { viewer { clientId } } query B { viewer { roles } }', operationName: 'B' })],
    ['named operations, none chosen', 'yoga', JSON.stringify({ query: 'query A { viewer { clientId } } query B { viewer { roles } }' })],
    ['an unknown operation name', 'yoga', JSON.stringify({ query: 'query A { viewer { clientId } }', operationName: 'C' })],
    ['a refused read (INVALID_ID_NUMBER, audited)', 'direct', lookup('110105194912310021')],
    ['an unregistered item (PURPOSE_REQUIRED)', 'direct', lookup(ALICE, '999999-XX-0000')],
    ['a missing variable', 'direct', JSON.stringify({ query: PERSON, variables: { id: ALICE } })],
    ['a variable of the wrong type', 'direct', JSON.stringify({ query: PERSON, variables: { id: 7, p: { itemCode: ITEM } } })],
    ['a mutation refused to a consumer', 'direct', JSON.stringify({ query: 'mutation { revokeGrant(id: "00000000-0000-0000-0000-000000000000", reason: "x") { id } }' })],
    ['101 subjects in one call (BAD_USER_INPUT)', 'direct', JSON.stringify({ query: 'query($ids: [String!]!) { persons(idNumbers: $ids, purpose: { itemCode: "350100-DJ-0001" }) { name } }', variables: { ids: Array.from({ length: 101 }, () => ALICE) } })],
    ['null params beside the query', 'direct', JSON.stringify({ query: '{ viewer { clientId } }', variables: null, operationName: null, extensions: null })],
    ['extensions given', 'direct', JSON.stringify({ query: '{ viewer { clientId } }', extensions: { persistedQuery: null } })],
    ['a syntax error', 'yoga', JSON.stringify({ query: '{ viewer { clientId }' })],
    ['an unknown field', 'yoga', JSON.stringify({ query: '{ viewer { nosuch } }' })],
    ['too many aliases', 'yoga', JSON.stringify({ query: `{ ${Array.from({ length: 30 }, (_, i) => `a${i}: viewer { clientId }`).join(' ')} }` })],
    ['an unknown parameter', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }', foo: 1 })],
    ['variables as a list', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }', variables: [1] })],
    ['a query that is not a string', 'yoga', JSON.stringify({ query: 5 })],
    ['no query', 'yoga', JSON.stringify({ variables: {} })],
    ['a batch', 'yoga', JSON.stringify([{ query: '{ viewer { clientId } }' }])],
    ['Accept: application/graphql-response+json', 'direct', lookup(ALICE), { accept: 'application/graphql-response+json' }],
    ['Accept: application/graphql-response+json, an error', 'direct', JSON.stringify({ query: PERSON, variables: { id: ALICE } }), { accept: 'application/graphql-response+json' }],
    ['Accept: both JSON types', 'direct', lookup(ALICE), { accept: 'application/graphql-response+json, application/json;q=0.9' }],
    ['Accept: */*', 'direct', lookup(ALICE), { accept: '*/*' }],
    ['Accept: an event stream', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }' }), { accept: 'text/event-stream' }],
    ['Accept: multipart', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }' }), { accept: 'multipart/mixed' }],
    ['Accept: another charset', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }' }), { accept: 'application/json; charset=iso-8859-1' }],
    ['Accept: nothing JSON', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }' }), { accept: 'text/html' }],
    ['a browser’s request (CORS)', 'yoga', JSON.stringify({ query: '{ viewer { clientId } }' }), { origin: 'https://approval.example.gov.cn' }],
    ['content type with a charset', 'direct', JSON.stringify({ query: '{ viewer { clientId } }' }), { 'content-type': 'application/json; charset=utf-8' }],
  ];

  it.each(cases)('answers %s as yoga does (handler: %s)', async (_name, expected, body, headers) => {
    const { mine, theirs, handler } = await both(body, headers);
    expect(mine).toEqual(theirs);
    expect(handler).toBe(expected);
  });

  it('compiles a document on its third execution and answers as before, data and errors alike', async () => {
    const compiled = async () => Number(/hub_graphql_documents_compiled_total\{outcome="compiled"\} (\d+)/.exec(await (await fetch(`${direct.url}/metrics`)).text())?.[1] ?? 0);
    // provenance is resolved by a function of the record (graphql-js's default resolver calls one, graphql-jit's does not)
    const withProvenance = 'query($id: String!, $p: PurposeInput!) { person(idNumber: $id, purpose: $p) { idNumber name provenance { connector version } } }';
    const asks = [
      JSON.stringify({ query: withProvenance, variables: { id: ALICE, p: { itemCode: ITEM, caseId: 'FZ-1' } } }),
      JSON.stringify({ query: withProvenance, variables: { id: '110105194912310021', p: { itemCode: ITEM, caseId: 'FZ-1' } } }), // INVALID_ID_NUMBER
      JSON.stringify({ query: withProvenance, variables: { id: ALICE, p: { itemCode: '350100-XX-9999', caseId: 'FZ-1' } } }), // not granted
    ];
    const before = await compiled();
    const answers: unknown[][] = [];
    for (let round = 0; round < 4; round++) answers.push(await Promise.all(asks.map(async (body) => (await ask(direct, body)).body)));
    expect(await compiled()).toBe(before + 1); // one document, compiled once, on its third execution
    expect(answers[0]![0]).toEqual({ data: { person: { idNumber: expect.any(String), name: '王丽', provenance: { connector: 'pop-file', version: 1 } } }, extensions: { auditIds: 1 } });
    expect((answers[0]![1] as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('INVALID_ID_NUMBER');
    expect((answers[0]![2] as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toMatch(/^(GRANT_MISSING|PURPOSE_REQUIRED)$/);
    for (const later of answers.slice(1)) expect(later).toEqual(answers[0]);
  });

  it('leaves a URL with a query string to yoga (whose health check reads the whole URL)', async () => {
    const { mine, theirs, handler } = await both(JSON.stringify({ query: '{ viewer { clientId } }' }), {}, '/graphql?probe=/health');
    expect(mine).toEqual(theirs);
    expect(handler).toBe('yoga');
  });

  it('masks a value that cannot be written as JSON, as yoga does, with the same status', async () => {
    // a bare engine whose JSON scalar hands back a BigInt: JSON.stringify throws after execution
    const logger = createLogger({ level: 'silent' });
    const engine = createYoga({
      logging: false,
      landingPage: false,
      graphiql: false,
      maskedErrors: { maskError: (e, m) => maskError(e, m, logger) },
      schema: createSchema({ typeDefs: 'scalar J type Query { x: J }', resolvers: { J: new GraphQLScalarType({ name: 'J', serialize: (v) => v }), Query: { x: () => ({ a: 1n }) } } }),
    });
    const options: DirectOptions = { yoga: engine as unknown as DirectOptions['yoga'], finish: (r) => r, maskError: (e) => maskError(e, 'Unexpected error.', logger) };
    const answers: { status: number; type: string | null; body: string }[] = [];
    let directly = 0;
    for (const useDirect of [true, false]) {
      const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
          const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          const answer = useDirect ? directRequest(options, req, body, {}) : null;
          if (answer) return void answer(res).then(() => directly++);
          (req as http.IncomingMessage & { body?: unknown }).body = body;
          void engine.handle(req, res, {} as never);
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const r = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ x }' }) });
        answers.push({ status: r.status, type: r.headers.get('content-type'), body: await r.text() });
      } finally {
        server.close();
      }
    }
    expect(directly).toBe(1);
    expect(answers[0]).toEqual(answers[1]);
    expect(JSON.parse(answers[0]!.body)).toEqual({ errors: [{ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } }] });
  });

  it('counts each error once, with its code', async () => {
    const count = async () => {
      const text = await (await fetch(`${direct.url}/metrics`)).text();
      return Number(/hub_graphql_errors_total\{code="INVALID_ID_NUMBER"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    const before = await count();
    await ask(direct, lookup('110105194912310021'));
    expect(await count()).toBe(before + 1);
  });

  it('takes only requests whose answer cannot differ from yoga’s', () => {
    expect(directParams({ query: '{ a }' })).toEqual({ query: '{ a }' });
    expect(directParams({ query: '{ a }', variables: {}, operationName: 'A', extensions: {} })).not.toBeNull();
    expect(directParams({ query: '{ a }', other: null })).not.toBeNull();
    for (const body of [null, 'text', [{ query: '{ a }' }], {}, { query: 1 }, { query: '{ a }', variables: [] }, { query: '{ a }', variables: 'x' }, { query: '{ a }', extensions: 1 }, { query: '{ a }', operationName: 2 }, { query: '{ a }', other: 1 }]) {
      expect(directParams(body)).toBeNull();
    }
    expect(isJsonContentType('application/json')).toBe(true);
    expect(isJsonContentType('application/json; charset=utf-8')).toBe(true);
    expect(isJsonContentType('application/graphql+json')).toBe(true);
    expect(isJsonContentType('application/jsonx')).toBe(false);
    expect(isJsonContentType('text/plain, application/json')).toBe(false);
    expect(isJsonContentType(undefined)).toBe(false);
    expect(regularMediaType(undefined)).toBe('application/json');
    expect(regularMediaType('*/*')).toBe('application/json');
    expect(regularMediaType('application/*')).toBe('application/json');
    expect(regularMediaType('application/graphql-response+json')).toBe('application/graphql-response+json');
    expect(regularMediaType('application/graphql-response+json, application/json')).toBe('application/graphql-response+json');
    expect(regularMediaType('application/json, application/graphql-response+json')).toBe('application/json');
    expect(regularMediaType('text/event-stream, application/json')).toBe('application/json');
    expect(regularMediaType('text/event-stream')).toBeNull();
    expect(regularMediaType('application/json; charset=latin1')).toBeNull();
  });
});
