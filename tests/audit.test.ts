import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import type { PoolClient } from 'pg';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCheckpoint, verifyAuditLog } from '../audit/checkpoints.ts';
import { newestEntries, type EntryFilter } from '../audit/findings.ts';
import { auditEntries, caseIs, runTag, subjectIs } from '../audit/schema.ts';
import { appendInTransaction, AuditWriter, type AuditRecord } from '../audit/writer.ts';
import { auditPublicKey } from '../auth/keys.ts';
import { arrayLiteral, MIGRATIONS_DIR, openDatabase, rows, type Db } from '../db/index.ts';
import { asOwner, createTestDatabase, drivers, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { systemContext } from '../core/context.ts';
import { createLogger } from '../core/logger.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { registerResource, type ResourceInput } from '../directory/resources.ts';

import { leaf, verifyConsistency, verifyInclusion } from './helpers/rfc9162.ts';

/** A resource read rarely, whose provider's view of the log shows its reads only. */
const RARE_RESOURCE: Omit<ResourceInput, 'providerCode'> = {
  code: '2-01-001/009001',
  name: '审计测试资源',
  category: 'THEME',
  format: 'API',
  updateCycle: 'DAILY',
  sharingType: 'UNCONDITIONAL',
  sharingMethod: '接口调用',
  openType: 'NONE',
  fields: [{ code: 'uscc', name: '统一社会信用代码', dataType: 'C', length: 18 }],
};

const record = (i: number) => ({ clientId: 'c1', department: 'D', operation: 'PERSON_READ', subject: `3501021990010${String(i).padStart(5, '0')}`, itemCode: 'ITEM', caseId: `CASE-${i}`, fields: ['name'], outcome: 'RETURNED' as const });

/** Entries in no run or in several, in a run of another client or time, and runs whose tags are not their entries' own. */
const runProblems = async (db: Db, runs: SQL = sql`select first_seq, last_seq, at, client_id, tags from audit_runs`) =>
  (
    await rows<{ problems: number }>(
      db,
      sql`with r (first_seq, last_seq, at, client_id, tags) as (${runs})
          select (select count(*) from audit_entries e where (select count(*) from r where e.seq between r.first_seq and r.last_seq) <> 1)
               + (select count(*) from r join audit_entries e on e.seq between r.first_seq and r.last_seq where e.client_id is distinct from r.client_id or e.at <> r.at)
               + (select count(*) from r where (select array_agg(t order by t) from unnest(r.tags) t) is distinct from
                   (select array_agg(distinct t order by t) from audit_entries e,
                      unnest(array[${'d:'} || e.department, ${'r:'} || e.resource_code, ${'i:'} || e.item_code, ${'o:'} || e.operation, ${'x:'} || e.outcome]) t
                    where e.seq between r.first_seq and r.last_seq and t is not null)) as problems`,
    )
  )[0]!.problems;

describe.each(drivers())('the audit log (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let auditor: string;
  const owner = (q: string) => asOwner(tdb, q);

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    auditor = await hub.token(await hub.newClient(['auditor']));
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  const verify = () => verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid));

  it('group-commits concurrent appends into few transactions, one gap-free chain', async () => {
    const before = (await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from audit_entries`))[0]!.n;
    const writer = new AuditWriter(tdb.database.db);
    const seqs = await Promise.all(Array.from({ length: 500 }, (_, i) => writer.append(record(i))));
    expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => before + i + 1));
    const [{ batches } = { batches: 0 }] = await rows<{ batches: number }>(tdb.database.db, sql`select count(distinct at)::int8 as batches from audit_entries where seq > ${before}`);
    expect(batches).toBeLessThanOrEqual(5);
    expect(await verify()).toMatchObject({ ok: true, entries: before + 500 });
  });


  it('stores every column of every entry as given when a batch mixes callers, outcomes and nulls (kinds sent once)', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const base = { clientId: 'c9', department: 'D9', operation: 'PERSON_READ', itemCode: 'ITEM-9', caseId: 'CASE-9', requestId: 'req-9', resourceCode: 'RES-9', fields: ['name'] };
    const groups = [
      Array.from({ length: 6 }, (_, i) => ({ ...base, subject: `S${i}`, outcome: (i % 2 ? 'NOT_FOUND' : 'RETURNED') as 'RETURNED' | 'NOT_FOUND', details: { i } })),
      [{ ...base, clientId: null, department: null, requestId: 'req-10', subject: 'S6', outcome: 'REFUSED' as const, reason: 'GRANT_MISSING', fields: null }],
      Array.from({ length: 3 }, (_, i) => ({ ...base, requestId: 'req-11', subject: `S${7 + i}`, outcome: 'RETURNED' as const, withholdBasis: i === 1 ? '公安机关侦查' : null, operator: i === 2 ? 'op "x"' : null, fields: ['name', 'idNumber'] })),
      // next to each other, entries that differ only in their 信息项 (one list the start of the other), then only in
      // their request id
      [{ ...base, subject: 'S10', outcome: 'RETURNED' as const, fields: ['name', 'idNumber'] }, { ...base, subject: 'S11', outcome: 'RETURNED' as const, fields: ['name'] }],
      [{ ...base, subject: 'S12', outcome: 'RETURNED' as const, requestId: 'req-12' }],
      // details holding separators, quotes, backslashes and empty texts
      [{ ...base, subject: 'S13', outcome: 'RETURNED' as const, details: { note: 'a\u001eb,{"c"}\\', empty: '', list: [''] } }, { ...base, subject: 'S14', outcome: 'RETURNED' as const, details: {} }],
    ];
    const answered = await Promise.all(groups.map((g) => writer.appendMany(g)));
    const stored = await rows<Record<string, unknown>>(
      tdb.database.db,
      sql`select client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, reason, withhold_basis, request_id, details
          from audit_entries where seq = any(${sql.param(answered.flat())}::int8[]) order by seq`,
    );
    // each caller's records under the numbers it was answered (a batch groups its callers by client)
    const bySeq = new Map(groups.flatMap((g, k) => g.map((r, j) => [answered[k]![j]!, r] as const)));
    const expected = [...bySeq.keys()].sort((x, y) => x - y).map((seq) => bySeq.get(seq)!).map((r) => ({
      client_id: r.clientId, department: r.department, operator: (r as { operator?: string | null }).operator ?? null, item_code: r.itemCode, case_id: r.caseId,
      operation: r.operation, resource_code: r.resourceCode, subject: r.subject, fields: r.fields, outcome: r.outcome, reason: (r as { reason?: string }).reason ?? null,
      withhold_basis: (r as { withholdBasis?: string | null }).withholdBasis ?? null, request_id: r.requestId, details: (r as { details?: unknown }).details ?? null,
    }));
    expect(stored).toEqual(expected);
    expect((await verify()).ok).toBe(true);
  });

  it('groups a batch\'s callers by client, so that each client\'s entries of the batch are one run', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const clients = ['grp-a', 'grp-b', null, 'grp-a', 'grp-b', 'grp-a'];
    const answered = await Promise.all(clients.map((clientId, k) => writer.appendMany([0, 1].map((i) => ({ ...record(10 * k + i), clientId })))));
    for (const seqs of answered) expect(seqs[1]).toBe(seqs[0]! + 1);
    const runs = await rows<{ client_id: string | null; entries: number }>(
      tdb.database.db,
      sql`select client_id, (last_seq - first_seq + 1)::int8 as entries from audit_runs where first_seq >= ${Math.min(...answered.flat())} order by first_seq`,
    );
    expect(runs).toEqual([{ client_id: 'grp-a', entries: 6 }, { client_id: 'grp-b', entries: 4 }, { client_id: null, entries: 2 }]);
  });

  it('keeps each caller\'s records in one commit, in order, and a caller larger than the batch goes alone', async () => {
    const writer = new AuditWriter(tdb.database.db, 5);
    const sizes = [3, 3, 8, 1, 2];
    let n = 0;
    const groups = sizes.map((k) => Array.from({ length: k }, () => record(2000 + n++)));
    const answered = await Promise.all(groups.map((g) => writer.appendMany(g)));
    const stored = await rows<{ seq: number; case_id: string; at: string }>(
      tdb.database.db,
      sql`select seq, case_id, at::text as at from audit_entries where seq = any(${sql.param(answered.flat())}::int8[]) order by seq`,
    );
    // each caller's sequence numbers are contiguous, answer its own records and share one commit (one time)
    answered.forEach((seqs, i) => {
      expect(seqs).toHaveLength(sizes[i]!);
      expect(seqs).toEqual(Array.from({ length: sizes[i]! }, (_, k) => seqs[0]! + k));
      const mine = stored.filter((r) => seqs.includes(Number(r.seq)));
      expect(mine.map((r) => r.case_id)).toEqual(groups[i]!.map((r) => r.caseId));
      expect(new Set(mine.map((r) => r.at)).size).toBe(1);
    });
    // batches of at most 5 unless one caller alone is larger: [3], [3], [8], [1, 2]
    const batches = await rows<{ size: number }>(tdb.database.db, sql`select (last_seq - prev_seq)::int as size from audit_batches where last_seq > ${answered[0]![0]! - 1} order by last_seq`);
    expect(batches.map((b) => b.size)).toEqual([3, 3, 8, 3]);
    expect((await verify()).ok).toBe(true);
  });
  it('stores the 信息项 of an entry as they were hashed: none, an empty list, several', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const seqs = await writer.appendMany([{ ...record(1), fields: null }, { ...record(2), fields: [] }, { ...record(3), fields: ['name', 'idNumber', 'householdAddress'] }]);
    const stored = await rows<{ fields: string[] | null }>(tdb.database.db, sql`select fields from audit_entries where seq = any(${sql.param(seqs)}::int8[]) order by seq`);
    expect(stored.map((r) => r.fields)).toEqual([null, [], ['name', 'idNumber', 'householdAddress']]);
    expect((await verify()).ok).toBe(true);
    await expect(writer.append({ ...record(4), fields: ['a\u001fb'] })).rejects.toThrow(/unit separator/);
  });

  it('stores texts as they were hashed, whatever they hold: quotes, backslashes, braces, commas, NULL as a word', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const odd = ['say "hi"', 'C:\\dir\\', '{a,b}', 'NULL', '', ' lead and trail ', '\u5f20\u4e09 \ud83d\ude00', 'tab\tnew\nline'];
    const seqs = await writer.appendMany(odd.map((s, i) => ({ ...record(i), operator: s, caseId: s, reason: s, department: s, resourceCode: s, itemCode: s, fields: s ? [s, 'x'] : ['x'], details: { s, list: [s, null] } })));
    const stored = await rows<{ operator: string; case_id: string; reason: string; department: string; resource_code: string; item_code: string; fields: string[]; details: { s: string; list: unknown[] } }>(
      tdb.database.db,
      sql`select operator, case_id, reason, department, resource_code, item_code, fields, details from audit_entries where seq = any(${sql.param(seqs)}::int8[]) order by seq`,
    );
    expect(stored.map((r) => [r.operator, r.case_id, r.reason, r.department, r.resource_code, r.item_code, r.fields, r.details])).toEqual(odd.map((s) => [s, s, s, s, s, s, s ? [s, 'x'] : ['x'], { s, list: [s, null] }]));
    expect((await verify()).ok).toBe(true);
    // the runs' tags hold them as they are, and find them
    expect(await runProblems(tdb.database.db)).toBe(0);
    for (const [k, s] of odd.entries()) {
      if (s === '') continue; // an empty filter is no filter
      expect((await newestEntries(tdb.database.db, { resourceCode: s, itemCode: s, department: s }, 5, undefined, { window: 0 })).map((e) => e.seq), s).toEqual([seqs[k]]);
    }
  });

  it('finds a subject\'s and a case\'s entries through the entries\' GIN index, and only theirs', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const subjects = ['110105194912310021', '110105194912310022', 'S-odd'];
    await writer.appendMany(subjects.flatMap((subject) => [0, 1, 2].map((i) => ({ ...record(i), subject, caseId: `GIN-${subject}` }))));
    const found = await tdb.database.db.select({ subject: auditEntries.subject }).from(auditEntries).where(subjectIs(subjects[1]!));
    expect(found).toEqual([0, 1, 2].map(() => ({ subject: subjects[1] })));
    const byCase = await tdb.database.db.select({ subject: auditEntries.subject }).from(auditEntries).where(caseIs(`GIN-${subjects[2]}`));
    expect(byCase).toEqual([0, 1, 2].map(() => ({ subject: subjects[2] })));
    // with sequential scans off, the plan shows whether the index can serve the query as written
    const plan = (query: SQL) =>
      tdb.database.db.transaction(async (tx) => {
        await tx.execute(sql`set local enable_seqscan = off`);
        const lines = await rows<{ 'QUERY PLAN': string }>(tx, sql`explain ${query}`);
        return lines.map((l) => l['QUERY PLAN']).join('\n');
      });
    const keys = String.raw`Index Cond: \(ARRAY\[hashtextextended\(subject, '0'::bigint\), hashtextextended\(\('case:'::text \|\| case_id\), '0'::bigint\)\] @> `;
    expect(await plan(sql`select seq from audit_entries where ${subjectIs(subjects[1]!)} order by seq desc limit 5`)).toMatch(new RegExp(`Bitmap Index Scan on audit_entries_\\w+[^\\n]*\\n\\s+${keys}`));
    expect(await plan(sql`select seq from audit_entries where ${caseIs('GIN-S-odd')} order by seq desc limit 5`)).toMatch(new RegExp(`Bitmap Index Scan on audit_entries_\\w+[^\\n]*\\n\\s+${keys}`));
    expect(await plan(sql`select first_seq from audit_runs where tags @> ${arrayLiteral([runTag('resourceCode', 'R')])}::text[] order by last_seq desc limit 4`)).toMatch(/Bitmap Index Scan on audit_runs_tags_idx/);
    // and without a pending list that every query would read whole
    const [options] = await rows<{ reloptions: string[] | null }>(tdb.database.db, sql`select reloptions from pg_class where relname = 'audit_runs_tags_idx'`);
    expect(options!.reloptions).toEqual(['fastupdate=off']);
  });

  it('finds entries by client, department, resource, provider, item, operation, outcome, case and subject: newest first, page by page, as a scan of the log would', async () => {
    const db = tdb.database.db;
    const writer = new AuditWriter(db);
    // a resource the police provide, for the provider's view
    const police = DEMO_DEPARTMENTS[0].code;
    await registerResource(systemContext(db, createLogger({ level: 'silent' }), police), { ...RARE_RESOURCE, providerCode: police });
    const rec = (clientId: string | null, i: number, o: Partial<AuditRecord> = {}): AuditRecord => ({
      ...record(i),
      clientId,
      caseId: `RUN-${i}`,
      department: clientId ? `D-${clientId}` : null,
      resourceCode: i % 3 ? 'RES-A' : 'RES-B',
      ...o,
    });
    // callers of several clients (and none) in the same batches, alone, and inside a transaction
    const marks: Date[] = [];
    for (let round = 0; round < 3; round++) {
      marks.push(new Date());
      await new Promise((r) => setTimeout(r, 2));
      await Promise.all([
        writer.appendMany(Array.from({ length: 5 }, (_, i) => rec('run-a', i))),
        writer.appendMany(Array.from({ length: 3 }, (_, i) => rec('run-b', i, { itemCode: 'ITEM-B' }))),
        writer.append(rec(null, 9, { operation: 'LICENCE_REVOKE', outcome: 'DONE', resourceCode: null, itemCode: null })),
        writer.appendMany(Array.from({ length: 4 }, (_, i) => rec('run-a', i, { outcome: i % 2 ? 'REFUSED' : 'RETURNED' }))),
      ]);
      await writer.append(rec('run-a', 7, { resourceCode: RARE_RESOURCE.code }));
      await db.transaction((tx) => appendInTransaction(tx, [rec('run-a', 8), rec('run-b', 8), rec('run-a', 8, { outcome: 'NOT_FOUND' })]));
    }
    const scan = async (where: SQL) => (await rows<{ seq: number }>(db, sql`select seq from audit_entries where ${where} order by seq desc`)).map((r) => r.seq);
    const paged = async (filter: EntryFilter, size: number, window: number, reach: number) => {
      const seen: number[] = [];
      for (let before: number | undefined; ; ) {
        const page = await newestEntries(db, filter, size, before, { window, reach });
        seen.push(...page.map((e) => e.seq));
        if (page.length < size) return seen;
        before = page.at(-1)!.seq;
      }
    };
    const subject = record(2).subject;
    const cases: [EntryFilter, SQL, number][] = [
      [{ clientId: 'run-a' }, sql`client_id = 'run-a'`, 3 * (5 + 4 + 1 + 2)],
      [{ clientId: 'run-a', outcome: 'REFUSED' }, sql`client_id = 'run-a' and outcome = 'REFUSED'`, 6],
      [{ clientId: 'run-b' }, sql`client_id = 'run-b'`, 12],
      [{ clientId: 'run-none' }, sql`false`, 0],
      [{ department: 'D-run-b' }, sql`department = 'D-run-b'`, 12],
      // three reads, and the resource's registration (RESOURCE_REGISTER)
      [{ resourceCode: RARE_RESOURCE.code }, sql`resource_code = ${RARE_RESOURCE.code}`, 4],
      [{ provider: police }, sql`resource_code = ${RARE_RESOURCE.code}`, 4],
      [{ provider: police, clientId: 'run-b' }, sql`false`, 0],
      [{ resourceCode: 'RES-B', outcome: 'RETURNED' }, sql`resource_code = 'RES-B' and outcome = 'RETURNED'`, 12],
      [{ itemCode: 'ITEM-B' }, sql`item_code = 'ITEM-B'`, 9],
      [{ operation: 'LICENCE_REVOKE' }, sql`operation = 'LICENCE_REVOKE'`, 3],
      [{ outcome: 'NOT_FOUND' }, sql`outcome = 'NOT_FOUND'`, -1],
      [{ caseId: 'RUN-8' }, sql`case_id = 'RUN-8'`, 9],
      [{ caseId: 'RUN-8', clientId: 'run-b' }, sql`case_id = 'RUN-8' and client_id = 'run-b'`, 3],
      [{ subject, clientId: 'run-a' }, sql`subject = ${subject} and client_id = 'run-a'`, -1],
      [{ subject, resourceCode: 'RES-B' }, sql`subject = ${subject} and resource_code = 'RES-B'`, -1],
      // the middle round's, by time
      [{ clientId: 'run-a', from: marks[1], to: marks[2] }, sql`client_id = 'run-a' and at >= ${marks[1]!.toISOString()} and at < ${marks[2]!.toISOString()}`, 12],
      [{ resourceCode: 'RES-B', from: marks[1] }, sql`resource_code = 'RES-B' and at >= ${marks[1]!.toISOString()}`, 10],
      [{ operation: 'LICENCE_REVOKE', to: marks[1] }, sql`operation = 'LICENCE_REVOKE' and at < ${marks[1]!.toISOString()}`, -1],
    ];
    for (const [filter, where, count] of cases) {
      const all = await scan(where);
      if (count >= 0) expect(all.length, JSON.stringify(filter)).toBe(count);
      // the newest entries along the primary key (and on, as far as the matches there promise a page, or not), the runs
      // below them, or the runs alone
      for (const [window, reach] of [[4096, 65_536], [40, 65_536], [40, 10], [7, 65_536], [0, 0]] as const) {
        for (const size of [1, 4, 50]) expect(await paged(filter, size, window, reach), `${JSON.stringify(filter)} window ${window} reach ${reach} size ${size}`).toEqual(all);
      }
    }
    // every entry is in one run, with its client and its time, and a run's tags are its entries' own
    expect(await runProblems(tdb.database.db)).toBe(0);
    // the migration's runs of entries written before it cover them the same way
    const migration = fs.readFileSync(path.join(MIGRATIONS_DIR, '0017_audit_runs.sql'), 'utf8');
    const backfill = /INSERT INTO "audit_runs" \([^)]*\)\s*(SELECT[\s\S]*?);--> statement-breakpoint/.exec(migration)![1]!;
    expect(await runProblems(db, sql.raw(backfill))).toBe(0);
    // and through the API, by cursor: an auditor's search by client, and a provider's view of its own resources
    const viaApi = async (token: string, filter: string) => {
      const ids: number[] = [];
      for (let after: string | null = null; ; ) {
        const r = await hub.graphql(`query($after: String) { accessLog(filter: ${filter}, first: 2, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }`, token, { after });
        const log = r.body.data!.accessLog as { edges: { node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string } };
        ids.push(...log.edges.map((e) => Number(e.node.id)));
        if (!log.pageInfo.hasNextPage) return ids;
        after = log.pageInfo.endCursor;
      }
    };
    expect(await viaApi(auditor, '{ clientId: "run-a" }')).toEqual(await scan(sql`client_id = 'run-a'`));
    const provider = await hub.token(await hub.newClient(['provider'], { department: police }));
    expect(await viaApi(provider, '{}')).toEqual(await scan(sql`resource_code = ${RARE_RESOURCE.code}`));
    expect(await viaApi(provider, '{ clientId: "run-b" }')).toEqual([]);
  });

  it('refuses the hub\'s own handle any UPDATE, DELETE or TRUNCATE of the audit log and the base data history', async () => {
    const denied = async (q: string) => {
      const error = await tdb.database.db.execute(sql.raw(q)).then(() => null, (e: unknown) => e);
      const code = (error as { code?: string; cause?: { code?: string } } | null)?.code ?? (error as { cause?: { code?: string } } | null)?.cause?.code;
      expect(code, q).toBe('42501');
    };
    await denied(`update audit_entries set subject = 'x' where seq = 1`);
    await denied(`delete from audit_entries where seq = 1`);
    await denied(`truncate audit_entries`);
    await denied(`delete from audit_checkpoints`);
    await denied(`update audit_runs set client_id = 'x'`);
    await denied(`delete from audit_runs`);
    await denied(`truncate audit_runs`);
    await denied(`update base_record_history set data = '{}'::jsonb`);
    await denied(`truncate base_record_history`);
    const [role] = await rows<{ current_user: string }>(tdb.database.db, sql`select current_user`);
    expect(role!.current_user).toBe('hub_app');
  });

  it('signs checkpoints that verify against the JWKS, and proves inclusion and consistency to a separate verifier', async () => {
    const first = (await createCheckpoint(tdb.database.db, hub.services.keys, TEST_ISSUER))!;
    const writer = new AuditWriter(tdb.database.db);
    await writer.appendMany(Array.from({ length: 37 }, (_, i) => record(1000 + i)));
    const second = (await createCheckpoint(tdb.database.db, hub.services.keys, TEST_ISSUER))!;
    expect(second.treeSize).toBe(first.treeSize + 37);
    expect(await createCheckpoint(tdb.database.db, hub.services.keys, TEST_ISSUER)).toBeNull();

    const published = (await (await fetch(`${hub.url}/audit/checkpoints`)).json()) as { checkpoints: { treeSize: number; signature: string; rootHash: string }[] };
    expect(published.checkpoints.map((c) => c.treeSize).slice(0, 2)).toEqual([second.treeSize, first.treeSize]);
    const jwks = createRemoteJWKSet(new URL(`${hub.url}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(published.checkpoints[0]!.signature, jwks, { issuer: TEST_ISSUER, typ: 'audit-checkpoint+jwt' });
    expect(payload).toMatchObject({ tree_size: second.treeSize, root_hash: second.rootHash });

    const root = Buffer.from(second.rootHash, 'hex');
    for (const id of [1, Math.floor(second.treeSize / 2), first.treeSize, second.treeSize]) {
      const r = await hub.graphql(`{ auditInclusionProof(id: "${id}", treeSize: ${second.treeSize}) { leafIndex treeSize entryHash path } }`, auditor);
      const proof = r.body.data!.auditInclusionProof as { leafIndex: number; entryHash: string; path: string[] };
      const [entry] = await rows<{ hash: string }>(tdb.database.db, sql`select hash from audit_entries where seq = ${id}`);
      expect(proof.entryHash).toBe(entry!.hash);
      expect(verifyInclusion(proof.leafIndex, second.treeSize, leaf(entry!.hash), proof.path.map((h) => Buffer.from(h, 'hex')), root)).toBe(true);
      expect(verifyInclusion(proof.leafIndex, second.treeSize, leaf('00'.repeat(32)), proof.path.map((h) => Buffer.from(h, 'hex')), root)).toBe(false);
    }
    const c = await hub.graphql(`{ auditConsistencyProof(from: ${first.treeSize}, to: ${second.treeSize}) }`, auditor);
    const proof = (c.body.data!.auditConsistencyProof as string[]).map((h) => Buffer.from(h, 'hex'));
    expect(verifyConsistency(first.treeSize, second.treeSize, Buffer.from(first.rootHash, 'hex'), root, proof)).toBe(true);
    expect(verifyConsistency(first.treeSize, second.treeSize, crypto.randomBytes(32), root, proof)).toBe(false);
  });

  it('reads on along the primary key when the newest entries promise a page, as far as the reach allows', async () => {
    const db = tdb.database.db;
    const writer = new AuditWriter(db);
    // thirty batches of five entries, one of them refused in each: one entry in five, spread over every batch
    const seqs: number[] = [];
    for (let b = 0; b < 30; b++) {
      seqs.push(...(await writer.appendMany(Array.from({ length: 5 }, (_, i) => ({ ...record(i), clientId: 'dense', outcome: i === 2 ? ('REFUSED' as const) : ('RETURNED' as const) })))));
      await new Promise((r) => setTimeout(r, 2));
    }
    const refused = (await rows<{ seq: number }>(db, sql`select seq from audit_entries where client_id = 'dense' and outcome = 'REFUSED' order by seq desc`)).map((r) => r.seq);
    const filter = { clientId: 'dense', outcome: 'REFUSED' };
    const page = (reach: number) => newestEntries(db, filter, 10, undefined, { window: 20, reach }).then((p) => p.map((e) => e.seq));
    // without their runs only the primary key finds them: four in the newest twenty, and the rest of the page on
    await owner(`create table saved_dense as select * from audit_runs where client_id = 'dense'`);
    await owner(`delete from audit_runs where client_id = 'dense'`);
    try {
      expect(await page(1000)).toEqual(refused.slice(0, 10));
      // a reach too short to fill the page is not taken: the runs are walked instead (and here find nothing)
      expect(await page(10)).toEqual(refused.slice(0, 4));
    } finally {
      await owner(`insert into audit_runs select * from saved_dense`);
      await owner(`drop table saved_dense`);
    }
    expect(await page(10)).toEqual(refused.slice(0, 10));
  });

  it('names the first entry its runs do not find: a run gone, cut short, retagged, of another client or time, runs that overlap or repeat', async () => {
    const writer = new AuditWriter(tdb.database.db);
    // two batches alike (two runs whose entries have the same columns), and one after them
    const seqs = await writer.appendMany(Array.from({ length: 4 }, (_, i) => ({ ...record(i), clientId: 'verify-runs', resourceCode: 'RES-V' })));
    const second = await writer.appendMany(Array.from({ length: 2 }, (_, i) => ({ ...record(i), clientId: 'verify-runs', resourceCode: 'RES-V' })));
    await writer.append({ ...record(9), clientId: 'verify-after' });
    const first = seqs[0]!;
    expect((await verify()).ok).toBe(true);
    await owner(`create table saved_runs as select * from audit_runs where first_seq in (${first}, ${second[0]})`);
    const restore = async () => {
      await owner(`delete from audit_runs where first_seq >= ${first} and first_seq <= ${second[1]}`);
      await owner(`insert into audit_runs select * from saved_runs`);
      expect((await verify()).ok).toBe(true);
    };
    // a run gone, with runs after it
    await owner(`delete from audit_runs where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first, kind: 'RUN', message: expect.stringContaining('in no run') } });
    await restore();
    await owner(`update audit_runs set tags = array_remove(tags, 'r:RES-V') where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first, kind: 'RUN', message: expect.stringContaining('resourceCode') } });
    await restore();
    // the second of two runs alike retagged: checked afresh, not taken for the first
    await owner(`update audit_runs set tags = array_remove(tags, 'r:RES-V') where first_seq = ${second[0]}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: second[0], kind: 'RUN', message: expect.stringContaining('resourceCode') } });
    await restore();
    await owner(`update audit_runs set client_id = 'someone else' where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first, kind: 'RUN' } });
    await restore();
    await owner(`update audit_runs set at = at + interval '1 millisecond' where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first, kind: 'RUN', message: expect.stringContaining('another client or time') } });
    await restore();
    // the run cut short, and its last entries in a run of their own that begins inside it
    await owner(`update audit_runs set last_seq = ${first + 1} where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first + 2, kind: 'RUN', message: expect.stringContaining('in no run') } });
    await owner(`insert into audit_runs select ${first + 1}, last_seq, at, client_id, tags from saved_runs where first_seq = ${first}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: first + 2, kind: 'RUN', message: expect.stringContaining('overlap') } });
    await restore();
    // a run twice, read a run a page (the two on either side of a page's edge), and the newest run twice
    await owner(`insert into audit_runs select * from saved_runs where first_seq = ${first}`);
    expect(await verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid), { runPage: 1 })).toMatchObject({ ok: false, problem: { kind: 'RUN', message: expect.stringContaining('overlap') } });
    await restore();
    expect((await verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid), { runPage: 1 })).ok).toBe(true);
    await owner(`create table saved_after as select * from audit_runs where client_id = 'verify-after'`);
    await owner(`insert into audit_runs select * from saved_after`);
    expect(await verify()).toMatchObject({ ok: false, problem: { kind: 'RUN', message: expect.stringContaining('overlap') } });
    // and gone, with a run after it
    await owner(`delete from audit_runs where client_id = 'verify-after'`);
    await writer.append({ ...record(10), clientId: 'verify-later' });
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: second[1]! + 1, kind: 'RUN', message: expect.stringContaining('in no run') } });
    await owner(`insert into audit_runs select * from saved_after`);
    expect((await verify()).ok).toBe(true);
    await owner(`drop table saved_runs`);
    await owner(`drop table saved_after`);
  });

  it('names the first altered, deleted or reordered entry', async () => {
    expect((await verify()).ok).toBe(true);
    const original = async (seq: number) => (await rows<Record<string, unknown>>(tdb.database.db, sql`select subject from audit_entries where seq = ${seq}`))[0]!.subject as string;

    // an entry of a read (the first entries are the setup's administrative acts, which name no subject)
    const [{ read } = { read: 0 }] = await rows<{ read: number }>(tdb.database.db, sql`select min(seq)::int8 as read from audit_entries where subject is not null`);
    const s7 = await original(read);
    await owner(`update audit_entries set subject = '110105194912310021' where seq = ${read}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: read, kind: 'HASH' } });
    await owner(`update audit_entries set subject = '${s7}' where seq = ${read}`);
    expect((await verify()).ok).toBe(true);

    await owner(`create table saved_entry as select * from audit_entries where seq = 5`);
    await owner(`delete from audit_entries where seq = 5`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: 5, kind: 'GAP' } });
    await owner(`insert into audit_entries select * from saved_entry`);
    await owner(`drop table saved_entry`);
    expect((await verify()).ok).toBe(true);

    // reorder: entries 3 and 4 swap places
    await owner(`update audit_entries set seq = -3 where seq = 3`);
    await owner(`update audit_entries set seq = 3 where seq = 4`);
    await owner(`update audit_entries set seq = 4 where seq = -3`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: 3, kind: 'PREV_HASH' } });
    await owner(`update audit_entries set seq = -3 where seq = 3`);
    await owner(`update audit_entries set seq = 3 where seq = 4`);
    await owner(`update audit_entries set seq = 4 where seq = -3`);
    expect((await verify()).ok).toBe(true);

    // an entry slipped in: another's copy at the end, chained to nothing
    await owner(`insert into audit_entries select seq + 100000, at, client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, reason, withhold_basis, request_id, details, prev_hash, hash from audit_entries where seq = 2`);
    const [{ max } = { max: 0 }] = await rows<{ max: number }>(tdb.database.db, sql`select max(seq)::int8 as max from audit_entries where seq < 100000`);
    expect(await verify()).toMatchObject({ ok: false, problem: { seq: max + 1, kind: 'GAP' } });
    await owner(`delete from audit_entries where seq > 100000`);

    // the newest sealed entry removed: the checkpoint covers more than the log holds
    const [{ size } = { size: 0 }] = await rows<{ size: number }>(tdb.database.db, sql`select max(tree_size)::int8 as size from audit_checkpoints`);
    await owner(`create table saved_last as select * from audit_entries where seq >= ${size}`);
    await owner(`delete from audit_entries where seq >= ${size}`);
    expect(await verify()).toMatchObject({ ok: false, problem: { kind: 'CHECKPOINT_BEYOND_LOG', seq: size } });
    await owner(`insert into audit_entries select * from saved_last`);
    await owner(`drop table saved_last`);
    expect((await verify()).ok).toBe(true);
  });

  it('fails the caller when the record cannot be written', async () => {
    const broken = await openDatabase({ dataDir: 'memory://' }); // a database without the audit tables
    try {
      await expect(new AuditWriter(broken.db).append(record(1))).rejects.toThrow();
    } finally {
      await broken.close();
    }
  });

  it('lets auditors search the log, records their search, and shows a department only reads of its resources', async () => {
    const r = await hub.graphql(`{ accessLog(filter: { caseId: "CASE-3" }, first: 5) { edges { node { id operation subject caseId outcome } } pageInfo { hasNextPage } } }`, auditor);
    const edges = (r.body.data!.accessLog as { edges: { node: { caseId: string } }[] }).edges;
    expect(edges.length).toBeGreaterThan(0);
    expect(edges.every((e) => e.node.caseId === 'CASE-3')).toBe(true);
    const searches = await rows<{ operation: string }>(tdb.database.db, sql`select operation from audit_entries where operation = 'AUDIT_SEARCH'`);
    expect(searches.length).toBeGreaterThan(0);
    const consumer = await hub.token(await hub.newClient(['consumer']));
    expect((await hub.graphql(`{ accessLog { edges { node { id } } } }`, consumer)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});

describe.runIf(pgAvailable())('the audit log on PostgreSQL with other processes', () => {
  let tdb: TestDatabase;
  let hub: TestHub;
  const owner = (q: string) => asOwner(tdb, q);

  const verify = () => verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid));
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
    hub = await startTestHub(tdb.database);
    await new AuditWriter(tdb.database.db).appendMany(Array.from({ length: 20 }, (_, i) => record(i)));
    await createCheckpoint(tdb.database.db, hub.services.keys, TEST_ISSUER);
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('hub audit verify exits 1 and names the entry', async () => {
    const env = { ...process.env, DATABASE_URL: tdb.url!, HUB_MASTER_KEY: TEST_MASTER_KEY, NODE_ENV: '' };
    const good = spawnSync(process.execPath, ['cli/bin.js', 'audit', 'verify'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(good.status).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, problem: null });
    await owner(`update audit_entries set reason = 'edited' where seq = 11`);
    const bad = spawnSync(process.execPath, ['cli/bin.js', 'audit', 'verify'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, problem: { seq: 11, kind: 'HASH', message: 'entry 11 was altered: its content does not give its hash' } });
    await owner(`update audit_entries set reason = null where seq = 11`);
  });

  it('pipelines batches behind one in flight, and rolls them all back when the one ahead collides', async () => {
    const a = new AuditWriter(tdb.database.db);
    await a.append(record(7000)); // a knows the head
    // another writer chains onto the same head in a transaction held open: a's next batch waits on its claim
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let holding!: () => void;
    const held = new Promise<void>((r) => (holding = r));
    const other = tdb.database.db.transaction(async (tx) => {
      await appendInTransaction(tx, [record(7001)]);
      holding();
      await gate;
    });
    await held;
    // the writer's own transactions are the pool's connect() calls without a callback
    const pool = (tdb.database.db as unknown as { $client: { connect: (...args: unknown[]) => unknown } }).$client;
    const connect = pool.connect;
    let pipelined = 0;
    pool.connect = function (this: unknown, ...args: unknown[]) {
      if (args.length === 0) pipelined++;
      return connect.apply(this, args);
    };
    try {
      const first = a.append(record(7002)); // blocked on the other's claim, then collides
      await new Promise((r) => setTimeout(r, 50));
      // enough records to be worth a batch behind the one in flight: chained onto the first's last hash
      const second = a.appendMany(Array.from({ length: 300 }, (_, i) => record(7003 + i)));
      await new Promise((r) => setTimeout(r, 100));
      expect(pipelined).toBe(1); // inserted, waiting to commit after the first
      // and a third behind the second, chained onto its last hash
      const third = a.appendMany(Array.from({ length: 300 }, (_, i) => record(7303 + i)));
      await new Promise((r) => setTimeout(r, 100));
      expect(pipelined).toBe(2);
      release();
      await other;
      const [s1, s2, s3] = await Promise.all([first, second, third]);
      const stored = await rows<{ seq: number; case_id: string }>(tdb.database.db, sql`select seq, case_id from audit_entries where seq = any(${sql.param([s1, ...s2, ...s3])}::int8[]) order by seq`);
      const expected = [[s1, 'CASE-7002'], ...s2.map((seq, i) => [seq, `CASE-${7003 + i}`]), ...s3.map((seq, i) => [seq, `CASE-${7303 + i}`])] as [number, string][];
      expect(new Map(stored.map((r) => [Number(r.seq), r.case_id]))).toEqual(new Map(expected));
      for (const s of [s2, s3]) expect(s).toEqual(s.map((_, i) => s[0]! + i));
      expect(new Set([s1, ...s2, ...s3]).size).toBe(601);
      // had the second or third committed on top of the first that collided, its entries would chain onto nothing
      expect((await verify()).ok).toBe(true);
    } finally {
      pool.connect = connect;
      release();
    }
  });

  it('chains again inside a caller\'s transaction when the read writer took the head between its read and its claim', async () => {
    const db = tdb.database.db;
    let appends = 0;
    const [seq] = await db.transaction(async (tx) => {
      // the append runs as its prepared statement on the transaction's connection: just before the first, the
      // group-commit writer (which takes no lock) appends and commits
      const client = (tx as unknown as { session: { client: PoolClient } }).session.client;
      const query = client.query;
      client.query = (async (q: unknown, ...rest: unknown[]) => {
        if ((q as { name?: string } | null)?.name === 'hub_audit_append' && ++appends === 1) await new AuditWriter(db).append(record(9001));
        return (query as (...a: unknown[]) => Promise<unknown>).call(client, q, ...rest);
      }) as typeof client.query;
      try {
        const seqs = await appendInTransaction(tx, [record(9002)]);
        await tx.execute(sql`select 1`); // the transaction is still usable: nothing was rolled back
        return seqs;
      } finally {
        client.query = query;
      }
    });
    expect(appends).toBe(2); // the append that found its claim taken, the append chained again
    const stored = await rows<{ case_id: string }>(db, sql`select case_id from audit_entries where seq in (${seq! - 1}, ${seq!}) order by seq`);
    expect(stored.map((r) => r.case_id)).toEqual(['CASE-9001', 'CASE-9002']);
    expect((await verify()).ok).toBe(true);
  });

  it('pipelines batches under a steady stream of appends, one gap-free chain', async () => {
    const writer = new AuditWriter(tdb.database.db);
    const seqs: Promise<number[]>[] = [];
    for (let tick = 0; tick < 40; tick++) {
      // callers of three clients, and of none, interleaved: each batch groups them by client
      for (const clientId of ['c1', 'c2', null, 'c3']) seqs.push(writer.appendMany(Array.from({ length: 25 }, (_, i) => ({ ...record(8000 + tick * 100 + i), clientId }))));
      await new Promise((r) => setImmediate(r));
    }
    const answered = await Promise.all(seqs);
    for (const caller of answered) expect(caller.at(-1)! - caller[0]!).toBe(24);
    expect(new Set(answered.flat()).size).toBe(4000);
    expect((await verify()).ok).toBe(true);
    expect(await runProblems(tdb.database.db)).toBe(0);
  });

  it('keeps one valid chain when two processes\' writers append at once', async () => {
    const other = await openDatabase({ databaseUrl: tdb.url!, poolSize: 4, appRole: true });
    try {
      const a = new AuditWriter(tdb.database.db);
      const b = new AuditWriter(other.db as Db);
      const mixed = (i: number) => ({ ...record(i), clientId: ['c1', 'c2', null][i % 3] });
      await Promise.all([...Array.from({ length: 300 }, (_, i) => a.append(mixed(5000 + i))), ...Array.from({ length: 300 }, (_, i) => b.append(mixed(6000 + i)))]);
      expect((await verify()).ok).toBe(true);
      // the batches that collided were chained again, their runs with them
      expect(await runProblems(tdb.database.db)).toBe(0);
    } finally {
      await other.close();
    }
  });

});
