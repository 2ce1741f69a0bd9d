import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordHistory, recordsBySubject } from '../basedata/store.ts';
import { createConnector } from '../connectors/registry.ts';
import { listQuarantine, runSync } from '../connectors/sync.ts';
import { systemContext } from '../core/context.ts';
import { idNumberCheckChar } from '../core/ids.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { createDepartment } from '../directory/departments.ts';
import { createPgDatabase, createTestDatabase, drivers, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { approvedSource, testSources } from './helpers/sources.ts';

const log = createLogger({ level: 'silent' });
const POLICE = DEMO_DEPARTMENTS[0].code;

/** A 公安-style source record for index i; `bad` breaks its check digit. */
function person(i: number, over: Record<string, unknown> = {}, bad = false) {
  const first17 = `350102${String(19500101 + (i % 28) + Math.floor(i / 28) * 10000).slice(0, 8)}${String(100 + (i % 900)).padStart(3, '0')}`;
  const check = idNumberCheckChar(first17);
  const sfzh = first17 + (bad ? (check === '1' ? '2' : '1') : check);
  return {
    id: `P${String(i).padStart(7, '0')}`,
    sfzh,
    xm: `测试${i}`,
    xb: Number(sfzh[16]) % 2 === 1 ? '1' : '2',
    mz: '01',
    csrq: sfzh.slice(6, 14),
    csd: '福建省福州市',
    hjdz: `福州市鼓楼区某路${i}号`,
    hjdjjg: '福州市公安局鼓楼分局',
    hyzk: '10',
    swbs: '0',
    ...over,
  };
}

async function count(tdb: TestDatabase, table: string): Promise<number> {
  return (await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from ${sql.raw(table)}`))[0]!.n;
}

describe.each(drivers())('connectors from files (%s)', (driver) => {
  let tdb: TestDatabase;
  let importDir: string;
  let dir: string;
  let sources: ReturnType<typeof testSources>;
  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
    importDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-conn-'));
    dir = path.join(importDir, POLICE);
    fs.mkdirSync(dir);
    sources = testSources({ importDir });
  });
  afterAll(async () => {
    await tdb?.drop();
    fs.rmSync(importDir, { recursive: true, force: true });
  });

  it('loads JSONL in checkpointed batches, quarantines bad records with reasons, and skips unchanged ones', async () => {
    const file = path.join(dir, 'population.jsonl');
    const records = Array.from({ length: 250 }, (_, i) => person(i));
    records[10] = person(10, {}, true); // check digit
    records[20] = person(20, { xm: '' }); // required
    records[30] = person(30, { hyzk: '99' }); // enumeration
    records[40] = person(40, { csrq: '19000101' }); // birth date differs from the ID number
    fs.writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join('\n')}\n{not json\n`);
    await approvedSource(tdb.database.db, { id: 'pop-file', name: '公安人口文件', departmentCode: POLICE, kind: 'population', adapter: 'file', config: { path: 'population.jsonl', format: 'jsonl' } });

    const first = await runSync(tdb.database, 'pop-file', sources, { pageSize: 100 });
    expect(first).toMatchObject({ status: 'SUCCEEDED', fetched: 251, inserted: 246, updated: 0, unchanged: 0, batches: 3 });
    expect(first.quarantined).toEqual({ ID_NUMBER_INVALID: 1, REQUIRED_MISSING: 1, ENUM_INVALID: 1, BIRTH_DATE_MISMATCH: 1, MALFORMED: 1 });
    const q = await listQuarantine(tdb.database.db, 'pop-file');
    expect(q.find((x) => x.sourceId === 'P0000010')).toMatchObject({ reason: 'ID_NUMBER_INVALID', detail: expect.stringMatching(/CHECK_DIGIT/) });

    // the same file again: nothing to do (its checkpoint says done)
    const again = await runSync(tdb.database, 'pop-file', sources, { pageSize: 100 });
    expect(again).toMatchObject({ status: 'SUCCEEDED', fetched: 0 });

    // a new file version: the fixed records land and leave quarantine, one change is a new version, the rest unchanged
    records[10] = person(10);
    records[5] = person(5, { hyzk: '20', hjdz: '福州市台江区新址' });
    fs.writeFileSync(file, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
    fs.utimesSync(file, new Date(), new Date(Date.now() + 5000));
    const second = await runSync(tdb.database, 'pop-file', sources, { pageSize: 100 });
    expect(second).toMatchObject({ status: 'SUCCEEDED', fetched: 250, inserted: 1, updated: 1, unchanged: 245 }); // and 3 still quarantined
    expect((await listQuarantine(tdb.database.db, 'pop-file')).map((x) => x.sourceId).sort()).toEqual(['250', 'P0000020', 'P0000030', 'P0000040']); // '250': the malformed line, by its position
    expect(await count(tdb, 'base_records')).toBe(247);
    expect(await count(tdb, 'base_record_history')).toBe(248);

    // history answers what the record was before the change, and asOf answers what the hub held then
    const id5 = records[5]!.sfzh as string;
    const history = await recordHistory(tdb.database.db, 'population', id5);
    expect(history.map((h) => [h.version, h.data.maritalStatus, h.data.householdAddress])).toEqual([
      [1, '未婚', '福州市鼓楼区某路5号'],
      [2, '已婚', '福州市台江区新址'],
    ]);
    const [then] = await recordsBySubject(tdb.database.db, 'population', [id5], new Date(history[1]!.recordedAt.getTime() - 1));
    expect(then!.data.maritalStatus).toBe('未婚');
    const [now] = await recordsBySubject(tdb.database.db, 'population', [id5]);
    expect(now).toMatchObject({ version: 2, connectorId: 'pop-file', sourceId: 'P0000005' });
    // the current read (one JSON text per row) gives what the history holds for that version, instants to the ms
    expect(now).toEqual(history[1]);
    expect(now!.recordedAt.getTime()).toBe(history[1]!.recordedAt.getTime());
  });

  it('reads CSV, and a full resync rewrites nothing that is unchanged', async () => {
    const file = path.join(dir, 'population.csv');
    const recs = Array.from({ length: 30 }, (_, i) => person(1000 + i));
    const cols = Object.keys(recs[0]!);
    fs.writeFileSync(file, `\uFEFF${cols.join(',')}\n${recs.map((r) => cols.map((c) => `"${String((r as Record<string, unknown>)[c]).replace(/"/g, '""')}"`).join(',')).join('\n')}\n`);
    await approvedSource(tdb.database.db, { id: 'pop-csv', name: '公安人口CSV', departmentCode: POLICE, kind: 'population', adapter: 'file', config: { path: 'population.csv', format: 'csv' } });
    expect(await runSync(tdb.database, 'pop-csv', sources, { pageSize: 7 })).toMatchObject({ status: 'SUCCEEDED', inserted: 30, batches: 5 });
    const historyBefore = await count(tdb, 'base_record_history');
    expect(await runSync(tdb.database, 'pop-csv', sources, { full: true, pageSize: 7 })).toMatchObject({ status: 'SUCCEEDED', mode: 'FULL', fetched: 30, unchanged: 30, inserted: 0 });
    expect(await count(tdb, 'base_record_history')).toBe(historyBefore);
  });

  it('refuses a connector config holding a secret in clear', async () => {
    const ctx = systemContext(tdb.database.db, log, POLICE);
    await expect(
      createConnector(ctx, { id: 'leaky', name: 'x', departmentCode: POLICE, kind: 'population', adapter: 'http', config: { url: 'http://x', auth: { type: 'bearer', token: 'abc' } } }),
    ).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: 'config.auth.token' } });
  });
});

describe.runIf(pgAvailable())('a connector reading a department PostgreSQL table', () => {
  let tdb: TestDatabase;
  let source: TestDatabase;
  let client: pg.Client;
  let sql5432: ReturnType<typeof testSources>;
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
    for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
    source = await createPgDatabase();
    sql5432 = testSources({ allow: [new URL(source.url!).host] });
    client = new pg.Client({ connectionString: source.url });
    await client.connect();
    await client.query(`create table rk_person (id text primary key, sfzh text, xm text, xb text, mz text, csrq text, csd text, hjdz text, hjdjjg text, hyzk text, swbs text, updated_at timestamptz not null)`);
    // 60 rows sharing three timestamps with microseconds: a cursor on the timestamp alone would lose or repeat rows
    for (let i = 0; i < 60; i++) {
      const p = person(2000 + i);
      await client.query(`insert into rk_person values ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11, $12::timestamptz)`, [p.id, p.sfzh, p.xm, p.xb, p.mz, p.csrq, p.csd, p.hjdz, p.hjdjjg, p.hyzk, p.swbs, `2026-05-01 10:00:00.${String(123456 + Math.floor(i / 20))}+08`]);
    }
  });
  afterAll(async () => {
    await client?.end();
    await source?.drop();
    await tdb?.drop();
  });

  it('follows the (updated_at, id) cursor across ties and picks up later changes only', async () => {
    const at = new URL(source.url!);
    const config = { host: at.hostname, port: Number(at.port || 5432), database: at.pathname.slice(1), user: at.username || 'postgres', secret: 'rk-password', table: 'rk_person' };
    await approvedSource(tdb.database.db, { id: 'pop-sql', name: '人口库表', departmentCode: POLICE, kind: 'population', adapter: 'sql', config }, { secret: { name: 'rk-password', value: at.password || 'unused-with-trust' } });
    const r0 = await runSync(tdb.database, 'pop-sql', sql5432, { pageSize: 7 });
    expect(r0, String(r0.error)).toMatchObject({ status: 'SUCCEEDED', fetched: 60, inserted: 60 });
    await client.query(`update rk_person set hyzk = '20', updated_at = '2026-06-01 09:00:00.000001+08' where id in ('P0002003', 'P0002044')`);
    expect(await runSync(tdb.database, 'pop-sql', sql5432, { pageSize: 7 })).toMatchObject({ status: 'SUCCEEDED', fetched: 2, updated: 2, inserted: 0 });
    expect(await runSync(tdb.database, 'pop-sql', sql5432, { pageSize: 7 })).toMatchObject({ status: 'SUCCEEDED', fetched: 0 });
    // the database server on loopback is not listed: the policy refuses it before a byte is sent
    const refused = await runSync(tdb.database, 'pop-sql', testSources(), { full: true });
    expect(refused).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/EGRESS_REFUSED \(ADDRESS\)/) });
  });

  it('never runs one connector twice at once', async () => {
    const [a, b] = await Promise.all([runSync(tdb.database, 'pop-sql', sql5432, { full: true, pageSize: 5 }), runSync(tdb.database, 'pop-sql', sql5432, { full: true, pageSize: 5 })]);
    expect([a.status, b.status].sort()).toEqual(['SKIPPED', 'SUCCEEDED']);
  });
});
