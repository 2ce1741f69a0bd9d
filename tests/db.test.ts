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
import { arrayLiteral, openDatabase, rows, separatedList, Statement } from '../db/index.ts';
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

describe('array parameters written by the hub', () => {
  const texts = ['a', 'say "hi"', 'back\\slash', '{"k":["v","二"],"n":null}', 'comma, and } brace', 'NULL'];
  const json = ['{"asOf":null,"versions":["k@1"]}', '[1,"\\u001e"]', '"N"', 'null'];
  const echo = new Statement<{ lit: string[]; split: string[]; docs: unknown[]; sqlNulls: number[]; n: number }>(
    'hub_test_arrays',
    `with d as (select string_to_array($3::text, chr(30), 'N')::jsonb[] as a)
     select $1::text[] as lit, string_to_array($2::text, chr(30)) as split, to_jsonb(d.a) as docs,
            to_jsonb(array(select i from generate_subscripts(d.a, 1) i where d.a[i] is null)) as "sqlNulls",
            cardinality(string_to_array($4::text, chr(30))) as n
     from d`,
  );

  it.each(drivers())('come back as they were sent: array literals, separated lists and their nulls (%s)', async (d) => {
    const t = await createTestDatabase(d);
    try {
      const [r] = await echo.run(t.database.db, [arrayLiteral(texts), separatedList(texts), separatedList([json[0]!, null, ...json.slice(1)], 'N'), separatedList([])]);
      expect(r!.lit).toEqual(texts);
      expect(r!.split).toEqual(texts);
      expect(r!.docs).toEqual([{ asOf: null, versions: ['k@1'] }, null, [1, '\u001e'], 'N', null]);
      // the null written as N is a SQL null; the JSON text null stays a JSON null
      expect(r!.sqlNulls).toEqual([2]);
      expect(Number(r!.n)).toBe(0);
      const [one] = await echo.run(t.database.db, [arrayLiteral([]), separatedList(['x']), separatedList([null], 'N'), separatedList(['only'])]);
      expect(one!.split).toEqual(['x']);
      expect(one!.docs).toEqual([null]);
      expect(one!.sqlNulls).toEqual([1]);
      expect(Number(one!.n)).toBe(1);
    } finally {
      await t.drop();
    }
  });

  it('refuses what would shift or change the values of a separated list', () => {
    expect(() => separatedList(['a', ''])).toThrow(/value 1/);
    expect(() => separatedList(['a', 'b\u001ec'])).toThrow(/value 1/);
    expect(() => separatedList(['N'], 'N')).toThrow(/value 0/);
    expect(() => separatedList([null])).toThrow(/value 0 is null/);
    expect(separatedList(['a', null, 'b'], 'N')).toBe('a\u001eN\u001eb');
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
