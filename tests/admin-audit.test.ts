import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateClientKey } from '../auth/client-file.ts';
import { addClientKey, createClient, disableClient, enableClient, revokeClientKey, rotateClientKey } from '../auth/clients.ts';
import { auditPublicKey, retireHubKey, rotateHubKey } from '../auth/keys.ts';
import { verifyAuditLog } from '../audit/checkpoints.ts';
import { auditEntries } from '../audit/schema.ts';
import { createConnector } from '../connectors/registry.ts';
import { systemContext, type HubContext } from '../core/context.ts';
import { EgressPolicy } from '../core/egress.ts';
import { createLogger } from '../core/logger.ts';
import { openDatabase, rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { deliverNotifications, setWebhook } from '../directory/notifications.ts';
import { registerResource, publishResource } from '../directory/resources.ts';
import { departmentWebhooks } from '../directory/schema.ts';
import { createPgDatabase, createTestDatabase, drivers, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { runCli } from './helpers/cli.ts';

const [POLICE, MARKET, , , DATA] = DEMO_DEPARTMENTS.map((d) => d.code);
const log = createLogger({ level: 'silent' });

const CODE = '1-01-001/000901';
function resourceInput(over: Record<string, unknown> = {}) {
  return {
    code: CODE,
    name: '人口基础信息（审计）',
    category: 'BASE',
    baseKind: 'POPULATION',
    providerCode: POLICE,
    summary: '户籍人口',
    sharingType: 'CONDITIONAL',
    sharingCondition: '办理事项时核验身份',
    fields: [
      { code: 'idNumber', name: '公民身份号码', dataType: 'C', length: 18, sensitive: true },
      { code: 'name', name: '姓名', dataType: 'C', length: 50 },
    ],
    ...over,
  };
}

/** A listener on loopback that records every request: no webhook may reach it. */
async function catcher() {
  const hits: string[] = [];
  const server = http.createServer((req, res) => {
    hits.push(`${req.method} ${req.url}`);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { hits, port: (server.address() as { port: number }).port, close: () => new Promise((r) => server.close(r)) };
}

describe.each(drivers())('every administrative act is an audit entry, written with the act (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let police: string;
  let policeId: string;
  let admin: string;
  let adminId: string;
  let auditor: string;
  let startSeq: number;

  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => (await hub.graphql(query, token, variables)).body;
  const ok = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const body = await gql(token, query, variables);
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  };
  /** The entries of an operation written since the test file began, oldest first. */
  const entries = (operation: string) =>
    tdb.database.db
      .select()
      .from(auditEntries)
      .where(and(eq(auditEntries.operation, operation), gt(auditEntries.seq, startSeq)))
      .orderBy(asc(auditEntries.seq));
  const logged = async (operation: string) => {
    const body = await ok(auditor, `query($f: AccessLogFilter) { accessLog(filter: $f, first: 50) { edges { node { clientId department operation resourceCode subject outcome reason } } } }`, { f: { operation } });
    return (body.accessLog as { edges: { node: Record<string, unknown> }[] }).edges.map((e) => e.node).reverse();
  };
  const providerCtx = (clientId: string, department: string): HubContext => ({
    principal: { kind: 'client', clientId, name: 'p', department, roles: ['provider'], permissions: [], tokenId: '', expiresAt: 0 },
    requestId: 'req-test',
    log,
    db: tdb.database.db,
  });

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    const p = await hub.newClient(['provider'], { department: POLICE! });
    policeId = p.client_id;
    police = await hub.token(p);
    const a = await hub.newClient(['admin'], { department: DATA! });
    adminId = a.client_id;
    admin = await hub.token(a);
    auditor = await hub.token(await hub.newClient(['auditor'], { department: DATA! }));
    startSeq = (await rows<{ n: number }>(tdb.database.db, sql`select coalesce(max(seq), 0)::int8 as n from audit_entries`))[0]!.n;
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('records a resource registered, changed (with the diff), published, changed again and retired, naming the acting client', async () => {
    await ok(police, `mutation($i: ResourceInput!) { registerResource(input: $i) { code } }`, { i: resourceInput() });
    await ok(police, `mutation($i: ResourceInput!) { updateResource(code: "${CODE}", input: $i) { version } }`, { i: resourceInput({ summary: '户籍人口（修订）' }) });
    await ok(admin, `mutation { publishResource(code: "${CODE}") { status } }`); // a BASE resource: the operator's
    await ok(admin, `mutation($i: ResourceInput!) { updateResource(code: "${CODE}", input: $i) { version } }`, {
      i: resourceInput({ summary: '户籍人口（修订）', fields: [...resourceInput().fields, { code: 'gender', name: '性别', dataType: 'C', length: 1 }] }),
    });
    await ok(police, `mutation { retireResource(code: "${CODE}", reason: "由新版取代") { status } }`);

    const [reg] = await entries('RESOURCE_REGISTER');
    expect(reg).toMatchObject({ clientId: policeId, department: POLICE, resourceCode: CODE, outcome: 'DONE', requestId: expect.any(String) });
    expect(reg!.details).toMatchObject({ version: 1, name: '人口基础信息（审计）', fields: ['idNumber', 'name'] });
    const updates = await entries('RESOURCE_UPDATE');
    expect(updates).toHaveLength(2);
    expect(updates[0]).toMatchObject({ clientId: policeId, resourceCode: CODE, details: { version: 1, changed: { summary: { from: '户籍人口', to: '户籍人口（修订）' } } } });
    expect(Object.keys((updates[0]!.details as { changed: object }).changed)).toEqual(['summary']);
    expect(updates[1]).toMatchObject({ clientId: adminId, department: DATA, details: { version: 2, previousVersion: 1, changed: { fields: { added: ['gender'], removed: [], changed: [] } } } });
    expect(await entries('RESOURCE_PUBLISH')).toEqual([expect.objectContaining({ clientId: adminId, resourceCode: CODE, details: { version: 1 } })]);
    expect(await entries('RESOURCE_RETIRE')).toEqual([expect.objectContaining({ clientId: policeId, resourceCode: CODE, reason: '由新版取代', details: { version: 2 } })]);

    // an auditor sees each of them, with the acting client
    expect(await logged('RESOURCE_REGISTER')).toEqual([expect.objectContaining({ clientId: policeId, department: POLICE, resourceCode: CODE, outcome: 'DONE' })]);
    expect((await logged('RESOURCE_UPDATE')).map((e) => e.clientId)).toEqual([policeId, adminId]);
    expect(await logged('RESOURCE_RETIRE')).toEqual([expect.objectContaining({ clientId: policeId, reason: '由新版取代' })]);
  });

  it('records nothing for an act refused', async () => {
    const market = await hub.token(await hub.newClient(['provider'], { department: MARKET! }));
    const before = (await entries('RESOURCE_REGISTER')).length;
    expect((await gql(market, `mutation($i: ResourceInput!) { registerResource(input: $i) { code } }`, { i: resourceInput({ code: '1-01-001/000902' }) })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await gql(police, `mutation($i: ResourceInput!) { registerResource(input: $i) { code } }`, { i: resourceInput() })).errors?.[0]?.extensions?.code).toBe('CONFLICT');
    expect(await entries('RESOURCE_REGISTER')).toHaveLength(before);
  });

  it('records a webhook set with its url and never its secret', async () => {
    const policy = EgressPolicy.fromConfig('127.0.0.1', { ports: [] });
    const url = 'http://127.0.0.1:9/hub-hook';
    const { secret } = await setWebhook(providerCtx(policeId, POLICE!), hub.services.masterKey, policy, POLICE!, url);
    const [e] = await entries('WEBHOOK_SET');
    expect(e).toMatchObject({ clientId: policeId, department: POLICE, outcome: 'DONE', requestId: 'req-test', details: { department: POLICE, url } });
    expect(JSON.stringify(e)).not.toContain(secret);
    expect(await logged('WEBHOOK_SET')).toEqual([expect.objectContaining({ clientId: policeId })]);
  });

  describe('setWebhook refuses addresses it must not call, storing and sending nothing', () => {
    const refusedUrls = (port: number) => [
      ['loopback', `http://127.0.0.1:${port}/hook`],
      ['loopback by name', `http://localhost:${port}/hook`],
      ['IPv6 loopback', `http://[::1]:${port}/hook`],
      ['metadata', 'http://169.254.169.254/latest/meta-data/'],
      ['private', 'http://10.1.2.3/hook'],
      ['userinfo', 'https://user:pass@hooks.example.org/hook'],
      ['not http', 'ftp://hooks.example.org/hook'],
      ['file', 'file:///etc/passwd'],
      ['relative', '/hook'],
    ];

    it('through GraphQL, with BAD_USER_INPUT naming url (no HUB_EGRESS_ALLOW)', async () => {
      const c = await catcher();
      try {
        for (const [why, url] of refusedUrls(c.port)) {
          const r = await gql(police, `mutation($d: String!, $u: String!) { setWebhook(department: $d, url: $u) { url secret } }`, { d: POLICE, u: url });
          expect(r.errors?.[0]?.extensions, `${why}: ${url}`).toMatchObject({ code: 'BAD_USER_INPUT', field: 'url' });
        }
        expect(await tdb.database.db.select().from(departmentWebhooks).where(eq(departmentWebhooks.departmentCode, POLICE!))).toEqual(
          // only the webhook the test above set through the domain function, never one of these
          [expect.objectContaining({ url: 'http://127.0.0.1:9/hub-hook' })],
        );
        await deliverNotifications(tdb.database.db, hub.services.masterKey, hub.services.egress, log, { timeoutMs: 500 });
        expect(c.hits).toEqual([]);
        expect(await entries('WEBHOOK_SET')).toHaveLength(1);
      } finally {
        await c.close();
      }
    });

    it('in the domain function, with the policy it is given', async () => {
      const policy = EgressPolicy.fromConfig(undefined, { ports: [] });
      for (const [why, url] of refusedUrls(9)) {
        await expect(setWebhook(providerCtx(policeId, POLICE!), hub.services.masterKey, policy, POLICE!, url), `${why}: ${url}`).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: 'url' } });
      }
      expect(await entries('WEBHOOK_SET')).toHaveLength(1);
    });
  });

  it('records the clients\' acts from the command line as hub-cli, or as the actor given', async () => {
    const key = async () => (await generateClientKey('ES256')).publicJwk;
    const c = await createClient(tdb.database.db, { name: '审计测试', department: MARKET!, roles: ['consumer'], jwk: await key() });
    await disableClient(tdb.database.db, c.clientId, '疑似泄露');
    await enableClient(tdb.database.db, c.clientId, { clientId: adminId, department: DATA! });
    const added = await addClientKey(tdb.database.db, c.clientId, await key());
    const rotated = await rotateClientKey(tdb.database.db, c.clientId, await key());
    const newest = rotated.keys.at(-1)!.kid;
    await revokeClientKey(tdb.database.db, c.clientId, newest);

    const [created] = await entries('CLIENT_CREATE').then((es) => es.filter((e) => (e.details as { client?: string }).client === c.clientId));
    expect(created).toMatchObject({ clientId: 'hub-cli', department: null, outcome: 'DONE', details: { client: c.clientId, name: '审计测试', department: MARKET, roles: ['consumer'], kid: c.keys[0]!.kid } });
    expect(await entries('CLIENT_DISABLE')).toEqual([expect.objectContaining({ clientId: 'hub-cli', reason: '疑似泄露', details: { client: c.clientId } })]);
    expect(await entries('CLIENT_ENABLE')).toEqual([expect.objectContaining({ clientId: adminId, department: DATA, details: { client: c.clientId } })]);
    expect(await entries('CLIENT_ADD_KEY')).toEqual([expect.objectContaining({ clientId: 'hub-cli', details: { client: c.clientId, kid: added.keys.at(-1)!.kid, revoked: [] } })]);
    expect(await entries('CLIENT_ROTATE_KEY')).toEqual([
      expect.objectContaining({ details: { client: c.clientId, kid: newest, revoked: expect.arrayContaining([c.keys[0]!.kid, added.keys.at(-1)!.kid]) } }),
    ]);
    expect(await entries('CLIENT_REVOKE_KEY')).toEqual([expect.objectContaining({ details: { client: c.clientId, kid: newest } })]);
    // nothing of a key but its kid
    for (const op of ['CLIENT_CREATE', 'CLIENT_ADD_KEY', 'CLIENT_ROTATE_KEY']) for (const e of await entries(op)) expect(JSON.stringify(e.details)).not.toMatch(/"(x|y|d)":/);
    // an act that fails leaves no entry
    await expect(disableClient(tdb.database.db, 'no-such-client', 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await entries('CLIENT_DISABLE')).toHaveLength(1);
    expect((await logged('CLIENT_ENABLE'))[0]).toMatchObject({ clientId: adminId });
  });

  it('records the hub\'s keys rotated and retired', async () => {
    const { kid, superseded } = await rotateHubKey(tdb.database.db, hub.services.masterKey, 'token');
    await retireHubKey(tdb.database.db, superseded[0]!, { clientId: adminId, department: DATA! });
    expect(await entries('HUB_KEY_ROTATE')).toEqual([expect.objectContaining({ clientId: 'hub-cli', details: { purpose: 'token', kid, superseded } })]);
    expect(await entries('HUB_KEY_RETIRE')).toEqual([expect.objectContaining({ clientId: adminId, details: { purpose: 'token', kid: superseded[0] } })]);
    await expect(retireHubKey(tdb.database.db, kid)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await entries('HUB_KEY_RETIRE')).toHaveLength(1);
  });

  it('leaves a log that still verifies', async () => {
    const report = await verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid));
    expect(report).toMatchObject({ ok: true });
  });
});

const cli = runCli;

describe.runIf(pgAvailable())('hub connectors approve and secret set (command line)', () => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let env: Record<string, string>;
  const SECRET = 'rk-Vx93-never-printed';
  const ops = async (operation: string) => tdb.database.db.select().from(auditEntries).where(eq(auditEntries.operation, operation)).orderBy(asc(auditEntries.seq));

  beforeAll(async () => {
    tdb = await createPgDatabase();
    hub = await startTestHub(await openDatabase({ databaseUrl: tdb.url!, poolSize: 4, appRole: true }));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-connectors-cli-'));
    env = { DATABASE_URL: tdb.url!, HUB_MASTER_KEY: TEST_MASTER_KEY, HUB_DATA_DIR: dir, HUB_EGRESS_ALLOW: '127.0.0.1' };
    // 公安 provides the population base resource, so its connector may write population records
    const sys = systemContext(tdb.database.db, log, DATA!);
    await registerResource(sys, resourceInput({ code: '1-01-001/000950' }));
    await publishResource(sys, '1-01-001/000950');
    const provider = { ...sys, principal: { ...sys.principal, clientId: 'police-provider', department: POLICE!, roles: ['provider' as const] } };
    await createConnector(provider, { id: 'cli-approve', name: '人口库', departmentCode: POLICE!, kind: 'population', adapter: 'http', config: { url: 'http://127.0.0.1:9/people', auth: { type: 'bearer', secret: 'rk-token' } } });
  });
  afterAll(async () => {
    await hub?.close();
    await hub?.services.database.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to approve while the secret the connector names is not set', async () => {
    const r = await cli(['connectors', 'approve', 'cli-approve'], env);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^hub: BAD_USER_INPUT: .*rk-token/);
  });

  it('sets a secret from stdin (never argv), rotates it, and prints only its name and version', async () => {
    const first = await cli(['connectors', 'secret', 'set', POLICE!, 'rk-token'], env, `${SECRET}\n`);
    expect(first.stderr).toBe('');
    expect(JSON.parse(first.stdout)).toMatchObject({ departmentCode: POLICE, name: 'rk-token', version: 1 });
    const second = await cli(['connectors', 'secret', 'set', POLICE!, 'rk-token'], env, SECRET);
    expect(JSON.parse(second.stdout)).toMatchObject({ version: 2 });
    for (const r of [first, second]) expect(r.stdout + r.stderr).not.toContain(SECRET);
    const empty = await cli(['connectors', 'secret', 'set', POLICE!, 'rk-token'], env, '');
    expect(empty.status).toBe(1);
    expect(empty.stderr).toMatch(/^hub: secret: no value on stdin/);
    const entries = await ops('SOURCE_SECRET_SET');
    expect(entries.map((e) => e.clientId)).toEqual(['hub-cli', 'hub-cli']);
    expect(JSON.stringify(entries)).not.toContain(SECRET);
  });

  it('approves the connector as hub-cli, in the audit log', async () => {
    const r = await cli(['connectors', 'approve', 'cli-approve'], env);
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toMatchObject({ id: 'cli-approve', status: 'APPROVED', approvedBy: 'hub-cli' });
    expect(await ops('CONNECTOR_APPROVE')).toEqual([expect.objectContaining({ clientId: 'hub-cli', outcome: 'DONE' })]);
    const again = await cli(['connectors', 'approve', 'cli-approve'], env);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/^hub: CONFLICT: /);
  });
});
