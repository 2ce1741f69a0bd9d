import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listQuarantine, runSync, type SyncSources } from '../connectors/sync.ts';
import { approvedSource, hostOf, MASTER_KEY, testSources } from './helpers/sources.ts';
import { startSimulator, writeSnapshot, type Simulator } from '../connectors/simulators/index.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { createDepartment } from '../directory/departments.ts';
import { redisConnection, startQueueWorker } from '../workers/bullmq.ts';
import { createTestDatabase, pgAvailable, redisUrl, type TestDatabase } from './helpers/db.ts';
import { TEST_MASTER_KEY } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const [POLICE, MARKET, CREDIT] = DEMO_DEPARTMENTS.map((d) => d.code);
const TOKEN = 'population-source-token';
const env = { ...process.env };
const fast = { retry: { attempts: 3, baseDelayMs: 5, maxDelayMs: 20 }, breaker: { threshold: 5, cooldownMs: 60_000 } };
const RK_SECRET = { name: 'rk-token', value: TOKEN };

/** What the source holds: the valid records' subjects, and how many are invalid. */
function expected(sim: Simulator, subjectOf: (r: Record<string, unknown>) => string) {
  const valid = new Set<string>();
  let invalid = 0;
  for (let i = 0; i < sim.recordCount; i++) {
    if (sim.invalidReason(i)) invalid++;
    else valid.add(subjectOf(sim.current(i) as unknown as Record<string, unknown>));
  }
  return { valid, invalid };
}

async function subjects(tdb: TestDatabase, kind: string): Promise<string[]> {
  return (await rows<{ key: string }>(tdb.database.db, sql`select key from base_records where kind = ${kind} order by key`)).map((r) => r.key);
}

describe.runIf(pgAvailable())('connectors against the department simulators', () => {
  let tdb: TestDatabase;
  let population: Simulator;
  let market: Simulator;
  let credit: Simulator;
  let sources: SyncSources;
  let importDir: string;
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
    for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
    population = await startSimulator({ kind: 'population', records: 6000, auth: { type: 'bearer', token: TOKEN } });
    market = await startSimulator({ kind: 'legal_person', records: 3000, auth: { type: 'apikey', header: 'x-api-key', key: 'market-key' } });
    credit = await startSimulator({ kind: 'credit', records: 3000, auth: { type: 'hmac', keyId: 'hub', secret: 'credit-secret' } });
    importDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-csv-'));
    sources = testSources({ allow: [population.url, market.url, credit.url].map(hostOf), importDir });
    await approvedSource(tdb.database.db, { id: 'pop-http', name: '公安人口', departmentCode: POLICE!, kind: 'population', adapter: 'http', config: { url: population.url, auth: { type: 'bearer', secret: 'rk-token' }, timeoutMs: 500, pageSize: 500 } }, { secret: RK_SECRET });
    await approvedSource(tdb.database.db, { id: 'lp-http', name: '市场监管法人', departmentCode: MARKET!, kind: 'legal_person', adapter: 'http', config: { url: market.url, auth: { type: 'apikey', header: 'x-api-key', secret: 'sc-key' }, pageSize: 700 } }, { secret: { name: 'sc-key', value: 'market-key' } });
    await approvedSource(tdb.database.db, { id: 'credit-http', name: '信用平台', departmentCode: CREDIT!, kind: 'credit', adapter: 'http', config: { url: credit.url, auth: { type: 'hmac', keyId: 'hub', secret: 'xy-secret' }, pageSize: 1000 } }, { secret: { name: 'xy-secret', value: 'credit-secret' } });
  });
  afterAll(async () => {
    await Promise.all([population?.close(), market?.close(), credit?.close()]);
    if (importDir) fs.rmSync(importDir, { recursive: true, force: true });
    await tdb?.drop();
  });

  it('pulls population over HTTP: the table equals the source, invalid records quarantined with reasons', async () => {
    const report = await runSync(tdb.database, 'pop-http', sources, fast);
    const want = expected(population, (r) => String(r.sfzh));
    expect(report).toMatchObject({ status: 'SUCCEEDED', fetched: 6000, inserted: want.valid.size });
    expect(Object.values(report.quarantined).reduce((a, b) => a + b, 0)).toBe(want.invalid);
    expect(Object.keys(report.quarantined).every((r) => ['ID_NUMBER_INVALID', 'REQUIRED_MISSING'].includes(r))).toBe(true);
    expect(await subjects(tdb, 'population')).toEqual([...want.valid].sort());
  });

  it('takes a change of 10% incrementally, keeps the prior versions, and lands records the source fixed', async () => {
    const { changed } = population.advance(0.1);
    const before = (await listQuarantine(tdb.database.db, 'pop-http')).length;
    const report = await runSync(tdb.database, 'pop-http', sources, fast);
    expect(report.status).toBe('SUCCEEDED');
    expect(report.fetched).toBe(changed);
    const want = expected(population, (r) => String(r.sfzh));
    expect(await subjects(tdb, 'population')).toEqual([...want.valid].sort());
    expect((await listQuarantine(tdb.database.db, 'pop-http')).length).toBe(want.invalid);
    expect(want.invalid).toBeLessThan(before); // some were fixed at the source
    const [{ n } = { n: 0 }] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from base_record_history where kind = 'population' and version = 2`);
    expect(n).toBe(report.updated);
  });

  it('survives malformed JSON and repeated pages without losing or duplicating anything', async () => {
    population.advance(0.05);
    population.setFaults({ mode: 'malformed', count: 1 });
    const r1 = await runSync(tdb.database, 'pop-http', sources, fast);
    expect(r1.status).toBe('SUCCEEDED');
    population.advance(0.05);
    population.setFaults({ mode: 'repeat', count: 2 });
    const r2 = await runSync(tdb.database, 'pop-http', sources, fast);
    expect(r2.status).toBe('SUCCEEDED');
    // A repeated last page of the previous run says "nothing more": the source lied, and the next run catches up.
    population.setFaults({ mode: 'none' });
    expect((await runSync(tdb.database, 'pop-http', sources, fast)).status).toBe('SUCCEEDED');
    const want = expected(population, (r) => String(r.sfzh));
    expect(await subjects(tdb, 'population')).toEqual([...want.valid].sort());
  });

  it('retries 500s, then opens the circuit and fails the run with its reason; later runs fail fast until it closes', async () => {
    population.setFaults({ mode: 'error500', count: 50 });
    const failed = await runSync(tdb.database, 'pop-http', sources, { ...fast, full: true });
    expect(failed).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^(CIRCUIT_OPEN after 5 consecutive failures|SOURCE_FAILED after 3 attempt\(s\)): HTTP 500/) });
    // a second failing run pushes the count to the threshold if the first stopped at its retry limit
    const second = await runSync(tdb.database, 'pop-http', sources, { ...fast, full: true });
    expect(second).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/CIRCUIT_OPEN/) });
    const fastFail = await runSync(tdb.database, 'pop-http', sources, { ...fast, full: true });
    expect(fastFail).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^CIRCUIT_OPEN: the source failed \d+ times in a row; next try after/) });
    population.setFaults({ mode: 'none' });
    const recovered = await runSync(tdb.database, 'pop-http', sources, { ...fast, breaker: { threshold: 5, cooldownMs: 0 } });
    expect(recovered.status).toBe('SUCCEEDED');
    const state = await rows<{ circuit: string }>(tdb.database.db, sql`select circuit from connector_state where connector_id = 'pop-http'`);
    expect(state[0]!.circuit).toBe('CLOSED');
  });

  it('stops at a batch boundary on shutdown (SIGTERM) and resumes from that checkpoint', async () => {
    const { changed } = population.advance(0.5);
    const controller = new AbortController();
    let batches = 0;
    const stopped = await runSync(tdb.database, 'pop-http', sources, {
      ...fast,
      signal: controller.signal,
      pageSize: 200,
      onProgress: (p) => {
        batches = p.batches;
        if (batches === 3) controller.abort();
      },
    });
    expect(stopped).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^INTERRUPTED/), batches: 3 });
    const resumed = await runSync(tdb.database, 'pop-http', sources, fast);
    expect(resumed.status).toBe('SUCCEEDED');
    expect(stopped.fetched + resumed.fetched).toBe(changed); // nothing read twice, nothing skipped
    const want = expected(population, (r) => String(r.sfzh));
    expect(await subjects(tdb, 'population')).toEqual([...want.valid].sort());
  });

  it('gives up on a source that times out, naming the timeout', async () => {
    population.setFaults({ mode: 'timeout', count: 3 });
    const r = await runSync(tdb.database, 'pop-http', sources, { ...fast, breaker: { threshold: 10, cooldownMs: 0 } });
    expect(r).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/SOURCE_FAILED after 3 attempt\(s\): request failed: timed out after 500 ms/) });
    population.setFaults({ mode: 'none' });
  });

  it('pulls legal persons over HTTP (API key) and from a CSV export, and credit entries with HMAC signing', async () => {
    const lp = await runSync(tdb.database, 'lp-http', sources, fast);
    const wantLp = expected(market, (r) => String(r.tyshxydm));
    expect(lp).toMatchObject({ status: 'SUCCEEDED', fetched: 3000, inserted: wantLp.valid.size });
    expect(Object.keys(lp.quarantined).every((r) => ['USCC_INVALID', 'REQUIRED_MISSING'].includes(r))).toBe(true);
    expect(await subjects(tdb, 'legal_person')).toEqual([...wantLp.valid].sort());

    fs.mkdirSync(path.join(importDir, MARKET!));
    await writeSnapshot(market, path.join(importDir, MARKET!, 'legal-persons.csv'), 'csv');
    await approvedSource(tdb.database.db, { id: 'lp-csv', name: '市场监管法人CSV', departmentCode: MARKET!, kind: 'legal_person', adapter: 'file', config: { path: 'legal-persons.csv', format: 'csv', pageSize: 1000 } });
    const csv = await runSync(tdb.database, 'lp-csv', sources, fast);
    expect(csv).toMatchObject({ status: 'SUCCEEDED', fetched: 3000, inserted: 0, unchanged: wantLp.valid.size }); // the same content as the HTTP pull

    const cr = await runSync(tdb.database, 'credit-http', sources, fast);
    const wantCredit = expected(credit, (r) => String(r.id));
    expect(cr).toMatchObject({ status: 'SUCCEEDED', fetched: 3000, inserted: wantCredit.valid.size });
    expect(Object.keys(cr.quarantined).every((r) => ['SUBJECT_CODE_INVALID', 'REQUIRED_MISSING'].includes(r))).toBe(true);
    expect(await subjects(tdb, 'credit')).toEqual([...wantCredit.valid].sort());
  });
});

describe.runIf(pgAvailable() && redisUrl() !== '')('sync workers on BullMQ', () => {
  let tdb: TestDatabase;
  let sim: Simulator;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
    for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
    sim = await startSimulator({ kind: 'population', records: 40_000, auth: { type: 'bearer', token: TOKEN } });
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await sim?.close();
    await tdb?.drop();
  });

  const startWorker = (queue: string) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
      env: { ...env, HUB_EGRESS_ALLOW: hostOf(sim.url), DATABASE_URL: tdb.url!, REDIS_URL: redisUrl(), HUB_QUEUE: queue, HUB_MASTER_KEY: TEST_MASTER_KEY, HUB_LOG_LEVEL: 'warn', NODE_ENV: '' },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
    return child;
  };

  it('resumes after a worker is SIGKILLed mid-sync: the table equals the source, nothing lost, nothing twice', async () => {
    await approvedSource(tdb.database.db, { id: 'pop-kill', name: '公安人口', departmentCode: POLICE!, kind: 'population', adapter: 'http', config: { url: sim.url, auth: { type: 'bearer', secret: 'rk-token' }, pageSize: 400 } }, { secret: RK_SECRET });
    const queueName = `hub-kill-${crypto.randomBytes(5).toString('hex')}`;
    const queue = new Queue(queueName, { connection: redisConnection(redisUrl()) });
    try {
      const first = startWorker(queueName);
      await queue.add('connectors.sync', { connectorId: 'pop-kill', trigger: 'test' });
      const batches = async () => (await rows<{ b: number }>(tdb.database.db, sql`select coalesce(max(batches), 0)::int8 as b from sync_runs where connector_id = 'pop-kill'`))[0]!.b;
      await expect.poll(batches, { timeout: 60_000, interval: 50 }).toBeGreaterThanOrEqual(5);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const [killed] = await rows<{ status: string; fetched: number }>(tdb.database.db, sql`select status, fetched from sync_runs where connector_id = 'pop-kill'`);
      expect(killed).toMatchObject({ status: 'RUNNING' });
      expect(killed!.fetched).toBeLessThan(40_000);

      startWorker(queueName);
      await queue.add('connectors.sync', { connectorId: 'pop-kill', trigger: 'test' });
      await expect
        .poll(async () => (await rows<{ status: string }>(tdb.database.db, sql`select status from sync_runs where connector_id = 'pop-kill' and status = 'SUCCEEDED'`)).length, { timeout: 90_000, interval: 200 })
        .toBeGreaterThanOrEqual(1);
      const runs = await rows<{ status: string; fetched: number; error: string | null }>(tdb.database.db, sql`select status, fetched, error from sync_runs where connector_id = 'pop-kill' order by started_at`);
      expect(runs[0]).toMatchObject({ status: 'FAILED', error: expect.stringMatching(/^ABANDONED/) });
      const done = runs.find((r) => r.status === 'SUCCEEDED')!;
      expect(done.fetched).toBeLessThan(40_000); // it resumed from the checkpoint instead of starting over
      const want = expected(sim, (r) => String(r.sfzh));
      expect(await subjects(tdb, 'population')).toEqual([...want.valid].sort());
      const [{ n } = { n: 0 }] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from base_record_history where kind = 'population'`);
      expect(n).toBe(want.valid.size); // one version each: nothing written twice
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });

  it('runs each scheduled sync once with two workers', async () => {
    const small = await startSimulator({ kind: 'population', records: 300, auth: { type: 'bearer', token: TOKEN } });
    await approvedSource(tdb.database.db, {
      id: 'pop-cron',
      name: '公安人口（定时）',
      departmentCode: POLICE!,
      kind: 'population',
      adapter: 'http',
      config: { url: small.url, auth: { type: 'bearer', secret: 'rk-token' }, pageSize: 5000 },
      schedule: '*/2 * * * * *',
    });
    const queueName = `hub-cron-${crypto.randomBytes(5).toString('hex')}`;
    const deps = { database: tdb.database, db: tdb.database.db, logger: log, masterKey: MASTER_KEY, egress: testSources({ allow: [hostOf(small.url)] }).egress };
    const a = await startQueueWorker(deps, { redisUrl: redisUrl(), queueName });
    const b = await startQueueWorker(deps, { redisUrl: redisUrl(), queueName });
    try {
      await new Promise((r) => setTimeout(r, 9000));
      const schedulers = (await a.queue.getJobSchedulers()).filter((s) => s.key === 'sync.pop-cron');
      expect(schedulers).toHaveLength(1);
      // no job starts from here on and the ones running finish, so the jobs and the runs they recorded are counted
      // at rest (counted while a sync was starting, one could be in one count and not yet in the other)
      await a.queue.pause();
      await expect.poll(() => a.queue.getActiveCount(), { timeout: 10_000, interval: 50 }).toBe(0);
      const completed = await a.queue.getJobs(['completed']);
      const syncs = completed.filter((j) => j.name === 'connectors.sync' && j.data.connectorId === 'pop-cron');
      expect(syncs.length).toBeGreaterThanOrEqual(3);
      // one job per firing, however many workers: the scheduler's job ids carry the firing time
      expect(new Set(syncs.map((j) => j.id)).size).toBe(syncs.length);
      expect(new Set(syncs.map((j) => j.timestamp)).size).toBe(syncs.length);
      expect(syncs.every((j) => (j.returnvalue as { status: string }).status !== 'SKIPPED')).toBe(true);
      const runs = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from sync_runs where connector_id = 'pop-cron'`);
      const failed = (await a.queue.getJobs(['failed'])).filter((j) => j.data.connectorId === 'pop-cron');
      expect(failed).toHaveLength(0);
      expect(runs[0]!.n).toBe(syncs.length);
    } finally {
      await a.queue.obliterate({ force: true });
      await b.close();
      await a.close();
      await small.close();
    }
  });
});
