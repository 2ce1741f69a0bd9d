import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { archiveMonth, detachMonth, listAuditMonths, verifyArchiveFile } from '../audit/archive.ts';
import { chainHash, GENESIS_HASH } from '../audit/chain.ts';
import { createCheckpoint, proveInclusion, verifyAuditLog } from '../audit/checkpoints.ts';
import { ensurePartitions, monthOf } from '../audit/months.ts';
import { appendInTransaction, AuditWriter } from '../audit/writer.ts';
import { auditPublicKey } from '../auth/keys.ts';
import { MIGRATIONS_DIR, openDatabase, rows } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { asOwner, createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { leaf, verifyInclusion } from './helpers/rfc9162.ts';

const record = (i: number) => ({ clientId: 'c1', department: 'D', operation: 'PERSON_READ', subject: `3501021990010${String(i).padStart(5, '0')}`, itemCode: 'ITEM', caseId: `CASE-${i}`, fields: ['name'], outcome: 'RETURNED' as const });

const sqlCode = (error: unknown): string | undefined => (error as { code?: string } | null)?.code ?? (error as { cause?: { code?: string } } | null)?.cause?.code;

describe.each(drivers())('audit partitions and archives (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  const owner = (q: string) => asOwner(tdb, q);
  const verify = () => verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid));
  const keyFor = (kid: string) => auditPublicKey(tdb.database.db, kid);

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-archive-'));
    tdb = await createTestDatabase(driver);
    // September and October 2026 happen first, with the clock set back; then the hub starts in real time
    await ensurePartitions(tdb.database.db, new Date('2026-09-10T00:00:00Z'));
    const writer = new AuditWriter(tdb.database.db);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2026-09-15T03:00:00Z'));
      await writer.appendMany(Array.from({ length: 30 }, (_, i) => record(i)));
      vi.setSystemTime(new Date('2026-10-20T03:00:00Z'));
      await writer.appendMany(Array.from({ length: 21 }, (_, i) => record(100 + i)));
    } finally {
      vi.useRealTimers();
    }
    hub = await startTestHub(tdb.database);
    await writer.appendMany(Array.from({ length: 5 }, (_, i) => record(200 + i)));
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('partitions the log by month, each partition closed to the hub\'s UPDATE, DELETE and TRUNCATE', async () => {
    const [kind] = await rows<{ relkind: string }>(tdb.database.db, sql`select relkind from pg_class where relname = 'audit_entries'`);
    expect(kind!.relkind).toBe('p');
    const months = await listAuditMonths(tdb.database.db);
    const now = monthOf(new Date());
    expect(months.map((m) => m.partition)).toEqual(expect.arrayContaining(['audit_entries_y2026m09', 'audit_entries_y2026m10', now.partition]));
    const counts = await rows<{ month: string; n: number }>(tdb.database.db, sql`select to_char(at at time zone 'Asia/Shanghai', 'YYYY-MM') as month, count(*)::int8 as n from audit_entries group by 1 order by 1`);
    expect(counts.slice(0, 2)).toEqual([{ month: '2026-09', n: 30 }, { month: '2026-10', n: 21 }]);
    for (const q of [`delete from audit_entries_y2026m09`, `update audit_entries_y2026m10 set subject = 'x'`, `truncate audit_entries_y2026m09`, `delete from audit_batches`, `update audit_archives set sha256 = 'x'`]) {
      expect(sqlCode(await tdb.database.db.execute(sql.raw(q)).then(() => null, (e: unknown) => e)), q).toBe('42501');
    }
    expect(await ensurePartitions(tdb.database.db)).toEqual([]); // idempotent
  });

  it('archives finished months in order, each file linked to the one before, and verifies them on their own', async () => {
    await expect(archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, '2026-10', path.join(dir, 'oct.jsonl'))).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/in order/) });
    await expect(archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, monthOf(new Date()).month, path.join(dir, 'now.jsonl'))).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/not over/) });
    await expect(archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, '2026-13', path.join(dir, 'x.jsonl'))).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });

    const sep = await archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, '2026-09', path.join(dir, 'sep.jsonl'));
    expect(sep).toMatchObject({ firstSeq: 1, lastSeq: 30, entries: 30, prevHash: GENESIS_HASH, detachedAt: null });
    // no checkpoint covered entry 30: archiving made one
    const [cp] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from audit_checkpoints where tree_size >= 30`);
    expect(cp!.n).toBeGreaterThan(0);
    await expect(archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, '2026-09', path.join(dir, 'again.jsonl'))).rejects.toMatchObject({ code: 'CONFLICT' });

    const oct = await archiveMonth(tdb.database.db, hub.services.keys, TEST_ISSUER, '2026-10', path.join(dir, 'oct.jsonl'));
    expect(oct).toMatchObject({ firstSeq: 31, lastSeq: 51, entries: 21, prevHash: sep.lastHash });
    const header = JSON.parse(fs.readFileSync(path.join(dir, 'oct.jsonl'), 'utf8').split('\n')[0]!) as Record<string, unknown>;
    expect(header).toMatchObject({ type: 'hub-audit-archive', partition: 'audit_entries_y2026m10', firstSeq: 31, prevHash: sep.lastHash, previousArchive: { partition: 'audit_entries_y2026m09', lastHash: sep.lastHash, sha256: sep.sha256 } });

    for (const [file, a] of [['sep.jsonl', sep], ['oct.jsonl', oct]] as const) {
      const r = await verifyArchiveFile(path.join(dir, file), keyFor);
      expect(r).toMatchObject({ ok: true, firstSeq: a.firstSeq, lastSeq: a.lastSeq, lastHash: a.lastHash, sha256: a.sha256, problem: null });
      expect(r.checkpoints).toBeGreaterThan(0);
    }
    const ops = await rows<{ operation: string }>(tdb.database.db, sql`select operation from audit_entries where operation = 'AUDIT_ARCHIVE'`);
    expect(ops).toHaveLength(2);
  });

  it('names what was changed in an archive file', async () => {
    const lines = fs.readFileSync(path.join(dir, 'sep.jsonl'), 'utf8').split('\n');
    const edited = lines.map((l, i) => (i === 8 ? l.replace(/"subject":"[0-9X]+"/, '"subject":"110105194912310021"') : l));
    fs.writeFileSync(path.join(dir, 'edited.jsonl'), edited.join('\n'));
    expect(await verifyArchiveFile(path.join(dir, 'edited.jsonl'), keyFor)).toMatchObject({ ok: false, problem: { seq: 8, kind: 'HASH' } });
    fs.writeFileSync(path.join(dir, 'cut.jsonl'), lines.slice(0, 20).join('\n'));
    expect(await verifyArchiveFile(path.join(dir, 'cut.jsonl'), keyFor)).toMatchObject({ ok: false, problem: { kind: 'TRUNCATED' } });
    fs.writeFileSync(path.join(dir, 'dropped.jsonl'), [...lines.slice(0, 5), ...lines.slice(6)].join('\n'));
    expect(await verifyArchiveFile(path.join(dir, 'dropped.jsonl'), keyFor)).toMatchObject({ ok: false, problem: { seq: 5, kind: 'GAP' } });
  });

  it('detaches a month only after its archive, oldest first; the log still verifies from the boundary and proves later entries', async () => {
    const now = monthOf(new Date()).month;
    await expect(detachMonth(tdb.database.db, now)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/no archive/) });
    await expect(detachMonth(tdb.database.db, '2026-10')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/older/) });
    await detachMonth(tdb.database.db, '2026-09');
    await detachMonth(tdb.database.db, '2026-10');
    await expect(detachMonth(tdb.database.db, '2026-10')).rejects.toMatchObject({ code: 'CONFLICT' });

    const months = await listAuditMonths(tdb.database.db);
    expect(months.filter((m) => !m.attached).map((m) => m.partition)).toEqual(['audit_entries_y2026m09', 'audit_entries_y2026m10']);
    const auditor = await hub.token(await hub.newClient(['auditor']));
    const r = await hub.graphql(`{ auditMonths { month partition attached archive { firstSeq lastSeq entries sha256 detachedAt } } }`, auditor);
    expect((r.body.data!.auditMonths as unknown[]).slice(0, 2)).toEqual([
      { month: '2026-09', partition: 'audit_entries_y2026m09', attached: false, archive: { firstSeq: 1, lastSeq: 30, entries: 30, sha256: expect.any(String), detachedAt: expect.any(String) } },
      { month: '2026-10', partition: 'audit_entries_y2026m10', attached: false, archive: { firstSeq: 31, lastSeq: 51, entries: 21, sha256: expect.any(String), detachedAt: expect.any(String) } },
    ]);
    const [left] = await rows<{ n: number; min: number }>(tdb.database.db, sql`select count(*)::int8 as n, min(seq)::int8 as min from audit_entries`);
    expect(left!.min).toBe(52);
    // the detached tables keep their entries, and the hub may not add to or remove from them
    const [kept] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from audit_entries_y2026m09`);
    expect(kept!.n).toBe(30);
    expect(sqlCode(await tdb.database.db.execute(sql`delete from audit_entries_y2026m09`).then(() => null, (e: unknown) => e))).toBe('42501');
    expect(sqlCode(await tdb.database.db.execute(sql`insert into audit_entries_y2026m09 select * from audit_entries_y2026m09 limit 1`).then(() => null, (e: unknown) => e))).toBe('42501');

    await hub.services.audit.appendMany(Array.from({ length: 9 }, (_, i) => record(300 + i)));
    const report = await verify();
    expect(report).toMatchObject({ ok: true, problem: null });
    expect(report.entries).toBe(51 + left!.n + 9);

    const head = (await createCheckpoint(tdb.database.db, hub.services.keys, TEST_ISSUER))!;
    for (const seq of [52, head.treeSize - 3, head.treeSize]) {
      const proof = await proveInclusion(tdb.database.db, seq, head.treeSize);
      const [e] = await rows<{ hash: string }>(tdb.database.db, sql`select hash from audit_entries where seq = ${seq}`);
      expect(verifyInclusion(seq - 1, head.treeSize, leaf(e!.hash), proof.path.map((h) => Buffer.from(h, 'hex')), Buffer.from(head.rootHash, 'hex'))).toBe(true);
    }
    await expect(proveInclusion(tdb.database.db, 10, head.treeSize)).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/archived/) });
  });

  it('notices an altered archive boundary in the database', async () => {
    expect((await verify()).ok).toBe(true);
    const [oct] = await rows<{ frontier: string[] }>(tdb.database.db, sql`select frontier from audit_archives where partition = 'audit_entries_y2026m10'`);
    expect(oct!.frontier).toHaveLength(4); // 51 = 110011b
    await owner(`update audit_archives set frontier = '["${'ab'.repeat(32)}"]'::jsonb where partition = 'audit_entries_y2026m10'`);
    expect(await verify()).toMatchObject({ ok: false, problem: { kind: 'ARCHIVE_LINK', seq: 51 } });
    const altered = [...oct!.frontier.slice(0, 3), 'ab'.repeat(32)];
    await owner(`update audit_archives set frontier = '${JSON.stringify(altered)}'::jsonb where partition = 'audit_entries_y2026m10'`);
    expect(await verify()).toMatchObject({ ok: false, problem: { kind: 'CHECKPOINT_ROOT' } });
    const trailer = JSON.parse(fs.readFileSync(path.join(dir, 'oct.jsonl'), 'utf8').trim().split('\n').at(-1)!) as { frontier: string[] };
    expect(trailer.frontier).toEqual(oct!.frontier);
    await owner(`update audit_archives set frontier = '${JSON.stringify(trailer.frontier)}'::jsonb where partition = 'audit_entries_y2026m10'`);
    expect((await verify()).ok).toBe(true);
  });

  // the CLI reaches a database by DATABASE_URL: PostgreSQL only
  if (driver === 'pg') it('hub audit verify --archive recomputes the files and their links (exit 1 when out of order)', () => {
    const env = { ...process.env, DATABASE_URL: tdb.url!, HUB_MASTER_KEY: TEST_MASTER_KEY, NODE_ENV: '' };
    const good = spawnSync(process.execPath, ['cli/bin.js', 'audit', 'verify', '--archive', path.join(dir, 'sep.jsonl'), path.join(dir, 'oct.jsonl')], { env, encoding: 'utf8', timeout: 60_000 });
    expect(good.stderr).toBe('');
    expect(good.status).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ ok: true, archives: [{ ok: true, lastSeq: 30 }, { ok: true, lastSeq: 51 }] });
    const swapped = spawnSync(process.execPath, ['cli/bin.js', 'audit', 'verify', '--archive', path.join(dir, 'oct.jsonl'), path.join(dir, 'sep.jsonl')], { env, encoding: 'utf8', timeout: 60_000 });
    expect(swapped.status).toBe(1);
    expect(JSON.parse(swapped.stdout)).toMatchObject({ ok: false, archives: [{ ok: true }, { ok: false, problem: { kind: 'ARCHIVE_LINK' } }] });
  });

  it('makes a missing month on the spot rather than lose an entry (the monthly job did not run)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2027-06-02T01:00:00Z'));
      expect((await listAuditMonths(tdb.database.db)).map((m) => m.partition)).not.toContain('audit_entries_y2027m06');
      const seq = await new AuditWriter(tdb.database.db).append(record(999));
      const [e] = await rows<{ at: string }>(tdb.database.db, sql`select to_char(at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') as at from audit_entries_y2027m06 where seq = ${seq}`);
      expect(e!.at).toBe('2027-06-02 01:00');
    } finally {
      vi.useRealTimers();
    }
    expect((await verify()).ok).toBe(true);
  });

  it('makes a missing month inside a caller\'s transaction too, and the act and its entry commit together', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(new Date('2027-09-02T01:00:00Z'));
      expect((await listAuditMonths(tdb.database.db)).map((m) => m.partition)).not.toContain('audit_entries_y2027m09');
      const [seq] = await tdb.database.db.transaction((tx) => appendInTransaction(tx, [record(998)]));
      const [e] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from audit_entries_y2027m09 where seq = ${seq!}`);
      expect(Number(e!.n)).toBe(1);
    } finally {
      vi.useRealTimers();
    }
    expect((await verify()).ok).toBe(true);
  });
});

describe('the migration to monthly partitions', () => {
  it('moves an existing log into its months with its chain intact, and writers go on from its end', async () => {
    // a database as it was before migration 0009, holding a chained log over two months
    const before = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-migrations-'));
    const journal = JSON.parse(fs.readFileSync(path.join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: { idx: number; tag: string }[] };
    const upTo = journal.entries.findIndex((e) => e.tag === '0009_audit_partitions');
    fs.mkdirSync(path.join(before, 'meta'));
    fs.writeFileSync(path.join(before, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, upTo) }));
    for (const e of journal.entries.slice(0, upTo)) fs.copyFileSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), path.join(before, `${e.tag}.sql`));
    const database = await openDatabase({ dataDir: 'memory://', appRole: true });
    try {
      await migrateDatabase(database, before);
      let prev = GENESIS_HASH;
      const old = Array.from({ length: 40 }, (_, i) => {
        const e = { seq: i + 1, at: i < 25 ? '2026-10-05T02:00:00.000Z' : '2026-11-05T02:00:00.000Z', clientId: 'c1', department: 'D', operator: null, itemCode: 'ITEM', caseId: `CASE-${i}`, operation: 'PERSON_READ', resourceCode: null, subject: null, fields: null, outcome: 'RETURNED', reason: null, withholdBasis: null, requestId: null, details: null };
        const hash = chainHash(prev, e);
        const row = { ...e, prevHash: prev, hash };
        prev = hash;
        return row;
      });
      await database.db.execute(sql`reset role`);
      for (const r of old) {
        await database.db.execute(sql`insert into audit_entries (seq, at, client_id, department, item_code, case_id, operation, outcome, prev_hash, hash) values (${r.seq}, ${r.at}::timestamptz, ${r.clientId}, ${r.department}, ${r.itemCode}, ${r.caseId}, ${r.operation}, ${r.outcome}, ${r.prevHash}, ${r.hash})`);
      }
      await database.db.execute(sql`set role hub_app`);

      await migrateDatabase(database);
      const months = await rows<{ month: string; n: number }>(database.db, sql`select to_char(at at time zone 'Asia/Shanghai', 'YYYY-MM') as month, count(*)::int8 as n from audit_entries group by 1 order by 1`);
      expect(months).toEqual([{ month: '2026-10', n: 25 }, { month: '2026-11', n: 15 }]);
      expect((await listAuditMonths(database.db)).map((m) => m.partition)).toEqual(expect.arrayContaining(['audit_entries_y2026m10', 'audit_entries_y2026m11']));
      const keyFor = async () => undefined;
      expect(await verifyAuditLog(database.db, keyFor)).toMatchObject({ ok: true, entries: 40 });
      // a writer that knows nothing of the old log chains onto its end; a stale head is refused by the claims
      await new AuditWriter(database.db).appendMany(Array.from({ length: 3 }, (_, i) => record(i)));
      expect(await verifyAuditLog(database.db, keyFor)).toMatchObject({ ok: true, entries: 43 });
      const stale = await database.db.execute(sql`insert into audit_batches (prev_seq, last_seq, at) values (20, 21, now())`).then(() => null, (e: unknown) => e);
      expect(sqlCode(stale)).toBe('23505');
    } finally {
      await database.close();
    }
  });
});
