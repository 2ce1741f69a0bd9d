import { asc, between, eq, sql } from 'drizzle-orm';
import { recordAct } from '../audit/acts.ts';
import { CLI_ACTOR, type Actor } from '../core/context.ts';
import { SHANGHAI_OFFSET_MS } from '../core/time.ts';
import { badInput } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { calendarYears, workingCalendar } from './schema.ts';

/**
 * 工作日历: the State Council's yearly holiday notice (国务院办公厅关于某年部分节假日安排的通知) as rows, and the
 * 政务 time limits counted on it ("10个工作日内办结"). A working day is a 调休 make-up day (WORKDAY row, a Saturday
 * or Sunday), or a Monday–Friday that is not a HOLIDAY row. Every date is an Asia/Shanghai calendar date: China has
 * one time zone, UTC+8 without daylight saving, so a fixed offset is exact and the machine's TZ never matters.
 */

export type CalendarDayKind = 'HOLIDAY' | 'WORKDAY';
export type CalendarDay = typeof workingCalendar.$inferSelect;

export interface CalendarInput {
  year: number;
  /** Where the days come from, ideally the notice's title and 文号 (e.g. 国办发明电〔2024〕12号). */
  source: string;
  days: { day: string; kind: CalendarDayKind; name: string }[];
}

export interface DueDate {
  /** The end (23:59:59.999 Asia/Shanghai) of the n-th working day after the request's Shanghai date. */
  dueAt: Date;
  /** True when a day counted over lies in a year whose notice is not loaded: there only weekends were rest days. */
  provisional: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Far beyond any statutory time limit; bounds the counting loop against a typo such as 1e9. */
const MAX_WORKING_DAYS = 1000;
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;

// Calendar dates are handled as day numbers (days since 1970-01-01): stepping a day is `+ 1`, and reading the
// weekday or year goes through getUTC*, so nothing depends on the process's local time zone.

/** The day number of a strict YYYY-MM-DD string, or undefined when it is not a real date (2031-02-30). */
function parseDay(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d) return undefined;
  return ms / DAY_MS;
}

const isoDay = (n: number): string => new Date(n * DAY_MS).toISOString().slice(0, 10);
const weekdayOf = (n: number): number => new Date(n * DAY_MS).getUTCDay();
const yearOf = (n: number): number => new Date(n * DAY_MS).getUTCFullYear();
const isWeekend = (n: number): boolean => weekdayOf(n) === 0 || weekdayOf(n) === 6;
/** The Asia/Shanghai calendar date of an instant: 2026-03-05T01:00+08:00 is still the 5th though UTC says the 4th. */
const shanghaiDay = (at: Date): number => Math.floor((at.getTime() + SHANGHAI_OFFSET_MS) / DAY_MS);
/** 23:59:59.999 Asia/Shanghai on that date, as an instant. */
const endOfShanghaiDay = (n: number): Date => new Date((n + 1) * DAY_MS - SHANGHAI_OFFSET_MS - 1);

/** The rule itself: a 调休 WORKDAY counts even on a weekend, a HOLIDAY never, otherwise Monday–Friday. */
function counts(day: number, kind: CalendarDayKind | undefined): boolean {
  if (kind === 'WORKDAY') return true;
  if (kind === 'HOLIDAY') return false;
  return !isWeekend(day);
}

function checkYear(year: number): void {
  if (!Number.isInteger(year) || year < 1949 || year > 9999) throw badInput('year', `year ${String(year)} is not a calendar year`);
}

/**
 * Loads one year's notice, replacing whatever that year had: a corrected notice (or a re-run) must not leave the
 * old days behind. Everything is checked before anything is written, and the write is one transaction, so a bad
 * list leaves the previous calendar (or none) in place. Loading also marks the year as known (calendar_years), which
 * is what makes due dates in it final rather than provisional.
 */
export async function loadWorkingCalendar(db: Db, input: CalendarInput, actor: Actor = CLI_ACTOR): Promise<{ year: number; holidays: number; workdays: number }> {
  const { year } = input;
  checkYear(year);
  const source = typeof input.source === 'string' ? input.source.trim() : '';
  if (!source) throw badInput('source', 'a calendar needs its source, e.g. the notice title and 文号');
  if (!Array.isArray(input.days) || input.days.length === 0) {
    // An empty list would mark the year as loaded and make every weekday in it a working day without a word.
    throw badInput('days', `the ${year} calendar lists no days; a State Council notice always has holidays`);
  }

  const seen = new Set<string>();
  const values: CalendarDay[] = [];
  for (const entry of input.days) {
    if (typeof entry !== 'object' || entry === null) throw badInput('days', 'each day is { day, kind, name }');
    const text = String(entry.day);
    const day = parseDay(text);
    if (day === undefined) throw badInput('days', `day ${text} is not a real date (YYYY-MM-DD)`);
    if (yearOf(day) !== year) throw badInput('days', `day ${text} is not in ${year}`);
    if (seen.has(text)) throw badInput('days', `day ${text} is listed twice`);
    seen.add(text);
    const kind = entry.kind as string;
    if (kind !== 'HOLIDAY' && kind !== 'WORKDAY') throw badInput('days', `day ${text} has kind ${kind}; it is HOLIDAY or WORKDAY`);
    if (kind === 'WORKDAY' && !isWeekend(day)) {
      // A weekday is a working day already; a WORKDAY there is almost certainly a mistyped 调休 date.
      throw badInput('days', `day ${text} is a ${WEEKDAYS[weekdayOf(day)]}: a WORKDAY (调休上班) must fall on a Saturday or Sunday`);
    }
    const name = typeof entry.name === 'string' ? entry.name.trim() : '';
    if (!name) throw badInput('days', `day ${text} needs a name (the festival, e.g. 春节)`);
    values.push({ day: text, kind, name });
  }

  await db.transaction(async (tx) => {
    await tx.delete(workingCalendar).where(between(workingCalendar.day, `${year}-01-01`, `${year}-12-31`));
    await tx.insert(workingCalendar).values(values);
    await tx
      .insert(calendarYears)
      .values({ year, source })
      .onConflictDoUpdate({ target: calendarYears.year, set: { source, loadedAt: sql`now()` } });
    await recordAct(tx, actor, 'CALENDAR_LOAD', { reason: source, details: { year, holidays: values.filter((v) => v.kind === 'HOLIDAY').length, workdays: values.filter((v) => v.kind === 'WORKDAY').length } });
  });
  return {
    year,
    holidays: values.filter((v) => v.kind === 'HOLIDAY').length,
    workdays: values.filter((v) => v.kind === 'WORKDAY').length,
  };
}

/** One range of the calendar: the loaded years, and the HOLIDAY/WORKDAY rows of those years by day number. */
async function readCalendar(db: Db, first: number, last: number): Promise<{ loaded: Set<number>; kinds: Map<number, CalendarDayKind> }> {
  const years = await db
    .select({ year: calendarYears.year })
    .from(calendarYears)
    .where(between(calendarYears.year, yearOf(first), yearOf(last)));
  const loaded = new Set(years.map((y) => y.year));
  const days = await db
    .select({ day: workingCalendar.day, kind: workingCalendar.kind })
    .from(workingCalendar)
    .where(between(workingCalendar.day, isoDay(first), isoDay(last)));
  const kinds = new Map<number, CalendarDayKind>();
  for (const d of days) {
    const n = parseDay(d.day)!;
    // Rows of a year that is not marked loaded are ignored, so "provisional" always means weekends only.
    if (loaded.has(yearOf(n))) kinds.set(n, d.kind);
  }
  return { loaded, kinds };
}

/**
 * The due date of a 政务 time limit of n working days (工作日). Counting starts the day after the request's date in
 * Asia/Shanghai (a request at 22:30 Beijing time on the 5th counts from the 6th, whatever the UTC date), and the
 * limit ends with the n-th working day. The calendar is read for a window that covers n working days with room for
 * the longest holidays; only an unusually long run of holidays needs a further window.
 */
export async function addWorkingDays(db: Db, from: Date, n: number): Promise<DueDate> {
  if (!(from instanceof Date) || Number.isNaN(from.getTime())) throw badInput('from', 'the start of a time limit must be a valid date');
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKING_DAYS) {
    throw badInput('n', `a time limit is a whole number of working days from 1 to ${MAX_WORKING_DAYS}, not ${String(n)}`);
  }
  let counted = 0;
  let provisional = false;
  let last = shanghaiDay(from);
  for (;;) {
    const first = last + 1;
    last = first + Math.ceil(((n - counted) * 7) / 5) + 31;
    const { loaded, kinds } = await readCalendar(db, first, last);
    for (let day = first; day <= last; day++) {
      if (!loaded.has(yearOf(day))) provisional = true;
      if (counts(day, kinds.get(day)) && ++counted === n) return { dueAt: endOfShanghaiDay(day), provisional };
    }
  }
}

/**
 * Whether a date (YYYY-MM-DD, an Asia/Shanghai calendar date) is a working day. In a year whose notice is not
 * loaded only weekends are rest days, as in addWorkingDays.
 */
export async function isWorkingDay(db: Db, date: string): Promise<boolean> {
  const day = parseDay(date);
  if (day === undefined) throw badInput('day', `day ${date} is not a real date (YYYY-MM-DD)`);
  const { kinds } = await readCalendar(db, day, day);
  return counts(day, kinds.get(day));
}

/** A year's calendar as loaded: its source (null when the year has no notice loaded) and its days in order. */
export async function calendarYear(
  db: Db,
  year: number,
): Promise<{ year: number; source: string | null; loadedAt: Date | null; days: CalendarDay[] }> {
  checkYear(year);
  const [loaded] = await db.select().from(calendarYears).where(eq(calendarYears.year, year));
  const days = await db
    .select()
    .from(workingCalendar)
    .where(between(workingCalendar.day, `${year}-01-01`, `${year}-12-31`))
    .orderBy(asc(workingCalendar.day));
  return { year, source: loaded?.source ?? null, loadedAt: loaded?.loadedAt ?? null, days };
}
