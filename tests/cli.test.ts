import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/index.ts';
import { makeUscc } from '../core/ids.ts';
import { startSimulator } from '../connectors/simulators/index.ts';
import { createPgDatabase, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { runCli } from './helpers/cli.ts';

const hub = runCli;

describe.runIf(pgAvailable())('the hub command line against PostgreSQL', () => {
  let tdb: TestDatabase;
  let running: TestHub;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    tdb = await createPgDatabase();
    running = await startTestHub(await openDatabase({ databaseUrl: tdb.url!, poolSize: 4, appRole: true }));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-cli-'));
    env = { DATABASE_URL: tdb.url!, HUB_MASTER_KEY: TEST_MASTER_KEY, HUB_DATA_DIR: dir, HUB_ISSUER: running.url };
  });
  afterAll(async () => {
    await running?.close();
    await running?.services.database.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('migrates, registers a department, refuses a bad USCC', async () => {
    expect((await hub(['migrate'], env)).stdout).toContain('"migrated": true');
    const code = makeUscc('11', '350200', '00350777');
    const ok = await hub(['departments', 'create', '--code', code, '--name', '厦门市民政局', '--region', '350200', '--level', 'CITY'], env);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ code, name: '厦门市民政局', level: 'CITY' });
    const bad = await hub(['departments', 'create', '--code', '911100001000000000', '--name', 'x', '--region', '350200', '--level', 'CITY'], env);
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^hub: INVALID_USCC: department code 911100001000000000 is not a valid 统一社会信用代码/);
    expect(bad.stdout).toBe('');
  });

  it('loads a year\'s holiday calendar from a file, refusing a bad one whole', async () => {
    const file = path.join(dir, 'cal.json');
    fs.writeFileSync(file, JSON.stringify({ source: 'test notice', days: [{ day: '2030-01-01', kind: 'HOLIDAY', name: '元旦' }, { day: '2030-02-02', kind: 'WORKDAY', name: '春节调休' }] }));
    const loaded = await hub(['calendar', 'load', '--year', '2030', '--file', file], env);
    expect(JSON.parse(loaded.stdout)).toEqual({ year: 2030, holidays: 1, workdays: 1 });
    fs.writeFileSync(file, JSON.stringify({ source: 'bad', days: [{ day: '2030-01-02', kind: 'WORKDAY', name: '周三' }] }));
    const bad = await hub(['calendar', 'load', '--year', '2030', '--file', file], env);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^hub: BAD_USER_INPUT: .*2030-01-02/);
    const shown = JSON.parse((await hub(['calendar', 'show', '--year', '2030'], env)).stdout) as { source: string; days: unknown[] };
    expect(shown).toMatchObject({ source: 'test notice', days: [expect.objectContaining({ day: '2030-01-01' }), expect.objectContaining({ day: '2030-02-02' })] });
  });

  it('creates a client with a key file, gets a token from the running hub, disables it', async () => {
    const keyFile = path.join(dir, 'approval.json');
    const created = await hub(
      ['clients', 'create', '--name', '审批系统', '--department', '11350100003500043N', '--roles', 'consumer,auditor', '--key-out', keyFile],
      env,
    );
    expect(created.stderr).toBe('');
    const { client_id } = JSON.parse(created.stdout) as { client_id: string };
    expect(Object.keys(JSON.parse(created.stdout))).toEqual(['client_id']);
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    const file = JSON.parse(fs.readFileSync(keyFile, 'utf8'));
    expect(file).toMatchObject({ client_id, jwk: { kty: 'EC', crv: 'P-256', alg: 'ES256', kid: expect.any(String), d: expect.any(String) } });

    const listed = JSON.parse((await hub(['clients', 'list'], env)).stdout) as { client_id: string; roles: string[]; keys: unknown[] }[];
    const mine = listed.find((c) => c.client_id === client_id)!;
    expect(mine.roles).toEqual(['consumer', 'auditor']);
    expect(JSON.stringify(listed)).not.toContain(file.jwk.d); // the private key exists only in the file

    const token = await hub(['token', '--key', keyFile, '--url', running.url], env);
    expect(token.status).toBe(0);
    const viewer = await running.graphql('{ viewer { clientId roles } }', token.stdout.trim());
    expect(viewer.body.data?.viewer).toEqual({ clientId: client_id, roles: ['consumer', 'auditor'] });

    expect((await hub(['clients', 'create', '--name', 'x', '--department', '11350100003500043N', '--roles', 'consumer', '--key-out', keyFile], env)).status).toBe(1);

    const disabled = await hub(['clients', 'disable', client_id, '--reason', 'decommissioned'], env);
    expect(JSON.parse(disabled.stdout).status).toBe('disabled');
    const refused = await hub(['token', '--key', keyFile, '--url', running.url], env);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/invalid_client: client is disabled/);
  });

  it('creates a connector from a file and syncs it with a progress line and a JSON report', async () => {
    const sim = await startSimulator({ kind: 'population', records: 1500, auth: { type: 'bearer', token: 'cli-token' } });
    try {
      const file = path.join(dir, 'connector.json');
      const departments = JSON.parse((await hub(['departments', 'list'], env)).stdout) as { code: string; name: string }[];
      const police = departments.find((d) => d.name === '福州市公安局')!.code;
      fs.writeFileSync(file, JSON.stringify({ id: 'cli-pop', name: '公安人口', departmentCode: police, kind: 'population', adapter: 'http', config: { url: sim.url, auth: { type: 'bearer', secret: 'cli-token' }, pageSize: 500 } }));
      // the operator designates 公安 as the population source (this database has no directory) and, as another
      // admin than the one at the command line, approves what the command line drafted (four eyes)
      const admin = await running.token(await running.newClient(['admin'], { department: police }));
      expect((await running.graphql(`mutation { designateBaseSource(kind: population, department: "${police}", reason: "人口") { kind } }`, admin)).body.errors).toBeUndefined();
      expect((await hub(['connectors', 'secret', 'set', police, 'cli-token'], env, 'cli-token')).status).toBe(0);
      const created = await hub(['connectors', 'create', '--file', file], env);
      expect(JSON.parse(created.stdout)).toMatchObject({ id: 'cli-pop', kind: 'population', adapter: 'http', status: 'DRAFT' });
      const unapproved = await hub(['sync', 'cli-pop'], env);
      expect(JSON.parse(unapproved.stdout)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^NOT_APPROVED/) });
      running.services.egress.allow(new URL(sim.url).host); // the running hub's HUB_EGRESS_ALLOW lists the source too
      expect((await running.graphql(`mutation { approveConnector(id: "cli-pop") { status } }`, admin)).body.data?.approveConnector).toEqual({ status: 'APPROVED' });
      const sync = await hub(['sync', 'cli-pop'], { ...env, HUB_EGRESS_ALLOW: new URL(sim.url).host });
      expect(sync.status).toBe(0);
      const report = JSON.parse(sync.stdout);
      expect(report).toMatchObject({ connectorId: 'cli-pop', status: 'SUCCEEDED', fetched: 1500, batches: 3 });
      expect(report.inserted + Object.values(report.quarantined as Record<string, number>).reduce((a, b) => a + b, 0)).toBe(1500);
      expect(sync.stderr).toMatch(/sync cli-pop \| 1500 fetched/);
      // the simulator's loopback address not listed: the egress policy refuses it
      const refused = await hub(['sync', 'cli-pop', '--full'], env);
      expect(refused.status).toBe(1);
      expect(JSON.parse(refused.stdout)).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/EGRESS_REFUSED \(ADDRESS\)/) });
    } finally {
      await sim.close();
    }
  });

  it('rotates a client key and the hub\'s token key', async () => {
    const keyFile = path.join(dir, 'rotating.json');
    const { client_id } = JSON.parse(
      (await hub(['clients', 'create', '--name', 'r', '--department', '11350100003500043N', '--roles', 'provider', '--key-out', keyFile, '--alg', 'EdDSA'], env)).stdout,
    ) as { client_id: string };
    const next = path.join(dir, 'rotating-2.json');
    const rotated = JSON.parse((await hub(['clients', 'rotate-key', client_id, '--key-out', next], env)).stdout);
    expect(rotated.keys.filter((k: { revoked_at: string | null }) => k.revoked_at === null)).toHaveLength(1);
    expect((await hub(['token', '--key', keyFile, '--url', running.url], env)).status).toBe(1);
    expect((await hub(['token', '--key', next, '--url', running.url], env)).status).toBe(0);

    const before = JSON.parse((await hub(['keys', 'list'], env)).stdout) as { kid: string; purpose: string; supersededAt: string | null }[];
    const r = await hub(['keys', 'rotate', '--purpose', 'token'], env);
    expect(r.status).toBe(0);
    const { kid, superseded } = JSON.parse(r.stdout) as { kid: string; superseded: string[] };
    expect(superseded).toEqual(before.filter((k) => k.purpose === 'token' && !k.supersededAt).map((k) => k.kid));
    // the running hub hears of it through NOTIFY and signs with the new key
    await expect
      .poll(async () => {
        const t = (await hub(['token', '--key', next, '--url', running.url], env)).stdout;
        return JSON.parse(Buffer.from(t.split('.')[0]!, 'base64url').toString()).kid;
      }, { timeout: 15_000, interval: 500 })
      .toBe(kid);
    const wrongKey = await hub(['keys', 'rotate'], { ...env, HUB_MASTER_KEY: 'b'.repeat(64) });
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.stderr.trim()).toBe('hub: HUB_MASTER_KEY: does not match the key this database\'s hub keys were sealed with');
  });
});
