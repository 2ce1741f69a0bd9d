import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { createCheckpoint, verifyAuditLog } from '../audit/checkpoints.ts';
import { AuditWriter, type AuditRecord } from '../audit/writer.ts';
import { fetchAccessToken, readClientFile } from '../auth/client-file.ts';
import { auditPublicKey, ensureHubKeys, KeyRing } from '../auth/keys.ts';
import { checkMasterKey } from '../auth/master-key.ts';
import { HUB_NODE_FLAGS } from '../core/config.ts';
import { canonicalJson } from '../basedata/store.ts';
import { httpAdapter } from '../connectors/adapters.ts';
import { applyMapping, PRESET_MAPPINGS, toIncoming } from '../connectors/records.ts';
import { designateBaseSource } from '../connectors/authority.ts';
import { SecretReader } from '../connectors/secrets.ts';
import { EgressPolicy } from '../core/egress.ts';
import { registerSource } from '../db/seeds/demo-sources.ts';
import { runSync } from '../connectors/sync.ts';
import { systemContext } from '../core/context.ts';
import { createLogger } from '../core/logger.ts';
import { openDatabase, rows, type Db } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { createDepartment } from '../directory/departments.ts';
import { idNumberCheckChar } from '../core/ids.ts';
import { createLicenceBatch, signedFormsOf, type IssueLicenceInput } from '../licence/issue.ts';
import { decodeCompactJws } from '../licence/jws.ts';
import { LicencePki } from '../licence/pki.ts';
import { registerLicenceType } from '../licence/types.ts';
import { LicenceVerifier } from '../licence/verify.ts';
import { JOBS } from '../workers/jobs.ts';
import { load, startProcess, stop, type LoadResult } from './load.ts';

/**
 * `npm run bench -- NAME`. Each benchmark measures its baseline in the same run, with the same load tool from a
 * separate process, and ends with one line: `NAME: ours X unit, baseline Y unit, ratio R`.
 */
const benches: Record<string, () => Promise<void>> = { gateway, ingest, audit, lookup, licence };

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));

/** Rounds taken together: requests over the whole time, and each latency percentile as the median round's. */
function overRounds(rounds: LoadResult[]): LoadResult {
  const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!;
  const sum = (f: (r: LoadResult) => number) => rounds.reduce((n, r) => n + f(r), 0);
  return { requestsPerSecond: sum((r) => r.requestsPerSecond) / rounds.length, p50: median(rounds.map((r) => r.p50)), p99: median(rounds.map((r) => r.p99)), errors: sum((r) => r.errors), non2xx: sum((r) => r.non2xx), total: sum((r) => r.total) };
}

function show(label: string, r: LoadResult): void {
  process.stdout.write(
    `${label.padEnd(42)} ${r.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${String(r.p50).padStart(3)} ms   p99 ${String(r.p99).padStart(3)} ms   errors ${r.errors}   non-2xx ${r.non2xx}\n`,
  );
}

/** Bare graphql-yoga `{ hello }` against the hub's authenticated `viewer` (token verified, client checked, metrics, logs). */
async function gateway(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-bench-'));
  const baseline = await startProcess([...HUB_NODE_FLAGS, '--import', 'tsx', 'bench/baseline-yoga.ts'], process.env, (l) => l.startsWith('{"port"'));
  const hub = await startProcess(
    [...HUB_NODE_FLAGS, '--import', 'tsx', 'gateway/main.ts'],
    { ...process.env, HUB_DATA_DIR: dataDir, PORT: '0', HUB_HOST: '127.0.0.1', DATABASE_URL: '', REDIS_URL: '', NODE_ENV: 'production' },
    (l) => l.includes('"hub listening"'),
  );
  try {
    const baseUrl = `http://127.0.0.1:${JSON.parse(baseline.line).port}/graphql`;
    const hubBase = `http://127.0.0.1:${JSON.parse(hub.line).port}`;
    const { access_token } = await fetchAccessToken(readClientFile(path.join(dataDir, 'demo-client.json')), hubBase);
    const json = { 'content-type': 'application/json' };
    // The embedded demo pulls 300,000 records from its simulators at start: measure once that is done.
    const admin = await fetchAccessToken(readClientFile(path.join(dataDir, 'demo-admin.json')), hubBase);
    const settled = Date.now();
    for (;;) {
      const res = await fetch(`${hubBase}/graphql`, {
        method: 'POST',
        headers: { ...json, authorization: `Bearer ${admin.access_token}` },
        body: JSON.stringify({ query: '{ connectors { id state { lastCompletedAt } } }' }),
      });
      const body = (await res.json()) as { data?: { connectors: { state: { lastCompletedAt: string | null } | null }[] } };
      if (body.data?.connectors.every((c) => c.state?.lastCompletedAt)) break;
      if (Date.now() - settled > 600_000) throw new Error('the demo syncs did not finish in 10 minutes');
      await new Promise((r) => setTimeout(r, 2000));
    }
    process.stdout.write(`(the demo's first syncs finished ${((Date.now() - settled) / 1000).toFixed(0)} s after start)\n`);
    const base = { url: baseUrl, connections: CONNECTIONS, body: JSON.stringify({ query: '{ hello }' }), headers: json };
    const ours = {
      url: `${hubBase}/graphql`,
      connections: CONNECTIONS,
      body: JSON.stringify({ query: '{ viewer { clientId name department roles } }' }),
      headers: { ...json, authorization: `Bearer ${access_token}` },
    };
    process.stdout.write(`gateway bench: ${CONNECTIONS} connections, ${SECONDS} s each after ${WARMUP} s warm-up, autocannon in its own process, ${os.cpus().length} cores\n`);
    await load({ ...base, seconds: WARMUP });
    await load({ ...ours, seconds: WARMUP });
    const b = await load({ ...base, seconds: SECONDS });
    show('baseline: yoga { hello }', b);
    const o = await load({ ...ours, seconds: SECONDS });
    show('ours: authenticated viewer', o);
    if (o.non2xx > 0 || o.errors > 0) throw new Error('the hub answered errors under load: the figure would not be a fair one');
    process.stdout.write(
      `gateway: ours ${o.requestsPerSecond.toFixed(0)} req/s (p50 ${o.p50} ms, p99 ${o.p99} ms), baseline ${b.requestsPerSecond.toFixed(0)} req/s (p50 ${b.p50} ms, p99 ${b.p99} ms), ratio ${(o.requestsPerSecond / b.requestsPerSecond).toFixed(2)}\n`,
    );
  } finally {
    await stop(baseline.child);
    await stop(hub.child);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * 1,000,000 population records from the simulator (its own process) over HTTP, through mapping, validation, hashing,
 * history and upsert, against raw 2,000-row `INSERT … SELECT unnest(…) ON CONFLICT` upserts of the same rows into
 * a table of the same shape, in the same run and the same database (synchronous_commit on).
 */
async function ingest(): Promise<void> {
  const records = Number(process.env.BENCH_RECORDS ?? 1_000_000);
  const { url, dropDatabase } = await benchDatabase();
  const token = crypto.randomBytes(16).toString('hex');
  const sim = await startProcess(
    ['--import', 'tsx', 'connectors/simulators/main.ts', '--kind', 'population', '--records', String(records), '--bearer', token],
    process.env,
    (l) => l.startsWith('{"url"'),
  );
  const simUrl = (JSON.parse(sim.line) as { url: string }).url;
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 4, appRole: true });
  try {
    await migrateDatabase(database);
    const db = database.db;
    const [{ synchronous_commit } = { synchronous_commit: '?' }] = await rows<{ synchronous_commit: string }>(db, sql`show synchronous_commit`);
    process.stdout.write(`ingest bench: ${records} population records, simulator in its own process, PostgreSQL synchronous_commit=${synchronous_commit}, page 2000\n`);
    const police = DEMO_DEPARTMENTS[0];
    await createDepartment(db, police);
    // registered as a department and the operator do: 公安 is designated the population source, stores its token, drafts
    // the connector; another client approves it. The simulator's loopback address is listed for the egress policy.
    const log = createLogger({ level: 'silent' });
    const masterKey = crypto.randomBytes(32);
    const egress = EgressPolicy.fromConfig(new URL(simUrl).host, { ports: [] });
    const sources = { masterKey, egress };
    await designateBaseSource(systemContext(db, log, police.code, 'bench-operator'), 'population', police.code, 'the bench\'s source');
    await registerSource(db, log, masterKey, { id: 'bench-pop', name: 'bench', departmentCode: police.code, kind: 'population', adapter: 'http', config: { url: simUrl, auth: { type: 'bearer', secret: 'bench-token' }, pageSize: 2000, timeoutMs: 60_000 } }, { secret: { name: 'bench-token', value: token }, drafter: 'bench', operator: { clientId: 'bench-operator', department: police.code } });

    let t = Date.now();
    const first = await runSync(database, 'bench-pop', sources, { full: true });
    const firstRate = first.fetched / ((Date.now() - t) / 1000);
    process.stdout.write(`ours, first pass:      ${first.fetched} fetched, ${first.inserted} inserted, ${JSON.stringify(first.quarantined)} quarantined: ${firstRate.toFixed(0)} records/s\n`);
    if (first.status !== 'SUCCEEDED') throw new Error(`first pass ${first.status}: ${first.error}`);

    const adv = (await (await fetch(`${simUrl}/control/advance`, { method: 'POST', body: JSON.stringify({ share: 0.1 }), headers: { 'content-type': 'application/json' } })).json()) as { changed: number };
    t = Date.now();
    const second = await runSync(database, 'bench-pop', sources, { full: true });
    const secondRate = second.fetched / ((Date.now() - t) / 1000);
    process.stdout.write(`ours, second full pass: ${adv.changed} changed at the source: ${second.updated} updated, ${second.inserted} inserted, ${second.unchanged} unchanged: ${secondRate.toFixed(0)} records/s\n`);

    // Baseline: the same rows, already fetched and mapped (not timed), upserted raw into a table of the same shape.
    const rowsForBaseline: { key: string; subject: string; data: string; hash: string; sourceId: string }[] = [];
    let cursor: Record<string, unknown> | null = null;
    const adapter = httpAdapter({ url: simUrl, auth: { type: 'bearer', secret: 'bench-token' }, timeoutMs: 60_000 }, { egress, secrets: new SecretReader(db, masterKey, police.code) });
    for (;;) {
      const page = await adapter.fetchPage(cursor, { pageSize: 5000, signal: new AbortController().signal });
      for (const r of page.records) {
        try {
          const inc = toIncoming('population', applyMapping(r, PRESET_MAPPINGS.population), String(r.id));
          const data = canonicalJson(inc.data);
          rowsForBaseline.push({ key: inc.key, subject: inc.subject, data, hash: crypto.createHash('sha256').update(data).digest('hex'), sourceId: inc.sourceId });
        } catch {
          // quarantined on our side too: not part of the rows either path writes
        }
      }
      if (!page.next) break;
      cursor = page.next;
    }
    // DDL is the owner's: the hub's role may create nothing
    const owner = new pg.Client({ connectionString: url.toString() });
    await owner.connect();
    await owner.query('create table base_records_baseline (like base_records including all)');
    await owner.end();
    t = Date.now();
    for (let i = 0; i < rowsForBaseline.length; i += 2000) {
      const chunk = rowsForBaseline.slice(i, i + 2000);
      await db.execute(sql`insert into base_records_baseline as b (kind, key, subject, data, content_hash, version, connector_id, source_id, flags, retrieved_at, updated_at)
        select 'population', key, subject, data::jsonb, content_hash, 1, 'bench-pop', source_id, '{}'::text[], now(), now()
        from unnest(${sql.param(chunk.map((c) => c.key))}::text[], ${sql.param(chunk.map((c) => c.subject))}::text[], ${sql.param(chunk.map((c) => c.data))}::text[],
                    ${sql.param(chunk.map((c) => c.hash))}::text[], ${sql.param(chunk.map((c) => c.sourceId))}::text[]) as t(key, subject, data, content_hash, source_id)
        on conflict (kind, key) do update set data = excluded.data, content_hash = excluded.content_hash, version = b.version + 1, updated_at = now()`);
    }
    const baseRate = rowsForBaseline.length / ((Date.now() - t) / 1000);
    process.stdout.write(`baseline raw upserts:   ${rowsForBaseline.length} rows: ${baseRate.toFixed(0)} rows/s\n`);
    process.stdout.write(`ingest: ours ${firstRate.toFixed(0)} records/s (second pass with 10% changed ${secondRate.toFixed(0)} records/s), baseline ${baseRate.toFixed(0)} records/s, ratio ${(firstRate / baseRate).toFixed(2)}\n`);
  } finally {
    await database.close();
    await stop(sim.child);
    await dropDatabase();
  }
}

/**
 * Durable, chained appends through the group-commit writer (64 concurrent callers, each awaiting its own commit, as
 * request handlers do) against plain multi-row INSERTs of the same rows, of the same batch size, into a table of
 * the same shape; then the seconds `verifyAuditLog` takes over the whole log.
 */
async function audit(): Promise<void> {
  const total = Number(process.env.BENCH_ENTRIES ?? 1_000_000);
  const callers = 64;
  const { url, dropDatabase } = await benchDatabase();
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 4, appRole: true });
  try {
    await migrateDatabase(database);
    const db = database.db;
    const [{ synchronous_commit } = { synchronous_commit: '?' }] = await rows<{ synchronous_commit: string }>(db, sql`show synchronous_commit`);
    process.stdout.write(`audit bench: ${total} entries, ${callers} concurrent callers, PostgreSQL synchronous_commit=${synchronous_commit}\n`);
    const entry = (i: number): AuditRecord => ({
      clientId: `client-${i % 7}`,
      department: '11350100003500043N',
      operator: `op-${i % 31}`,
      itemCode: '350100-DJ-0001',
      caseId: `CASE-${i}`,
      operation: 'PERSON_READ',
      resourceCode: '1-01-001/000001',
      subject: `3501021990${String(i).padStart(8, '0')}`,
      fields: ['name', 'gender', 'birthDate'],
      outcome: 'RETURNED',
      requestId: crypto.randomUUID(),
    });
    const writer = new AuditWriter(db);
    let next = 0;
    let t = Date.now();
    await Promise.all(
      Array.from({ length: callers }, async () => {
        for (let i = next++; i < total; i = next++) await writer.append(entry(i));
      }),
    );
    const oursSeconds = (Date.now() - t) / 1000;
    const [{ batches } = { batches: 1 }] = await rows<{ batches: number }>(db, sql`select count(distinct at)::int8 as batches from audit_entries`);
    const batchSize = Math.max(1, Math.round(total / batches));
    const ours = total / oursSeconds;
    process.stdout.write(`ours: chained, group-committed appends: ${ours.toFixed(0)} entries/s in ${batches} transactions (about ${batchSize} entries each)\n`);

    const owner = new pg.Client({ connectionString: url.toString() });
    await owner.connect();
    await owner.query('create table audit_entries_baseline (like audit_entries including all)');
    await owner.end();
    t = Date.now();
    for (let start = 0; start < total; start += batchSize) {
      const n = Math.min(batchSize, total - start);
      const records = Array.from({ length: n }, (_, k) => ({ ...entry(start + k), seq: start + k + 1 }));
      // one autocommitted statement per batch, as ours is (at most 64 × 15 parameters)
      await db.execute(sql`insert into audit_entries_baseline (seq, at, client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, request_id, prev_hash, hash) values ${sql.join(
        records.map((r) => sql`(${r.seq}, now(), ${r.clientId}, ${r.department}, ${r.operator}, ${r.itemCode}, ${r.caseId}, ${r.operation}, ${r.resourceCode}, ${r.subject}, ${sql.param(r.fields)}::text[], ${r.outcome}, ${r.requestId}, '', '')`),
        sql`, `,
      )}`);
    }
    const baseline = total / ((Date.now() - t) / 1000);
    process.stdout.write(`baseline: plain multi-row INSERTs of the same rows, ${batchSize} per statement: ${baseline.toFixed(0)} entries/s\n`);

    const ring = await KeyRing.open(database, await ensureKeysForBench(db));
    await createCheckpoint(db, ring, 'http://bench');
    t = Date.now();
    const report = await verifyAuditLog(db, (kid) => auditPublicKey(db, kid));
    const verifySeconds = (Date.now() - t) / 1000;
    await ring.close();
    process.stdout.write(`verify: ${report.entries} entries and ${report.checkpoints} checkpoint(s) ${report.ok ? 'verified' : 'FAILED'} in ${verifySeconds.toFixed(1)} s\n`);
    process.stdout.write(`audit: ours ${ours.toFixed(0)} entries/s, baseline ${baseline.toFixed(0)} entries/s, ratio ${(ours / baseline).toFixed(2)} (verify ${report.entries} entries: ${verifySeconds.toFixed(1)} s)\n`);
  } finally {
    await database.close();
    await dropDatabase();
  }
}

async function ensureKeysForBench(db: Db): Promise<Buffer> {
  const key = crypto.randomBytes(32);
  await checkMasterKey(db, key);
  await ensureHubKeys(db, key);
  return key;
}

/** A fresh PostgreSQL database for one benchmark (`BENCH_PG_URL`, default the local server), dropped after. */
async function benchDatabase(): Promise<{ url: URL; dropDatabase: () => Promise<void> }> {
  const adminUrl = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `hub_bench_${crypto.randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${dbName}`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  return {
    url,
    async dropDatabase() {
      // BENCH_KEEP=1 leaves the database for a look afterwards (its name is printed)
      if (process.env.BENCH_KEEP) process.stdout.write(`kept database ${dbName}\n`);
      else await admin.query(`drop database if exists ${dbName} with (force)`);
      await admin.end();
    },
  };
}

/** Runs the load process (autocannon, bodies cycled from a file) and reads its result. */
async function loadWith(config: { url: string; connections: number; seconds: number; headers: Record<string, string>; bodies: string[] }): Promise<LoadResult> {
  const file = path.join(os.tmpdir(), `hub-load-${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(file, JSON.stringify(config));
  try {
    const { line } = await startProcess(['--import', 'tsx', 'bench/load-worker.ts', file], process.env, (l) => l.startsWith('{"requestsPerSecond"'), (config.seconds + 60) * 1000);
    return JSON.parse(line) as LoadResult;
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/**
 * Authenticated, purpose-bound, audited `person` lookups over HTTP against the hub on PostgreSQL (synchronous_commit
 * on), 32 connections from a separate load process, against bare graphql-yoga `{ hello }` with the same tool; then
 * batch lookups of 100 subjects per call over as many connections, each subject its own durable audit entry.
 */
async function lookup(): Promise<void> {
  const people = Number(process.env.BENCH_PEOPLE ?? 20_000);
  const { url, dropDatabase } = await benchDatabase();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-bench-'));
  const masterKey = crypto.randomBytes(32).toString('hex');
  const token = crypto.randomBytes(16).toString('hex');
  const children: { child: ChildProcess }[] = [];
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 4, appRole: true });
  try {
    await migrateDatabase(database);
    const db = database.db;
    const log = createLogger({ level: 'silent' });
    await seedDemo(db, { clientDir: dataDir, tokenEndpoint: 'http://127.0.0.1/oauth/token', logger: log });
    const sim = await startProcess(['--import', 'tsx', 'connectors/simulators/main.ts', '--kind', 'population', '--records', String(people), '--bearer', token], process.env, (l) => l.startsWith('{"url"'));
    children.push(sim);
    const police = DEMO_DEPARTMENTS[0];
    const simUrl = (JSON.parse(sim.line) as { url: string }).url;
    const key = Buffer.from(masterKey, 'hex');
    await registerSource(db, log, key, { id: 'bench-pop', name: 'bench', departmentCode: police.code, kind: 'population', adapter: 'http', config: { url: simUrl, auth: { type: 'bearer', secret: 'bench-token' } } }, { secret: { name: 'bench-token', value: token }, drafter: 'bench' });
    await runSync(database, 'bench-pop', { masterKey: key, egress: EgressPolicy.fromConfig(new URL(simUrl).host, { ports: [] }) });
    const ids = (await rows<{ key: string }>(db, sql`select key from base_records where kind = 'population' order by md5(key) limit 5000`)).map((r) => r.key);
    const [{ synchronous_commit } = { synchronous_commit: '?' }] = await rows<{ synchronous_commit: string }>(db, sql`show synchronous_commit`);

    const baseline = await startProcess([...HUB_NODE_FLAGS, '--import', 'tsx', 'bench/baseline-yoga.ts'], process.env, (l) => l.startsWith('{"port"'));
    children.push(baseline);
    const lean = await startProcess([...HUB_NODE_FLAGS, '--import', 'tsx', 'bench/baseline-direct.ts'], process.env, (l) => l.startsWith('{"port"'));
    children.push(lean);
    const hub = await startProcess(
      // BENCH_PROFILE=DIR writes the hub's CPU profile there (node --cpu-prof), for the profiles quoted in notes
      [...HUB_NODE_FLAGS, ...(process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : []), '--import', 'tsx', 'gateway/main.ts'],
      { ...process.env, DATABASE_URL: url.toString(), HUB_MASTER_KEY: masterKey, HUB_DATA_DIR: dataDir, PORT: '0', HUB_HOST: '127.0.0.1', REDIS_URL: '', NODE_ENV: 'production', HUB_READ_RATE: '1000000' },
      (l) => l.includes('"hub listening"'),
    );
    children.push(hub);
    const hubBase = `http://127.0.0.1:${JSON.parse(hub.line).port}`;
    const { access_token } = await fetchAccessToken(readClientFile(path.join(dataDir, 'demo-client.json')), hubBase);
    const json = { 'content-type': 'application/json' };
    const auth = { ...json, authorization: `Bearer ${access_token}` };
    const PERSON = 'query($id: String!, $p: PurposeInput!) { person(idNumber: $id, purpose: $p) { idNumber name gender birthDate maritalStatus } }';
    const purpose = (i: number) => ({ itemCode: '350100-DJ-0001', caseId: `FZ-2026-${i}`, operator: 'bench' });
    const bodies = ids.map((id, i) => JSON.stringify({ query: PERSON, variables: { id, p: purpose(i) } }));
    const check = (await (await fetch(`${hubBase}/graphql`, { method: 'POST', headers: auth, body: bodies[0] })).json()) as { data?: { person?: unknown }; errors?: unknown };
    if (!check.data?.person) throw new Error(`the lookup does not answer: ${JSON.stringify(check)}`);
    process.stdout.write(`lookup bench: ${ids.length} different subjects of ${people}, ${CONNECTIONS} connections, ${SECONDS} s each after ${WARMUP} s warm-up, PostgreSQL synchronous_commit=${synchronous_commit}\n`);
    const baseUrl = `http://127.0.0.1:${JSON.parse(baseline.line).port}/graphql`;
    const leanUrl = `http://127.0.0.1:${JSON.parse(lean.line).port}/graphql`;
    const hello = [JSON.stringify({ query: '{ hello }' })];
    // BENCH_PHASES=single or =batch measures one phase alone (while working on it); the last line needs both
    const phases = (process.env.BENCH_PHASES ?? 'single,batch').split(',');
    let b: LoadResult | undefined;
    let o: LoadResult | undefined;
    let l: LoadResult | undefined;
    if (phases.includes('single')) {
      await loadWith({ url: baseUrl, connections: CONNECTIONS, seconds: WARMUP, headers: json, bodies: hello });
      await loadWith({ url: leanUrl, connections: CONNECTIONS, seconds: WARMUP, headers: json, bodies: hello });
      await loadWith({ url: `${hubBase}/graphql`, connections: CONNECTIONS, seconds: WARMUP, headers: auth, bodies });
      // rounds alternate baseline and ours, so a slow stretch of this shared machine falls on both sides alike
      const baseRounds: LoadResult[] = [];
      const leanRounds: LoadResult[] = [];
      const ourRounds: LoadResult[] = [];
      const before = (await rows<{ n: number }>(db, sql`select count(*)::int8 as n from audit_entries`))[0]!.n;
      for (let round = 1; round <= ROUNDS; round++) {
        const rb = await loadWith({ url: baseUrl, connections: CONNECTIONS, seconds: SECONDS, headers: json, bodies: hello });
        show(`baseline: yoga { hello }, round ${round}`, rb);
        const rl = await loadWith({ url: leanUrl, connections: CONNECTIONS, seconds: SECONDS, headers: json, bodies: hello });
        show(`yoga's engine without its adapter, round ${round}`, rl);
        leanRounds.push(rl);
        const ro = await loadWith({ url: `${hubBase}/graphql`, connections: CONNECTIONS, seconds: SECONDS, headers: auth, bodies });
        show(`ours: audited person lookups, round ${round}`, ro);
        baseRounds.push(rb);
        ourRounds.push(ro);
      }
      const after = (await rows<{ n: number }>(db, sql`select count(*)::int8 as n from audit_entries`))[0]!.n;
      b = overRounds(baseRounds);
      l = overRounds(leanRounds);
      o = overRounds(ourRounds);
      process.stdout.write(`audit entries written during the rounds: ${after - before} (${o.total} lookups answered)\n`);
      process.stdout.write(`single lookups over ${ROUNDS} rounds: ours ${o.requestsPerSecond.toFixed(0)}/s (p99 ${o.p99} ms), baseline ${b.requestsPerSecond.toFixed(0)}/s, ratio ${(o.requestsPerSecond / b.requestsPerSecond).toFixed(2)}\n`);
      // the hub answers a JSON POST without yoga's fetch adapter (gateway/direct.ts); so does this stricter baseline
      process.stdout.write(`against yoga's engine without its adapter, answering { hello } as the hub answers a lookup (bench/baseline-direct.ts): ${l.requestsPerSecond.toFixed(0)} req/s (p50 ${l.p50} ms, p99 ${l.p99} ms), ratio ${(o.requestsPerSecond / l.requestsPerSecond).toFixed(2)}\n`);
    }
    const BATCH = 'query($ids: [String!]!, $p: PurposeInput!) { persons(idNumbers: $ids, purpose: $p) { idNumber name } }';
    const batches = Array.from({ length: 50 }, (_, k) => JSON.stringify({ query: BATCH, variables: { ids: ids.slice(k * 100, k * 100 + 100), p: purpose(k) } }));
    const batchConnections = Number(process.env.BENCH_BATCH_CONNECTIONS ?? CONNECTIONS);
    if (!phases.includes('batch')) return;
    await loadWith({ url: `${hubBase}/graphql`, connections: batchConnections, seconds: WARMUP, headers: auth, bodies: batches });
    const batch = await loadWith({ url: `${hubBase}/graphql`, connections: batchConnections, seconds: SECONDS, headers: auth, bodies: batches });
    process.stdout.write(`ours, batches of 100: ${(batch.requestsPerSecond * 100).toFixed(0)} subjects/s (p50 ${batch.p50} ms, p99 ${batch.p99} ms, ${batchConnections} connections, errors ${batch.errors}, non-2xx ${batch.non2xx})\n`);
    if (batch.non2xx > 0 || batch.errors > 0) throw new Error('the hub answered errors to batches: the figure would not be a fair one');
    if (!o || !b) return;
    if (o.non2xx > 0 || o.errors > 0) throw new Error('the hub answered errors under load: the figure would not be a fair one');
    process.stdout.write(`lookup: ours ${o.requestsPerSecond.toFixed(0)} lookups/s (p50 ${o.p50} ms, p99 ${o.p99} ms), baseline ${b.requestsPerSecond.toFixed(0)} req/s (p50 ${b.p50} ms, p99 ${b.p99} ms), ratio ${(o.requestsPerSecond / b.requestsPerSecond).toFixed(2)} (${ROUNDS} alternating rounds: mean rate, median percentiles)\n`);
  } finally {
    for (const c of children) await stop(c.child);
    await database.close();
    await dropDatabase();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

/**
 * Licences: issuance through the job handler the queue runs (`licence.issue-batch`: validate, sign twice, store,
 * audit, in chunks of 500), then verifications of at least 10,000 distinct credentials (signature, cached chain,
 * status from the database on every call, no result cache) against raw `crypto.verify` of the same ES256 signing
 * inputs with the same KeyObject, in the same run. No HTTP: both sides are in-process calls.
 */
async function licence(): Promise<void> {
  const total = Math.max(10_000, Number(process.env.BENCH_LICENCES ?? 20_000));
  const { url, dropDatabase } = await benchDatabase();
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 8, appRole: true });
  try {
    await migrateDatabase(database);
    const db = database.db;
    const masterKey = await ensureKeysForBench(db);
    const logger = createLogger({ level: 'silent' });
    const dept = DEMO_DEPARTMENTS[0];
    await createDepartment(db, dept);
    const typeCode = `${dept.code}901`;
    await registerLicenceType(systemContext(db, logger, dept.code), {
      code: typeCode, name: '基准测试证', definingDepartment: dept.code, holderKind: 'PERSON', issuers: [dept.code], validityYears: 10,
      faceFields: [{ code: 'XM', name: '姓名', dataType: 'C', length: 50 }, { code: 'CSRQ', name: '出生日期', dataType: 'D' }, { code: 'ZZ', name: '住址', dataType: 'C', length: 200 }],
    });
    const [{ synchronous_commit } = { synchronous_commit: '?' }] = await rows<{ synchronous_commit: string }>(db, sql`show synchronous_commit`);
    process.stdout.write(`licence bench: ${total} licences, PostgreSQL synchronous_commit=${synchronous_commit}, ${os.cpus().length} cores\n`);
    const items = (n: number, offset: number): IssueLicenceInput[] =>
      Array.from({ length: n }, (_, i) => {
        const code = `350102${19900101 + ((offset + i) % 28)}${String((offset + i) % 1000).padStart(3, '0')}`;
        const id = `${code}${idNumberCheckChar(code)}`;
        return { typeCode, number: `BENCH-${offset + i}`, holderName: '测试人', holderCode: id, face: { XM: '测试人', CSRQ: '1990-01-01', ZZ: '福建省福州市鼓楼区东街1号' } };
      });
    const issuer = systemContext(db, logger, dept.code, 'bench-issuer');
    issuer.principal.roles = ['issuer'];
    const deps = { database, db, logger, masterKey, egress: EgressPolicy.fromConfig('', { ports: [] }), issuer: 'http://hub.bench' };
    // warm-up: the department's key and certificate are made on its first issuance
    const warm = await createLicenceBatch(issuer, items(500, 0));
    await JOBS['licence.issue-batch'].handler(deps, { batchId: warm.id });
    const batch = await createLicenceBatch(issuer, items(total, 500));
    const started = process.hrtime.bigint();
    const r = await JOBS['licence.issue-batch'].handler(deps, { batchId: batch.id });
    const issueSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const issuedPerSecond = Number(r.issued) / issueSeconds;
    process.stdout.write(`issued ${String(r.issued)} licences through the batch job in ${issueSeconds.toFixed(1)} s: ${issuedPerSecond.toFixed(0)} licences/s (signed twice, stored, audited)\n`);

    const pki = await LicencePki.load(db, masterKey);
    const stored = await rows<{ credential: string; sd_jwt: string; signer_kid: string }>(db, sql`select credential, sd_jwt, signer_kid from licences order by random() limit ${total}`);
    const creds = await Promise.all(stored.map(async (r) => (await signedFormsOf(pki, { signerKid: r.signer_kid, credential: r.credential, sdJwt: r.sd_jwt })).credential));
    const verifier = new LicenceVerifier(db, pki);
    const inFlight = 1000;
    const runOurs = async (): Promise<number> => {
      let next = 0;
      let valid = 0;
      const t0 = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < creds.length) {
            const v = await verifier.verify(creds[next++]!);
            if (v.valid) valid++;
          }
        }),
      );
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (valid !== creds.length) throw new Error(`${creds.length - valid} credentials did not verify`);
      return creds.length / seconds;
    };
    const key = new crypto.X509Certificate(Buffer.from((decodeCompactJws(creds[0]!)!.header.x5c as string[])[0]!, 'base64')).publicKey;
    // the baseline is handed the same credential texts: it splits off the signature and verifies the signing input
    const runBaseline = (): number => {
      const t0 = process.hrtime.bigint();
      let ok = 0;
      for (const c of creds) {
        const dot = c.lastIndexOf('.');
        if (crypto.verify('sha256', Buffer.from(c.slice(0, dot)), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(c.slice(dot + 1), 'base64url'))) ok++;
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (ok !== creds.length) throw new Error('baseline: a signature did not verify');
      return creds.length / seconds;
    };
    await runOurs(); // warm-up: chain validated once, JIT
    runBaseline();
    // rounds alternate, and each side keeps its best: another tenant of this shared machine only ever slows a round,
    // and five rounds rather than three make it unlikely that every round of one side is slowed and none of the other
    const rounds = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 5));
    let ours = 0;
    let baseline = 0;
    for (let round = 0; round < rounds; round++) {
      baseline = Math.max(baseline, runBaseline());
      ours = Math.max(ours, await runOurs());
    }
    process.stdout.write(`ours: ${creds.length} distinct credentials, ${inFlight} in flight, status from the database on every call: ${ours.toFixed(0)} verifications/s (best of ${rounds})\n`);
    process.stdout.write(`baseline: the same credential texts split and checked with crypto.verify ES256 (one cached KeyObject): ${baseline.toFixed(0)} verifications/s (best of ${rounds})\n`);
    process.stdout.write(`licence: ours ${ours.toFixed(0)} verifications/s, baseline ${baseline.toFixed(0)} verifications/s, ratio ${(ours / baseline).toFixed(2)} (issued ${issuedPerSecond.toFixed(0)} licences/s)\n`);
  } finally {
    await database.close();
    await dropDatabase();
  }
}

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  process.stderr.write(`usage: npm run bench -- NAME   (one of: ${Object.keys(benches).join(', ')})\n`);
  process.exit(2);
}
bench().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench ${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
