import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../auth/schema.ts';
import { createClient } from '../auth/clients.ts';
import { generateClientKey } from '../auth/client-file.ts';
import { createDepartment } from '../directory/departments.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { openDatabase, rows, Statement } from '../db/index.ts';
import { createTestDatabase, drivers, pgAvailable, type DriverName, type TestDatabase } from './helpers/db.ts';

async function roundTrip(t: TestDatabase) {
  const db = t.database.db;
  await createDepartment(db, DEMO_DEPARTMENTS[0]);
  const { publicJwk } = await generateClientKey();
  await createClient(db, { clientId: 'round-trip', name: '往返', department: DEMO_DEPARTMENTS[0].code, roles: ['consumer', 'auditor'], jwk: publicJwk });
  const [row] = await db.select().from(clients);
  const [raw] = await rows(db, sql`select 42::int8 as big, 7::int4 as small, '12.50'::numeric as dec, '\\xdeadbeef'::bytea as bin,
      '{"a":[1,"二"]}'::jsonb as doc, array['x','y'] as arr, true as flag, null::text as nothing`);
  const tables = await rows<{ table_name: string }>(
    db,
    sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`,
  );
  const migrations = await rows<{ hash: string }>(db, sql`select hash from drizzle.__drizzle_migrations order by created_at`);
  return { row, raw, tables: tables.map((r) => r.table_name), migrations: migrations.map((m) => m.hash) };
}

describe('one handle type for both drivers', () => {
  const results: Partial<Record<DriverName, Awaited<ReturnType<typeof roundTrip>>>> = {};
  const dbs: TestDatabase[] = [];
  beforeAll(async () => {
    for (const d of drivers()) {
      const t = await createTestDatabase(d);
      dbs.push(t);
      results[d] = await roundTrip(t);
    }
  });
  afterAll(async () => {
    for (const t of dbs) await t.drop();
  });

  it.each(drivers())('returns the same JS types (%s)', (d) => {
    const r = results[d]!;
    expect(r.row!.createdAt).toBeInstanceOf(Date);
    expect(r.row!.roles).toEqual(['consumer', 'auditor']);
    expect(r.raw).toEqual({ big: 42, small: 7, dec: '12.50', bin: Buffer.from('deadbeef', 'hex'), doc: { a: [1, '二'] }, arr: ['x', 'y'], flag: true, nothing: null });
    expect(Buffer.isBuffer(r.raw!.bin)).toBe(true);
    expect(r.tables).toEqual(expect.arrayContaining(['clients', 'client_keys', 'departments', 'hub_keys', 'oauth_assertions']));
  });

  it.runIf(pgAvailable())('applies the same migrations on PGlite and PostgreSQL', () => {
    expect(results.pglite!.migrations).toEqual(results.pg!.migrations);
    expect(results.pglite!.migrations.length).toBe(fs.readdirSync('db/migrations').filter((f) => f.endsWith('.sql')).length);
    expect(results.pglite!.tables).toEqual(results.pg!.tables);
    const strip = (r: typeof results.pg) => ({ ...r!.row, createdAt: undefined, updatedAt: undefined });
    expect(strip(results.pglite)).toEqual(strip(results.pg));
  });
});

describe('hot statements', () => {
  const probe = new Statement<{ n: number; prepared: string[] }>(
    'hub_test_probe',
    `select $1::int8 * 2 as n, array(select name from pg_prepared_statements order by name) as prepared`,
  );

  it.each(drivers())('give the same rows on the pool and inside a transaction (%s)', async (d) => {
    const t = await createTestDatabase(d);
    try {
      // the transaction first, on a connection nothing was prepared on before
      const inside = await t.database.db.transaction(async (tx) => (await probe.run(tx, [4]))[0]!);
      expect(inside.n).toBe(8);
      const [outside] = await probe.run(t.database.db, [21]);
      expect(outside!.n).toBe(42);
      // on PostgreSQL the statement is prepared by name on the connection that runs it, a transaction's too; on
      // PGlite it runs as an ordinary parameterised query
      if (d === 'pg') {
        expect(outside!.prepared).toContain('hub_test_probe');
        expect(inside.prepared).toContain('hub_test_probe');
      } else {
        expect(outside!.prepared).not.toContain('hub_test_probe');
        expect(inside.prepared).not.toContain('hub_test_probe');
      }
    } finally {
      await t.drop();
    }
  });
});

describe('the embedded database directory', () => {
  let dir: string;
  let first: ChildProcess | undefined;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-lock-'));
  });
  afterAll(() => {
    first?.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({ ...process.env, HUB_DATA_DIR: dir, PORT: '0', DATABASE_URL: '', REDIS_URL: '', HUB_LOG_LEVEL: 'info', NODE_ENV: '' });

  it('is refused to a second process while a hub holds it, with a clear line', async () => {
    first = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    first.stdout!.on('data', (d) => (output += d));
    first.stderr!.on('data', (d) => (output += d));
    await expect.poll(() => output.includes('hub listening'), { timeout: 40_000, interval: 200 }).toBe(true);

    const second = spawnSync(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], { env: env(), encoding: 'utf8', timeout: 30_000 });
    expect(second.status).toBe(1);
    expect(second.stderr.trim()).toBe(
      `hub: HUB_DATA_DIR: the embedded database in ${dir} is in use by process ${first.pid} (a running hub); stop it first, or set DATABASE_URL to share a PostgreSQL database between processes`,
    );
    const cli = spawnSync(process.execPath, ['cli/bin.js', 'migrate'], { env: env(), encoding: 'utf8', timeout: 30_000 });
    expect(cli.status).toBe(1);
    expect(cli.stderr).toMatch(/in use by process \d+ \(a running hub\)/);
  });

  it('is opened after the holder stops, even when it was killed and left its lock file', async () => {
    first!.kill('SIGKILL');
    await new Promise((r) => first!.once('exit', r));
    expect(fs.existsSync(path.join(dir, 'hub.lock'))).toBe(true);
    const database = await openDatabase({ dataDir: dir });
    const [r] = await rows<{ n: number }>(database.db, sql`select count(*)::int8 as n from departments`);
    expect(r!.n).toBe(DEMO_DEPARTMENTS.length);
    await database.close();
    expect(fs.existsSync(path.join(dir, 'hub.lock'))).toBe(false);
  });
});
