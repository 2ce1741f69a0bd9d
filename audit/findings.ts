import { and, asc, desc, eq, gte, gt, inArray, lt, lte, or, type SQL } from 'drizzle-orm';
import { sql } from 'drizzle-orm';
import { isValidIdNumber, maskIdNumber } from '../core/ids.ts';
import { arrayLiteral, rows, type Db } from '../db/index.ts';
import { auditEntries, auditRuns, caseIs, RUN_TAG_COLUMNS, runTag, subjectIs } from './schema.ts';

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
  /** a department: only the reads of resources it provides (its current directory entries), as it sees the log */
  provider?: string | undefined;
}

/** The filters a run's tags answer, and the entries' columns they name. */
const TAGGED = RUN_TAG_COLUMNS.map((key) => [key, auditEntries[key]] as const);

/** The codes of the resources a department provides now. */
const providedBy = (department: string) => sql`(select code from resources where current and provider_code = ${department})`;

function entryConditions(f: EntryFilter): SQL[] {
  const conditions: SQL[] = [];
  if (f.clientId) conditions.push(eq(auditEntries.clientId, f.clientId));
  for (const [key, column] of TAGGED) {
    const value = f[key];
    if (value) conditions.push(eq(column, value));
  }
  if (f.caseId) conditions.push(caseIs(f.caseId));
  if (f.subject) conditions.push(subjectIs(f.subject));
  if (f.provider !== undefined) conditions.push(inArray(auditEntries.resourceCode, providedBy(f.provider)));
  if (f.from) conditions.push(gte(auditEntries.at, f.from));
  if (f.to) conditions.push(lt(auditEntries.at, f.to));
  return conditions;
}

/**
 * What the runs of the entries a filter finds are known by: their client, their tags, their time. Empty when the
 * filter names a subject or a case id (the entries' GIN index finds those directly, and few), or nothing a run
 * carries (a time range alone is read along the primary key).
 */
function runConditions(f: EntryFilter): SQL[] {
  if (f.subject || f.caseId) return [];
  const conditions: SQL[] = [];
  if (f.clientId) conditions.push(eq(auditRuns.clientId, f.clientId));
  const tags = TAGGED.flatMap(([key]) => (f[key] ? [runTag(key, f[key])] : []));
  if (tags.length) conditions.push(sql`${auditRuns.tags} @> ${arrayLiteral(tags)}::text[]`);
  if (f.provider !== undefined) conditions.push(sql`${auditRuns.tags} && array(select ${runTag('resourceCode', '')} || code from ${providedBy(f.provider)} p)`);
  if (conditions.length === 0) return [];
  if (f.from) conditions.push(gte(auditRuns.at, f.from));
  if (f.to) conditions.push(lt(auditRuns.at, f.to));
  return conditions;
}

type Entry = typeof auditEntries.$inferSelect;

/** The newest entries a filter with runs reads along the primary key before it walks the runs. */
const NEWEST_WINDOW = 4096;
/** How much further along the primary key a filter is read when the window found some matches, but not a page. */
const DENSE_REACH = 65_536;

/**
 * The newest `limit` entries a filter finds that lie below `before`, newest first. A subject or a case id is found
 * through the entries' GIN index. A client, a department, a resource (or a provider's resources), an item code, an
 * operation or an outcome is looked for first among the newest `window` entries, along the primary key (and
 * further, up to `reach`, where the matches there promise to fill the page), and below them through the runs
 * (audit_runs): those that carry it are walked newest first, more each round (1, 4, 16, 64, then 256: a busy
 * client's newest run usually fills a page alone), each read by seq range and time through the primary key, until
 * the page is full or the runs end. The filter's conditions are applied to the entries as well. Anything else (a
 * time range, or nothing) is read backwards along the primary key.
 */
export async function newestEntries(db: Db, f: EntryFilter, limit: number, before?: number, { window = NEWEST_WINDOW, reach: maxReach = DENSE_REACH } = {}): Promise<Entry[]> {
  const conditions = entryConditions(f);
  if (before !== undefined) conditions.push(lt(auditEntries.seq, before));
  const query = (where: SQL[], n: number) =>
    db
      .select()
      .from(auditEntries)
      .where(where.length ? and(...where) : undefined)
      .orderBy(desc(auditEntries.seq))
      .limit(n);
  const carried = runConditions(f);
  if (carried.length === 0) return query(conditions, limit);
  // the newest entries first, read along the primary key (the chain's numbers have no gaps): a filter that most
  // entries meet fills its page there, at less than walking the runs costs
  const [span = { first: null, last: null }] = await rows<{ first: number | null; last: number | null }>(db, sql`select min(${auditEntries.seq})::int8 as first, max(${auditEntries.seq})::int8 as last from ${auditEntries}`);
  if (span.first === null || span.last === null) return [];
  const end = before ?? span.last + 1;
  let low = end - window;
  const out: Entry[] = await query([...conditions, gte(auditEntries.seq, low)], limit);
  // nothing below the oldest entry still in the log (months archived and detached keep their runs)
  if (out.length >= limit || low <= span.first) return out;
  // matches there, but too few: read on along the primary key as far as they promise to fill the page, if that is
  // not far (one entry in a hundred, spread over most runs, is cheaper read so than through the runs). Matches of
  // fewer than three batches promise nothing: one read of a rare filter can fall in the window
  const batches = new Set(out.map((e) => e.at.getTime())).size;
  const reach = batches < 3 ? Infinity : Math.ceil((((limit - out.length) * window) / out.length) * 1.5);
  if (reach <= maxReach) {
    out.push(...(await query([...conditions, lt(auditEntries.seq, low), gte(auditEntries.seq, low - reach)], limit - out.length)));
    low -= reach;
    if (out.length >= limit || low <= span.first) return out;
  }
  // then the older ones through the runs, first the older entries of a run that reaches over the window's edge
  conditions.push(lt(auditEntries.seq, low));
  const run = { firstSeq: auditRuns.firstSeq, lastSeq: auditRuns.lastSeq, at: auditRuns.at };
  let runs = (await db.select(run).from(auditRuns).where(and(...carried, gte(auditRuns.lastSeq, low))).orderBy(asc(auditRuns.lastSeq)).limit(1)).filter((r) => r.firstSeq < low);
  let top = runs[0]?.firstSeq ?? low;
  for (let size = 1; ; size = Math.min(size * 4, 256)) {
    const older = await db
      .select(run)
      .from(auditRuns)
      .where(and(...carried, lt(auditRuns.lastSeq, top), gte(auditRuns.lastSeq, span.first)))
      .orderBy(desc(auditRuns.lastSeq))
      .limit(size);
    runs = [...runs, ...older];
    if (runs.length === 0) return out;
    const ranges = or(...runs.map((r) => and(gte(auditEntries.seq, r.firstSeq), lte(auditEntries.seq, r.lastSeq), eq(auditEntries.at, r.at))))!;
    out.push(...(await query([ranges, ...conditions], limit - out.length)));
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
