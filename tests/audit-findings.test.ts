import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditFindings } from '../audit/findings.ts';
import { ensurePartitions } from '../audit/months.ts';
import { rows } from '../db/index.ts';
import { loadWorkingCalendar } from '../directory/calendar.ts';
import { STATE_COUNCIL_CALENDARS } from '../directory/calendar-data.ts';
import { asOwner, createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, type TestHub } from './helpers/hub.ts';

const PERSON = '11010519491231002X';

describe.each(drivers())('audit findings and export (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let auditor: string;
  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    auditor = await hub.token(await hub.newClient(['auditor']));
    await loadWorkingCalendar(tdb.database.db, { year: 2026, ...STATE_COUNCIL_CALENDARS[2026]! });
    // History written as the owner, with the times a test needs (the hub's own writer stamps the present), into
    // the monthly partitions of those past months.
    await ensurePartitions(tdb.database.db, new Date('2026-06-01T00:00:00+08:00'), 5);
    const insert = `insert into audit_entries (seq, at, client_id, department, operation, item_code, case_id, subject, outcome, prev_hash, hash)
      select row_number() over (order by t) + 100000, t, c, 'D', 'PERSON_READ', 'ITEM', k, '${PERSON}', o, repeat('0', 64), md5(t::text) || md5(c)
      from (values %VALUES%) v(t, c, k, o)`;
    const values: string[] = [];
    // client A: 5 reads a day at 10:00 on the working days of June, then 40 on Wednesday 8 July
    for (let d = 1; d <= 30; d++) {
      const day = `2026-06-${String(d).padStart(2, '0')}`;
      const dow = new Date(`${day}T00:00:00Z`).getUTCDay();
      if (dow === 0 || dow === 6 || day === '2026-06-19') continue; // weekends, 端午
      for (let i = 0; i < 5; i++) values.push(`('${day} 10:0${i}:00+08'::timestamptz, 'client-a', 'CASE-${day}-${i}', 'RETURNED')`);
    }
    for (let i = 0; i < 40; i++) values.push(`('2026-07-08 10:${String(i).padStart(2, '0')}:00+08'::timestamptz, 'client-a', 'CASE-0708-${i}', 'RETURNED')`);
    values.push(`('2026-07-08 11:00:00+08'::timestamptz, 'client-b', NULL, 'RETURNED')`); // no case id
    values.push(`('2026-07-08 11:05:00+08'::timestamptz, 'client-b', 'CASE-R', 'REFUSED')`);
    values.push(`('2026-07-08 22:00:00+08'::timestamptz, 'client-c', 'CASE-N', 'RETURNED')`); // evening
    values.push(`('2026-07-11 10:00:00+08'::timestamptz, 'client-c', 'CASE-S', 'RETURNED')`); // Saturday
    values.push(`('2026-09-20 10:00:00+08'::timestamptz, 'client-d', 'CASE-W', 'RETURNED')`); // a make-up Sunday: working
    values.push(`('2026-10-02 10:00:00+08'::timestamptz, 'client-c', 'CASE-H', 'RETURNED')`); // 国庆
    const statement = insert.replace('%VALUES%', values.join(','));
    await asOwner(tdb, statement);
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('finds reads without a case id, refused reads, a client far above its 28-day median, and reads outside office hours', async () => {
    const findings = await auditFindings(tdb.database.db, new Date('2026-07-01T00:00:00+08:00'), new Date('2026-12-31T00:00:00+08:00'));
    expect(findings.filter((f) => f.kind === 'READ_WITHOUT_CASE')).toEqual([expect.objectContaining({ clientId: 'client-b', count: 1 })]);
    expect(findings.filter((f) => f.kind === 'REFUSED_READ')).toEqual([expect.objectContaining({ clientId: 'client-b', count: 1 })]);
    expect(findings.filter((f) => f.kind === 'VOLUME_SPIKE')).toEqual([expect.objectContaining({ clientId: 'client-a', day: '2026-07-08', count: 40, median: 5 })]);
    const off = findings.filter((f) => f.kind === 'OFF_HOURS');
    expect(off).toEqual([expect.objectContaining({ clientId: 'client-c', count: 3 })]);
    expect(off[0]!.sample).toHaveLength(3);

    const viaApi = await hub.graphql(`{ auditFindings(from: "2026-07-01T00:00:00+08:00", to: "2026-12-31T00:00:00+08:00") { kind clientId count } }`, auditor);
    expect((viaApi.body.data!.auditFindings as unknown[]).length).toBe(findings.length);
  });

  it('streams exports: CSV for people with ID numbers masked, JSONL for machines, each export recorded', async () => {
    const csv = await fetch(`${hub.url}/audit/export?format=csv&clientId=client-c`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/text\/csv/);
    const bytes = Buffer.from(await csv.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]); // a BOM, so spreadsheet tools read UTF-8
    const text = bytes.toString('utf8');
    const lines = text.trim().split('\r\n');
    expect(lines[0]!.replace(/^\uFEFF/, '')).toBe('id,at,clientId,department,operator,itemCode,caseId,operation,resourceCode,subject,fields,outcome,reason,withholdBasis,hash');
    expect(lines).toHaveLength(4);
    expect(text).not.toContain(PERSON);
    expect(text).toContain('110105********002X');

    const jsonl = await fetch(`${hub.url}/audit/export?format=jsonl&from=2026-07-08T00:00:00%2B08:00&to=2026-07-09T00:00:00%2B08:00`, { headers: { authorization: `Bearer ${auditor}` } });
    const entries = (await jsonl.text()).trim().split('\n').map((l) => JSON.parse(l) as { subject: string; clientId: string });
    expect(entries).toHaveLength(43);
    expect(entries[0]!.subject).toBe(PERSON);

    // by every filter accessLog takes, a case id and an operation among them; a filter given twice is refused
    const byCase = await fetch(`${hub.url}/audit/export?format=jsonl&caseId=CASE-R&operation=PERSON_READ`, { headers: { authorization: `Bearer ${auditor}` } });
    expect((await byCase.text()).trim().split('\n').map((l) => JSON.parse(l) as unknown)).toEqual([expect.objectContaining({ caseId: 'CASE-R', clientId: 'client-b', outcome: 'REFUSED' })]);
    const twice = await fetch(`${hub.url}/audit/export?clientId=client-a&clientId=client-b`, { headers: { authorization: `Bearer ${auditor}` } });
    expect(twice.status).toBe(400);
    expect(await twice.json()).toMatchObject({ error: 'BAD_USER_INPUT' });

    const [{ n } = { n: 0 }] = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from audit_entries where operation = 'AUDIT_EXPORT'`);
    expect(n).toBe(3);
    const consumer = await hub.token(await hub.newClient(['consumer']));
    expect((await fetch(`${hub.url}/audit/export`, { headers: { authorization: `Bearer ${consumer}` } })).status).toBe(403);
    expect((await fetch(`${hub.url}/audit/export`)).status).toBe(401);
  });
});
