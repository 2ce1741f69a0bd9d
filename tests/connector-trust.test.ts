import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditLog } from '../audit/checkpoints.ts';
import { auditPublicKey } from '../auth/keys.ts';
import { seal } from '../auth/master-key.ts';
import { createDepartment } from '../directory/departments.ts';
import { recordHistory, recordsBySubject } from '../basedata/store.ts';
import { createConnector } from '../connectors/registry.ts';
import { runSync } from '../connectors/sync.ts';
import { startSimulator, type Simulator } from '../connectors/simulators/index.ts';
import { systemContext } from '../core/context.ts';
import { idNumberCheckChar } from '../core/ids.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { deliverNotifications } from '../directory/notifications.ts';
import { startInlineRunner, type InlineRunner } from '../workers/inline.ts';
import { createTestDatabase, drivers, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { approvedSource, hostOf, MASTER_KEY, testSources } from './helpers/sources.ts';

const log = createLogger({ level: 'silent' });
const [POLICE, MARKET, CREDIT, APPROVAL, DATA, HEALTH] = DEMO_DEPARTMENTS.map((d) => d.code) as [string, string, string, string, string, string];

/** A catcher on loopback: every request that reaches it, with its headers and body. */
async function catcher() {
  const seen: { url: string; headers: http.IncomingHttpHeaders; body: string }[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ url: req.url ?? '', headers: req.headers, body });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ records: [], next: null }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { seen, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

function person(i: number, over: Record<string, unknown> = {}) {
  const first17 = `350102${String(19600101 + (i % 28)).slice(0, 8)}${String(100 + (i % 900)).padStart(3, '0')}`;
  const sfzh = first17 + idNumberCheckChar(first17);
  return { id: `T${i}`, sfzh, xm: `测试${i}`, xb: Number(sfzh[16]) % 2 === 1 ? '1' : '2', csrq: sfzh.slice(6, 14), hyzk: '10', swbs: '0', ...over };
}

describe.each(drivers())('the trust boundaries of connectors (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let runner: InlineRunner;
  let sim: Simulator;
  let trap: Awaited<ReturnType<typeof catcher>>;
  let importDir: string;
  let police: string;
  let health: string;
  let admin: string;
  let otherAdmin: string;
  let auditor: string;
  let adminId: string;
  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => (await hub.graphql(query, token, variables)).body;
  const errorOf = (body: { errors?: { extensions?: Record<string, unknown> }[] }) => body.errors?.[0]?.extensions;

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    sim = await startSimulator({ kind: 'population', records: 300, auth: { type: 'bearer', token: 'sim-bearer-value' } });
    trap = await catcher();
    importDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-import-'));
    // the simulator is listed for the egress policy; the catcher is not
    hub = await startTestHub(tdb.database, { env: { HUB_EGRESS_ALLOW: hostOf(sim.url), HUB_IMPORT_DIR: importDir }, jobs: { enqueue: (name, data) => runner.enqueue(name, data) } });
    runner = await startInlineRunner({ database: tdb.database, db: tdb.database.db, logger: log, masterKey: Buffer.from(TEST_MASTER_KEY, 'hex'), egress: hub.services.egress, importDir });
    police = await hub.token(await hub.newClient(['provider'], { department: POLICE }));
    health = await hub.token(await hub.newClient(['provider'], { department: HEALTH }));
    const adminFile = await hub.newClient(['admin'], { department: DATA });
    adminId = adminFile.client_id;
    admin = await hub.token(adminFile);
    otherAdmin = await hub.token(await hub.newClient(['admin'], { department: DATA }));
    auditor = await hub.token(await hub.newClient(['auditor'], { department: DATA }));
    // tests have no directory: the operator designates 公安 as the population source
    expect(errorOf(await gql(admin, `mutation { designateBaseSource(kind: population, department: "${POLICE}", reason: "人口基础库提供方") { departmentCode } }`))).toBeUndefined();
  });
  afterAll(async () => {
    await runner?.stop();
    await hub?.close();
    await sim?.close();
    await trap?.close();
    await tdb?.drop();
    fs.rmSync(importDir, { recursive: true, force: true });
  });

  const CREATE = `mutation($input: ConnectorInput!) { createConnector(input: $input) { id status } }`;
  const input = (id: string, config: Record<string, unknown>, over: Record<string, unknown> = {}) => ({ id, name: id, departmentCode: POLICE, kind: 'population', adapter: 'http', config, ...over });

  it('refuses a connector naming any environment variable, and nothing reaches the catcher', async () => {
    for (const [auth, field] of [
      [{ type: 'apikey', header: 'x-api-key', keyEnv: 'HUB_MASTER_KEY' }, 'config.auth.keyEnv'],
      [{ type: 'bearer', tokenEnv: 'DATABASE_URL' }, 'config.auth.tokenEnv'],
      [{ type: 'hmac', keyId: 'k', secretEnv: 'HUB_DEMO_CREDIT_SECRET' }, 'config.auth.secretEnv'],
    ] as const) {
      const body = await gql(police, CREATE, { input: input(`env-${field.split('.').pop()!.toLowerCase()}`, { url: `${sim.url}`, auth }) });
      expect(errorOf(body)).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    const sqlEnv = await gql(police, CREATE, { input: input('env-sql', { urlEnv: 'DATABASE_URL', table: 'hub_keys' }, { adapter: 'sql' }) });
    expect(errorOf(sqlEnv)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'config.urlEnv' });
    expect(trap.seen).toHaveLength(0);
  });

  it('refuses internal addresses as sources when set and when run, and sends no secret there', async () => {
    const set = await gql(police, CREATE, { input: input('to-trap', { url: trap.url, auth: { type: 'none' } }) });
    expect(errorOf(set)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'config.url' });
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/', 'http://[::1]/', `${hub.url}/graphql`]) {
      expect(errorOf(await gql(police, CREATE, { input: input('to-internal', { url, auth: { type: 'none' } }) })), url).toMatchObject({ code: 'BAD_USER_INPUT', field: 'config.url' });
    }
    // registered behind the policy's back (no check at the door): the run refuses it all the same
    await approvedSource(tdb.database.db, input('trap-direct', { url: trap.url, auth: { type: 'bearer', secret: 'trap-token' } }), { secret: { name: 'trap-token', value: 'must-not-leave' }, designate: false });
    const run = await runSync(tdb.database, 'trap-direct', { masterKey: MASTER_KEY, egress: hub.services.egress });
    expect(run).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/EGRESS_REFUSED \(ADDRESS\)/) });
    expect(run.error).not.toContain('must-not-leave');
    expect(trap.seen).toHaveLength(0);
  });

  it('runs a connector only as an admin other than its drafter approved it, and a change returns it to draft', async () => {
    const secret = await gql(police, `mutation { setSourceSecret(department: "${POLICE}", name: "sim-token", value: "sim-bearer-value") { name version } }`);
    expect(secret.data?.setSourceSecret).toEqual({ name: 'sim-token', version: 1 });
    const created = await gql(police, CREATE, { input: input('pop-sim', { url: sim.url, auth: { type: 'bearer', secret: 'sim-token' }, pageSize: 100 }) });
    expect(created.data?.createConnector).toEqual({ id: 'pop-sim', status: 'DRAFT' });
    expect(errorOf(await gql(police, `mutation { runConnector(id: "pop-sim") { connectorId } }`))).toMatchObject({ code: 'FORBIDDEN', reason: 'NOT_APPROVED' });
    expect(errorOf(await gql(police, `mutation { approveConnector(id: "pop-sim") { status } }`))).toMatchObject({ code: 'FORBIDDEN' });
    // a run that bypasses the door is refused by the engine too, and recorded
    expect(await runSync(tdb.database, 'pop-sim', { masterKey: MASTER_KEY, egress: hub.services.egress })).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^NOT_APPROVED/) });

    const approved = await gql(admin, `mutation { approveConnector(id: "pop-sim") { status approvedBy approvedDigest } }`);
    expect(approved.data?.approveConnector).toMatchObject({ status: 'APPROVED', approvedBy: adminId });
    const run = await gql(police, `mutation { runConnector(id: "pop-sim") { connectorId } }`);
    expect(run.errors, JSON.stringify(run.errors)).toBeUndefined();
    expect(run.data?.runConnector).toEqual({ connectorId: 'pop-sim' });
    const runs = async () => ((await gql(police, `{ syncRuns(connectorId: "pop-sim") { status fetched error } }`)).data?.syncRuns ?? []) as { status: string; fetched: number }[];
    await expect.poll(async () => (await runs())[0]?.status, { timeout: 20_000 }).toBe('SUCCEEDED');
    expect((await runs())[0]!.fetched).toBe(300);

    // an admin who drafted a change cannot approve it himself; a change is DRAFT until another admin approves it
    const update = `mutation($input: ConnectorInput!) { updateConnector(id: "pop-sim", input: $input) { status } }`;
    expect((await gql(admin, update, { input: input('pop-sim', { url: sim.url, auth: { type: 'bearer', secret: 'sim-token' }, pageSize: 50 }) })).data?.updateConnector).toEqual({ status: 'DRAFT' });
    expect(errorOf(await gql(admin, `mutation { approveConnector(id: "pop-sim") { status } }`))).toMatchObject({ code: 'FORBIDDEN', reason: 'FOUR_EYES' });
    expect(errorOf(await gql(police, `mutation { runConnector(id: "pop-sim") { connectorId } }`))).toMatchObject({ code: 'FORBIDDEN', reason: 'NOT_APPROVED' });
    expect((await gql(otherAdmin, `mutation { approveConnector(id: "pop-sim") { status } }`)).data?.approveConnector).toEqual({ status: 'APPROVED' });
    // an approval cannot be forged by editing the row: the digest of what runs is compared with what was approved
    await tdb.database.db.execute(sql`update connectors set config = jsonb_set(config, '{url}', to_jsonb(${trap.url}::text)) where id = 'pop-sim'`);
    expect(await runSync(tdb.database, 'pop-sim', { masterKey: MASTER_KEY, egress: hub.services.egress })).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^NOT_APPROVED/) });
    expect(trap.seen).toHaveLength(0);
  });

  it('lets no client that changed a connector since its approval approve it, and approves only what was reviewed', async () => {
    const update = `mutation($input: ConnectorInput!) { updateConnector(id: "pop-sim", input: $input) { status draftedBy } }`;
    const reviewed = (await gql(admin, `{ connector(id: "pop-sim") { digest } }`)).data?.connector as { digest: string };
    // one admin changes the source, a provider touches the name after him: the first admin still may not approve
    expect((await gql(admin, update, { input: input('pop-sim', { url: sim.url, auth: { type: 'bearer', secret: 'sim-token' }, pageSize: 60 }) })).data?.updateConnector).toMatchObject({ status: 'DRAFT' });
    const both = (await gql(police, update, { input: input('pop-sim', { url: sim.url, auth: { type: 'bearer', secret: 'sim-token' }, pageSize: 60 }, { name: 'renamed' }) })).data?.updateConnector as { draftedBy: string[] };
    expect(both.draftedBy).toContain(adminId);
    expect(errorOf(await gql(admin, `mutation { approveConnector(id: "pop-sim") { status } }`))).toMatchObject({ code: 'FORBIDDEN', reason: 'FOUR_EYES' });
    // the other admin reviewed an earlier configuration: approving with its digest is refused
    expect(errorOf(await gql(otherAdmin, `mutation { approveConnector(id: "pop-sim", digest: "${reviewed.digest}") { status } }`))).toMatchObject({ code: 'CONFLICT' });
    const now = (await gql(otherAdmin, `{ connector(id: "pop-sim") { digest } }`)).data?.connector as { digest: string };
    expect((await gql(otherAdmin, `mutation { approveConnector(id: "pop-sim", digest: "${now.digest}") { status draftedBy } }`)).data?.approveConnector).toEqual({ status: 'APPROVED', draftedBy: [] });
  });

  it('follows no redirect from a source, so an approved address cannot hand the hub to another', async () => {
    const hop = http.createServer((_req, res) => {
      res.statusCode = 302;
      res.setHeader('location', `${sim.url}/records`);
      res.end();
    });
    await new Promise<void>((r) => hop.listen(0, '127.0.0.1', r));
    const hopUrl = `http://127.0.0.1:${(hop.address() as { port: number }).port}`;
    try {
      hub.services.egress.allow(new URL(hopUrl).host);
      await approvedSource(tdb.database.db, input('pop-hop', { url: hopUrl, auth: { type: 'bearer', secret: 'sim-token' } }), { designate: false });
      const before = sim.stats().requests;
      const r = await runSync(tdb.database, 'pop-hop', { masterKey: MASTER_KEY, egress: hub.services.egress });
      expect(r).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/EGRESS_REFUSED \(REDIRECT\)/) });
      expect(sim.stats().requests).toBe(before);
    } finally {
      await new Promise((r) => hop.close(r));
    }
  });

  it('gives no department authority over a base kind by declaring a resource of it', async () => {
    const REGISTER = `mutation($i: ResourceInput!) { registerResource(input: $i) { code status } }`;
    const resource = (code: string, category: string) => ({ code, name: '出生人口信息', category, baseKind: 'POPULATION', providerCode: HEALTH, sharingType: 'UNCONDITIONAL', fields: [{ code: 'idNumber', name: '公民身份号码', dataType: 'string' }] });
    expect(errorOf(await gql(health, REGISTER, { i: resource('3-01-001/000099', 'DEPARTMENT') }))).toBeUndefined();
    expect(errorOf(await gql(health, `mutation { publishResource(code: "3-01-001/000099") { status } }`))).toBeUndefined();
    expect(errorOf(await gql(health, REGISTER, { i: resource('1-01-001/000099', 'BASE') }))).toBeUndefined();
    expect(errorOf(await gql(health, `mutation { publishResource(code: "1-01-001/000099") { status } }`))).toMatchObject({ code: 'FORBIDDEN', reason: 'BASE_RESOURCE' });
    expect(errorOf(await gql(health, CREATE, { input: input('health-claim', { url: sim.url, auth: { type: 'none' } }, { departmentCode: HEALTH }) }))).toMatchObject({ code: 'FORBIDDEN', reason: 'NOT_AUTHORITATIVE' });
  });

  it('keeps source secrets write-only and bound to their department', async () => {
    const listed = await gql(police, `{ sourceSecrets(department: "${POLICE}") { name version } }`);
    expect(listed.data?.sourceSecrets).toEqual([
      { name: 'sim-token', version: 1 },
      { name: 'trap-token', version: 1 },
    ]);
    expect(JSON.stringify(listed)).not.toContain('value');
    // rotation: a new version, and the next run uses it
    expect((await gql(police, `mutation { setSourceSecret(department: "${POLICE}", name: "sim-token", value: "rotated-value-x9") { version } }`)).data?.setSourceSecret).toEqual({ version: 2 });
    expect(errorOf(await gql(health, `mutation { setSourceSecret(department: "${POLICE}", name: "sim-token", value: "x") { version } }`))).toMatchObject({ code: 'FORBIDDEN' });
    expect(errorOf(await gql(health, `{ sourceSecrets(department: "${POLICE}") { name } }`))).toMatchObject({ code: 'FORBIDDEN' });
    // stored sealed: neither value is in the database in clear
    const stored = await rows<{ value_enc: string }>(tdb.database.db, sql`select value_enc from source_secrets`);
    expect(stored.map((s) => s.value_enc).join()).not.toMatch(/rotated-value-x9|sim-bearer-value/);
    expect((await gql(police, `mutation { setSourceSecret(department: "${POLICE}", name: "sim-token", value: "sim-bearer-value") { version } }`)).data?.setSourceSecret).toEqual({ version: 3 });
    // a connector of another department naming this secret finds none of its own: approval refused
    expect(errorOf(await gql(admin, `mutation { designateBaseSource(kind: population, department: "${HEALTH}", reason: "出生医学证明") { departmentCode } }`))).toBeUndefined();
    await gql(health, CREATE, { input: input('health-pop', { url: sim.url, auth: { type: 'bearer', secret: 'sim-token' } }, { departmentCode: HEALTH }) });
    expect(errorOf(await gql(admin, `mutation { approveConnector(id: "health-pop") { status } }`))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'config.auth.secret' });
  });

  it("writes a base kind only for its authoritative sources and never overwrites another department's record", async () => {
    const subject = person(7).sfzh;
    const [before] = await recordsBySubject(tdb.database.db, 'population', [subject]);
    // the simulator's records are the simulator's; take one 公安 now holds and let 卫健 send a forged version of it
    const held = (await rows<{ key: string; data: Record<string, unknown> }>(tdb.database.db, sql`select key, data from base_records where kind = 'population' limit 1`))[0]!;
    const historyBefore = await recordHistory(tdb.database.db, 'population', held.key);
    fs.mkdirSync(path.join(importDir, HEALTH), { recursive: true });
    const forged = { id: 'F1', sfzh: held.key, xm: held.data.name, xb: Number(held.key[16]) % 2 === 1 ? '1' : '2', csrq: held.key.slice(6, 14), hyzk: '20', swbs: '1' };
    fs.writeFileSync(path.join(importDir, HEALTH, 'births.jsonl'), `${JSON.stringify(forged)}\n${JSON.stringify(person(7))}\n`);
    await gql(health, CREATE, { input: input('health-file', { path: 'births.jsonl', format: 'jsonl' }, { departmentCode: HEALTH, adapter: 'file' }) });
    expect(errorOf(await gql(admin, `mutation { approveConnector(id: "health-file") { status } }`))).toBeUndefined();
    const r = await runSync(tdb.database, 'health-file', { masterKey: MASTER_KEY, egress: hub.services.egress, importDir });
    expect(r).toMatchObject({ status: 'SUCCEEDED', quarantined: { HELD_BY_OTHER_SOURCE: 1 }, inserted: before ? 0 : 1 });
    const after = await recordHistory(tdb.database.db, 'population', held.key);
    expect(after).toEqual(historyBefore);
    expect(after.at(-1)!.data).toMatchObject({ maritalStatus: held.data.maritalStatus, deceased: held.data.deceased });

    // the designation withdrawn: 卫健's connector is refused before it writes anything
    expect(errorOf(await gql(admin, `mutation { withdrawBaseSource(kind: population, department: "${HEALTH}", reason: "试点结束") { withdrawnAt } }`))).toBeUndefined();
    fs.writeFileSync(path.join(importDir, HEALTH, 'births.jsonl'), `${JSON.stringify(person(8))}\n`);
    expect(await runSync(tdb.database, 'health-file', { masterKey: MASTER_KEY, egress: hub.services.egress, importDir })).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^NOT_AUTHORITATIVE/) });
    expect(await recordsBySubject(tdb.database.db, 'population', [person(8).sfzh])).toEqual([]);
    // nor may a department that is no source draft one
    expect(errorOf(await gql(health, CREATE, { input: input('health-2', { path: 'births.jsonl', format: 'jsonl' }, { departmentCode: HEALTH, adapter: 'file' }) }))).toMatchObject({ code: 'FORBIDDEN', reason: 'NOT_AUTHORITATIVE' });
  });

  it('reads files only from the department import folder, and echoes no line of them', async () => {
    for (const p of ['/etc/passwd', '../../etc/passwd', './x.jsonl', 'a/../../b']) {
      expect(errorOf(await gql(police, CREATE, { input: input('file-out', { path: p, format: 'jsonl' }, { adapter: 'file' }) })), p).toMatchObject({ code: 'BAD_USER_INPUT', field: 'config.path' });
    }
    const dir = path.join(importDir, POLICE);
    fs.mkdirSync(dir, { recursive: true });
    const secretFile = path.join(importDir, 'master.key');
    fs.writeFileSync(secretFile, 'TOPSECRET-LINE\n');
    fs.symlinkSync(secretFile, path.join(dir, 'link.jsonl'));
    fs.symlinkSync(importDir, path.join(dir, 'up'));
    fs.linkSync(secretFile, path.join(dir, 'hard.jsonl'));
    for (const [id, p] of [['file-link', 'link.jsonl'], ['file-up', 'up/master.key'], ['file-hard', 'hard.jsonl']] as const) {
      await approvedSource(tdb.database.db, input(id, { path: p, format: 'jsonl' }, { adapter: 'file' }), { designate: false });
      const r = await runSync(tdb.database, id, { masterKey: MASTER_KEY, egress: hub.services.egress, importDir });
      expect(r, p).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/FILE_OUTSIDE_IMPORT_DIR/) });
      expect(JSON.stringify(r)).not.toContain('TOPSECRET');
    }
    // a line that does not parse is quarantined by its number alone
    fs.writeFileSync(path.join(dir, 'mixed.jsonl'), `${JSON.stringify(person(30))}\n{"sfzh": "TOPSECRET-LINE\n`);
    await approvedSource(tdb.database.db, input('file-mixed', { path: 'mixed.jsonl', format: 'jsonl' }, { adapter: 'file' }), { designate: false });
    expect(await runSync(tdb.database, 'file-mixed', { masterKey: MASTER_KEY, egress: hub.services.egress, importDir })).toMatchObject({ status: 'SUCCEEDED', quarantined: { MALFORMED: 1 } });
    const q = await gql(police, `{ quarantine(connectorId: "file-mixed") { reason detail record } }`);
    expect(q.data?.quarantine).toEqual([{ reason: 'MALFORMED', detail: 'line 2 of the file is not JSON', record: { line: 2 } }]);
    // without HUB_IMPORT_DIR no file is read at all
    expect(await runSync(tdb.database, 'file-mixed', { masterKey: MASTER_KEY, egress: hub.services.egress }, { full: true })).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/IMPORT_DIR_UNSET/) });
  });

  it('masks quarantined ID numbers for all but the source department, audits every read, and echoes no stored value', async () => {
    const dir = path.join(importDir, POLICE);
    const bad = person(40, { hyzk: '99' }); // ENUM_INVALID: quarantined with its record
    fs.writeFileSync(path.join(dir, 'q.jsonl'), `${JSON.stringify(bad)}\n`);
    await approvedSource(tdb.database.db, input('file-q', { path: 'q.jsonl', format: 'jsonl' }, { adapter: 'file' }), { designate: false });
    await runSync(tdb.database, 'file-q', { masterKey: MASTER_KEY, egress: hub.services.egress, importDir });
    const Q = `{ quarantine(connectorId: "file-q") { reason detail record } }`;
    const own = (await gql(police, Q)).data?.quarantine as { record: Record<string, unknown> }[];
    expect(own[0]!.record.sfzh).toBe(bad.sfzh);
    const seen = JSON.stringify((await gql(auditor, Q)).data?.quarantine);
    expect(seen).not.toContain(bad.sfzh);
    expect(seen).toContain(`${bad.sfzh.slice(0, 6)}********${bad.sfzh.slice(14)}`);
    expect(JSON.stringify((await gql(admin, Q)).data?.quarantine)).not.toContain(bad.sfzh);
    const reads = await gql(auditor, `{ accessLog(filter: { operation: "QUARANTINE_READ" }, first: 10) { edges { node { clientId outcome } } } }`);
    expect((reads.data?.accessLog as { edges: unknown[] }).edges.length).toBeGreaterThanOrEqual(3);

    // a record PostgreSQL cannot store (a NUL in a text): the run fails saying the SQLSTATE, never the batch's values
    fs.writeFileSync(path.join(dir, 'nul.jsonl'), `${JSON.stringify(person(41, { xm: 'a\u0000b' }))}\n`);
    await approvedSource(tdb.database.db, input('file-nul', { path: 'nul.jsonl', format: 'jsonl' }, { adapter: 'file' }), { designate: false });
    const failed = await runSync(tdb.database, 'file-nul', { masterKey: MASTER_KEY, egress: hub.services.egress, importDir }).catch((e: Error) => ({ error: e.message }));
    expect(failed.error).toMatch(/^INTERNAL: the batch could not be stored \(SQLSTATE/);
    const [run] = await rows<{ error: string }>(tdb.database.db, sql`select error from sync_runs where connector_id = 'file-nul'`);
    expect(run!.error).not.toContain(person(41).sfzh);
    expect(run!.error).not.toMatch(/params|insert into/i);
  });

  it('does not deliver a webhook to an address the policy refuses', async () => {
    // a hook stored before the policy existed, pointing at the catcher on loopback
    await tdb.database.db.execute(sql`insert into department_webhooks (department_code, url, secret_enc) values (${POLICE}, ${`${trap.url}/hook`}, ${seal(MASTER_KEY, 'whsec', `webhook:${POLICE}`)})`);
    await tdb.database.db.execute(sql`insert into notifications (department_code, kind, subject_id, payload) values (${POLICE}, 'ACCESS_REQUEST_NEW', 'n-1', '{}'::jsonb)`);
    const r = await deliverNotifications(tdb.database.db, MASTER_KEY, hub.services.egress, log);
    expect(r).toEqual({ delivered: 0, failed: 1 });
    expect(trap.seen).toHaveLength(0);
  });

  it("shows every administrative act of a source in the auditors' log with the acting client, and the chain verifies", async () => {
    const ops = async (operation: string) =>
      ((await gql(auditor, `{ accessLog(filter: { operation: "${operation}" }, first: 50) { edges { node { clientId operation outcome reason } } } }`)).data?.accessLog as { edges: { node: Record<string, unknown> }[] }).edges.map((e) => e.node);
    expect(await ops('CONNECTOR_CREATE')).toEqual(expect.arrayContaining([expect.objectContaining({ outcome: 'DONE' })]));
    expect((await ops('CONNECTOR_APPROVE')).map((n) => n.clientId)).toEqual(expect.arrayContaining([adminId]));
    expect((await ops('CONNECTOR_UPDATE')).map((n) => n.clientId)).toEqual(expect.arrayContaining([adminId]));
    expect((await ops('SOURCE_SECRET_SET')).length).toBeGreaterThanOrEqual(3);
    expect((await ops('CONNECTOR_RUN')).length).toBeGreaterThanOrEqual(1);
    expect((await ops('CONNECTOR_SYNC')).map((n) => n.reason)).toEqual(expect.arrayContaining(['NOT_APPROVED', 'NOT_AUTHORITATIVE']));
    expect((await ops('BASE_SOURCE_DESIGNATE')).map((n) => n.clientId)).toEqual(expect.arrayContaining([adminId]));
    expect(await ops('BASE_SOURCE_WITHDRAW')).toHaveLength(1);
    // no secret value is in any entry
    const all = await rows<{ details: unknown }>(tdb.database.db, sql`select details from audit_entries`);
    const leak = JSON.stringify(all).match(/.{300}(rotated-value-x9|must-not-leave|sim-bearer-value).{100}/)?.[0];
    expect(leak, leak).toBeUndefined();
    const report = await verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid));
    expect(report.ok).toBe(true);
  });
});

describe.runIf(pgAvailable())("a SQL source never reaches the hub's own database", () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
    for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  const sqlConfig = (over: Record<string, unknown> = {}) => {
    const own = new URL(tdb.url!);
    return { host: own.hostname, port: Number(own.port || 5432), database: own.pathname.slice(1), user: own.username || 'postgres', secret: 'db-password', table: 'hub_keys', ...over };
  };

  it('refuses the hub database by its identity, however its address is spelled', async () => {
    const port = Number(new URL(tdb.url!).port || 5432);
    // the same database by another name for its host
    await approvedSource(tdb.database.db, { id: 'sql-hub', name: 'x', departmentCode: POLICE, kind: 'population', adapter: 'sql', config: sqlConfig({ host: 'localhost' }) }, { secret: { name: 'db-password', value: 'x' } });
    const r = await runSync(tdb.database, 'sql-hub', testSources({ allow: [`localhost:${port}`, `127.0.0.1:${port}`] }));
    expect(r).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/SOURCE_IS_HUB/), fetched: 0 });
  });

  it('takes no connection parameter beyond host, port, database, user and sslmode, and no socket path', async () => {
    const ctx = systemContext(tdb.database.db, log, POLICE, 'test-department');
    for (const [over, field] of [
      [{ sslrootcert: '/etc/passwd' }, 'config.sslrootcert'],
      [{ passfile: '/root/.pgpass' }, 'config.passfile'],
      [{ host: '/var/run/postgresql' }, 'config.host'],
      [{ host: '%2Fvar%2Frun%2Fpostgresql' }, 'config.host'],
      [{ table: 'rk; drop table x' }, 'config.table'],
      [{ urlEnv: 'DATABASE_URL' }, 'config.urlEnv'],
    ] as const) {
      await expect(createConnector(ctx, { id: 'sql-bad', name: 'x', departmentCode: POLICE, kind: 'population', adapter: 'sql', config: sqlConfig(over) }), JSON.stringify(over)).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field } });
    }
  });

  it("sends the department's password and never the hub's own PGPASSWORD", async () => {
    // a server on loopback that asks for a cleartext password and records what it is sent
    const received: string[] = [];
    const server = net.createServer((socket) => {
      let greeted = false;
      socket.on('data', (chunk: Buffer) => {
        if (!greeted) {
          greeted = true;
          socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); // AuthenticationCleartextPassword
          return;
        }
        if (chunk[0] === 0x70) received.push(chunk.subarray(5, chunk.length - 1).toString()); // PasswordMessage
        socket.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const saved = process.env.PGPASSWORD;
    process.env.PGPASSWORD = 'HUB-OWN-DB-PASSWORD';
    try {
      await approvedSource(tdb.database.db, { id: 'sql-fake', name: 'x', departmentCode: POLICE, kind: 'population', adapter: 'sql', config: sqlConfig({ host: '127.0.0.1', port, database: 'rk', user: 'rk' }) }, { secret: { name: 'db-password', value: 'department-password' }, designate: false });
      const r = await runSync(tdb.database, 'sql-fake', testSources({ allow: [`127.0.0.1:${port}`] }), { retry: { attempts: 1 } });
      expect(r.status).toBe('FAILED');
      expect(received).toEqual(['department-password']);
    } finally {
      if (saved === undefined) delete process.env.PGPASSWORD;
      else process.env.PGPASSWORD = saved;
      await new Promise((r) => server.close(r));
    }
  });
});

// the departments a test hub registers include these
void [MARKET, CREDIT, APPROVAL];
