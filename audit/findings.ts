import { and, asc, desc, eq, gte, gt, lt, lte, or, type SQL } from 'drizzle-orm';
import { sql } from 'drizzle-orm';
import { isValidIdNumber, maskIdNumber } from '../core/ids.ts';
import { rows, type Db } from '../db/index.ts';
import { auditClientRuns, auditEntries, subjectIs } from './schema.ts';

export type FindingKind = 'READ_WITHOUT_CASE' | 'REFUSED_READ' | 'VOLUME_SPIKE' | 'OFF_HOURS';

export interface Finding {
  kind: FindingKind;
  clientId: string | null;
  /** the Asia/Shanghai day, for VOLUME_SPIKE */
  day: string | null;
  count: number;
  /** for VOLUME_SPIKE: the client's median daily reads over the 28 days before */
  median: number | null;
  /** up to 20 entry ids to look at */
  sample: string[];
}

/** Office hours (Asia/Shanghai) on working days; reads outside them are a finding. */
export const OFFICE_HOURS = { from: '08:30', to: '18:00' };
const READ = sql`(operation like '%READ' and outcome in ('RETURNED', 'NOT_FOUND'))`;

/**
 * 审计发现: what an auditor should look at in a period — reads without a case id (办件编号), refused reads, a client's
 * daily reads far above its own 28-day median (over the days it read at all), and reads outside office hours or on
 * days off by the loaded State Council calendar.
 */
export async function auditFindings(db: Db, from: Date, to: Date, spikeFactor = 3): Promise<Finding[]> {
  const f = from.toISOString();
  const t = to.toISOString();
  const grouped = async (kind: FindingKind, where: SQL): Promise<Finding[]> =>
    (
      await rows<{ client_id: string | null; n: number; sample: string[] }>(
        db,
        sql`select client_id, count(*)::int8 as n, (array_agg(seq::text order by seq))[1:20] as sample
            from audit_entries where at >= ${f}::timestamptz and at < ${t}::timestamptz and ${where}
            group by client_id order by n desc`,
      )
    ).map((r) => ({ kind, clientId: r.client_id, day: null, count: r.n, median: null, sample: r.sample }));

  const withoutCase = await grouped('READ_WITHOUT_CASE', sql`${READ} and coalesce(case_id, '') = ''`);
  const refused = await grouped('REFUSED_READ', sql`operation like '%READ' and outcome = 'REFUSED'`);
  const offHours = await grouped(
    'OFF_HOURS',
    sql`${READ} and (
          (at at time zone 'Asia/Shanghai')::time < ${OFFICE_HOURS.from}::time
          or (at at time zone 'Asia/Shanghai')::time >= ${OFFICE_HOURS.to}::time
          or exists (select 1 from working_calendar w where w.day = (at at time zone 'Asia/Shanghai')::date and w.kind = 'HOLIDAY')
          or (extract(isodow from (at at time zone 'Asia/Shanghai')) in (6, 7)
              and not exists (select 1 from working_calendar w where w.day = (at at time zone 'Asia/Shanghai')::date and w.kind = 'WORKDAY'))
        )`,
  );
  const spikes = (
    await rows<{ client_id: string; day: string; n: number; median: number; sample: string[] }>(
      db,
      sql`with daily as (
            select client_id, (at at time zone 'Asia/Shanghai')::date as day, count(*)::int8 as n,
                   (array_agg(seq::text order by seq))[1:20] as sample
            from audit_entries
            where ${READ} and client_id is not null
              and at >= ${f}::timestamptz - interval '28 days' and at < ${t}::timestamptz
            group by 1, 2
          ), scored as (
            select d.client_id, d.day, d.n, d.sample,
                   (select percentile_cont(0.5) within group (order by p.n) from daily p
                    where p.client_id = d.client_id and p.day >= d.day - 28 and p.day < d.day) as median
            from daily d where d.day >= (${f}::timestamptz at time zone 'Asia/Shanghai')::date
          )
          select client_id, day::text as day, n, median::float8 as median, sample from scored
          where median is not null and n > ${spikeFactor} * median order by day, client_id`,
    )
  ).map((r) => ({ kind: 'VOLUME_SPIKE' as const, clientId: r.client_id, day: r.day, count: r.n, median: r.median, sample: r.sample }));
  return [...withoutCase, ...refused, ...spikes, ...offHours];
}

export const EXPORT_COLUMNS = ['id', 'at', 'clientId', 'department', 'operator', 'itemCode', 'caseId', 'operation', 'resourceCode', 'subject', 'fields', 'outcome', 'reason', 'withholdBasis', 'hash'] as const;

/** What auditors filter the log by, in `accessLog` and in exports alike. */
export interface EntryFilter {
  clientId?: string | undefined;
  department?: string | undefined;
  resourceCode?: string | undefined;
  subject?: string | undefined;
  itemCode?: string | undefined;
  caseId?: string | undefined;
  operation?: string | undefined;
  outcome?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
}

export function entryConditions(f: EntryFilter): SQL[] {
  const conditions: SQL[] = [];
  for (const [key, column] of [
    ['clientId', auditEntries.clientId],
    ['department', auditEntries.department],
    ['resourceCode', auditEntries.resourceCode],
    ['itemCode', auditEntries.itemCode],
    ['caseId', auditEntries.caseId],
    ['operation', auditEntries.operation],
    ['outcome', auditEntries.outcome],
  ] as const) {
    const value = f[key];
    if (value) conditions.push(eq(column, value));
  }
  if (f.subject) conditions.push(subjectIs(f.subject));
  if (f.from) conditions.push(gte(auditEntries.at, f.from));
  if (f.to) conditions.push(lt(auditEntries.at, f.to));
  return conditions;
}

type Entry = typeof auditEntries.$inferSelect;

/**
 * The newest `limit` entries that meet the conditions and lie below `before`, newest first. With a client, through its
 * runs (audit_client_runs): newest first, more each round (1, 4, 16, 64, then 256: a busy client's newest run
 * usually fills a page alone), each read by seq range and time through the primary key, until the page is full or
 * the client's runs end. The conditions are applied to the entries as well, the client's too.
 */
export async function newestEntries(db: Db, conditions: SQL[], limit: number, before?: number, clientId?: string): Promise<Entry[]> {
  const below = before === undefined ? [] : [lt(auditEntries.seq, before)];
  const query = (where: SQL[], n: number) =>
    db
      .select()
      .from(auditEntries)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(auditEntries.seq))
      .limit(n);
  if (clientId === undefined) return query([...conditions, ...below], limit);
  const out: Entry[] = [];
  const run = { firstSeq: auditClientRuns.firstSeq, lastSeq: auditClientRuns.lastSeq, at: auditClientRuns.at };
  // the run the cursor falls in, if any: its older entries come first
  let runs =
    before === undefined
      ? []
      : (await db.select(run).from(auditClientRuns).where(and(eq(auditClientRuns.clientId, clientId), gte(auditClientRuns.lastSeq, before))).orderBy(asc(auditClientRuns.lastSeq)).limit(1)).filter(
          (r) => r.firstSeq < before,
        );
  let top = runs[0]?.firstSeq ?? before;
  for (let size = 1; ; size = Math.min(size * 4, 256)) {
    const older = await db
      .select(run)
      .from(auditClientRuns)
      .where(and(eq(auditClientRuns.clientId, clientId), top === undefined ? undefined : lt(auditClientRuns.lastSeq, top)))
      .orderBy(desc(auditClientRuns.lastSeq))
      .limit(size);
    runs = [...runs, ...older];
    if (runs.length === 0) return out;
    const ranges = or(...runs.map((r) => and(gte(auditEntries.seq, r.firstSeq), lte(auditEntries.seq, r.lastSeq), eq(auditEntries.at, r.at))))!;
    out.push(...(await query([ranges, ...conditions, ...below], limit - out.length)));
    if (out.length >= limit || older.length < size) return out;
    top = older.at(-1)!.firstSeq;
    runs = [];
  }
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : Array.isArray(v) ? v.join(';') : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * Streams the entries of a filter, oldest first, in chunks (never the whole log in memory). CSV is meant for
 * people and masks 公民身份号码; JSONL is for machines and carries the subject whole, with each entry's hash so an
 * archive can be checked against the chain.
 */
export async function* exportEntries(db: Db, filter: EntryFilter, format: 'csv' | 'jsonl'): AsyncGenerator<string> {
  const conditions = entryConditions(filter);
  if (format === 'csv') yield `\uFEFF${EXPORT_COLUMNS.join(',')}\r\n`;
  for (let after = 0; ; ) {
    const chunk = await db
      .select()
      .from(auditEntries)
      .where(and(gt(auditEntries.seq, after), ...conditions))
      .orderBy(asc(auditEntries.seq))
      .limit(5000);
    if (chunk.length === 0) return;
    const lines: string[] = [];
    for (const e of chunk) {
      const row = { id: String(e.seq), at: e.at.toISOString(), clientId: e.clientId, department: e.department, operator: e.operator, itemCode: e.itemCode, caseId: e.caseId, operation: e.operation, resourceCode: e.resourceCode, subject: e.subject, fields: e.fields, outcome: e.outcome, reason: e.reason, withholdBasis: e.withholdBasis, hash: e.hash };
      if (format === 'csv') {
        const shown = { ...row, subject: row.subject && isValidIdNumber(row.subject) ? maskIdNumber(row.subject) : row.subject };
        lines.push(`${EXPORT_COLUMNS.map((c) => csvCell(shown[c])).join(',')}\r\n`);
      } else {
        lines.push(`${JSON.stringify(row)}\n`);
      }
    }
    yield lines.join('');
    after = chunk.at(-1)!.seq;
  }
}
