import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count } from 'drizzle-orm';
import { calendarYears, workingCalendar } from '../directory/schema.ts';
import { addWorkingDays, calendarYear, isWorkingDay, loadWorkingCalendar, type CalendarInput } from '../directory/calendar.ts';
import { STATE_COUNCIL_CALENDARS } from '../directory/calendar-data.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';

/** A small made-up notice for a year no real one covers: 元旦, and a 劳动节 with a make-up Sunday and Saturday. */
const TEST_2031: CalendarInput = {
  year: 2031,
  source: 'test notice 2031',
  days: [
    { day: '2031-01-01', kind: 'HOLIDAY', name: '元旦' },
    { day: '2031-04-27', kind: 'WORKDAY', name: '劳动节' }, // Sunday
    { day: '2031-05-01', kind: 'HOLIDAY', name: '劳动节' }, // Thursday
    { day: '2031-05-02', kind: 'HOLIDAY', name: '劳动节' },
    { day: '2031-05-03', kind: 'HOLIDAY', name: '劳动节' },
    { day: '2031-05-04', kind: 'HOLIDAY', name: '劳动节' },
    { day: '2031-05-05', kind: 'HOLIDAY', name: '劳动节' }, // Monday
    { day: '2031-05-10', kind: 'WORKDAY', name: '劳动节' }, // Saturday
  ],
};

/** Shanghai wall-clock time as an instant. */
const bj = (local: string): Date => new Date(`${local}+08:00`);

describe.each(drivers())('working calendar and 工作日 time limits (%s)', (driver) => {
  let tdb: TestDatabase;
  const loaded: Record<number, { holidays: number; workdays: number }> = {};

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    for (const [year, notice] of Object.entries(STATE_COUNCIL_CALENDARS)) {
      loaded[Number(year)] = await loadWorkingCalendar(tdb.database.db, { year: Number(year), ...notice });
    }
    await loadWorkingCalendar(tdb.database.db, TEST_2031);
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  const due = async (from: Date, n: number) => {
    const r = await addWorkingDays(tdb.database.db, from, n);
    return { dueAt: r.dueAt.toISOString(), provisional: r.provisional };
  };

  it('loads the 2025 and 2026 State Council notices (共N天 as the notices say)', async () => {
    // 2025: 1 + 8 + 3 + 5 + 3 + 8 days off; 调休 1/26, 2/8, 4/27, 9/28, 10/11.
    expect(loaded[2025]).toEqual({ year: 2025, holidays: 28, workdays: 5 });
    // 2026: 3 + 9 + 3 + 5 + 3 + 3 + 7 days off; 调休 1/4, 2/14, 2/28, 5/9, 9/20, 10/10.
    expect(loaded[2026]).toEqual({ year: 2026, holidays: 33, workdays: 6 });
    const y2026 = await calendarYear(tdb.database.db, 2026);
    expect(y2026.source).toContain('2026年部分节假日安排');
    expect(y2026.loadedAt).toBeInstanceOf(Date);
    expect(y2026.days.filter((d) => d.kind === 'WORKDAY').map((d) => d.day)).toEqual([
      '2026-01-04',
      '2026-02-14',
      '2026-02-28',
      '2026-05-09',
      '2026-09-20',
      '2026-10-10',
    ]);
    expect(y2026.days[0]).toEqual({ day: '2026-01-01', kind: 'HOLIDAY', name: '元旦' });
  });

  it('counts 10 working days across plain weekends', async () => {
    // Requested Thu 2031-03-06: Fri 7th (1), Mon–Fri 10th–14th (2–6), Mon–Thu 17th–20th (7–10).
    expect(await due(bj('2031-03-06T10:00'), 10)).toEqual({ dueAt: '2031-03-20T15:59:59.999Z', provisional: false });
  });

  it('skips holidays and counts 调休 make-up days (test calendar)', async () => {
    // Requested Thu 2031-04-24: Fri 25th (1), Sat 26th rest, Sun 27th 调休 (2), Mon–Wed 28th–30th (3–5),
    // 5/1–5/5 劳动节, Tue–Fri 5/6–5/9 (6–9), Sat 5/10 调休 (10).
    // (With weekends only it would be Thu 5/8.)
    expect(await due(bj('2031-04-24T09:00'), 10)).toEqual({ dueAt: '2031-05-10T15:59:59.999Z', provisional: false });
  });

  it('skips 中秋 and 国庆 2026 from the real notice', async () => {
    // Requested Fri 2026-09-18: Sat 9/19 rest, Sun 9/20 调休 (1), Mon–Thu 9/21–9/24 (2–5), 9/25–9/27 中秋,
    // Mon–Wed 9/28–9/30 (6–8), 10/1–10/7 国庆, Thu 10/8 (9), Fri 10/9 (10).
    expect(await due(bj('2026-09-18T16:00'), 10)).toEqual({ dueAt: '2026-10-09T15:59:59.999Z', provisional: false });
    // Across 春节: requested Fri 2026-02-13: Sat 2/14 调休 (1), 2/15–2/23 春节, Tue 2/24 (2) … Fri 2/27 (5),
    // Sat 2/28 调休 (6), Mon–Thu 3/2–3/5 (7–10).
    expect(await due(bj('2026-02-13T11:00'), 10)).toEqual({ dueAt: '2026-03-05T15:59:59.999Z', provisional: false });
  });

  it('counts a make-up Saturday as a working day', async () => {
    // Requested Thu 2026-10-08: Fri 10/9 (1), Sat 10/10 调休 (2).
    expect(await due(bj('2026-10-08T10:00'), 2)).toEqual({ dueAt: '2026-10-10T15:59:59.999Z', provisional: false });
    expect(await due(bj('2026-02-13T10:00'), 1)).toEqual({ dueAt: '2026-02-14T15:59:59.999Z', provisional: false });
    const db = tdb.database.db;
    expect(await isWorkingDay(db, '2026-02-14')).toBe(true); // Saturday, 调休
    expect(await isWorkingDay(db, '2026-02-21')).toBe(false); // Saturday inside 春节
    expect(await isWorkingDay(db, '2026-02-23')).toBe(false); // Monday, 春节
    expect(await isWorkingDay(db, '2026-02-24')).toBe(true);
    expect(await isWorkingDay(db, '2026-03-07')).toBe(false); // plain Saturday
  });

  it('ends the due date at 23:59:59.999 Asia/Shanghai', async () => {
    const { dueAt } = await addWorkingDays(tdb.database.db, bj('2026-09-18T16:00'), 10);
    expect(dueAt.toISOString()).toBe('2026-10-09T15:59:59.999Z'); // 2026-10-09T23:59:59.999+08:00
    expect(new Date(dueAt.getTime() + 1).toISOString()).toBe('2026-10-09T16:00:00.000Z'); // next Shanghai midnight
    const shanghai = new Intl.DateTimeFormat('en-CA', {
      timeZone: 'Asia/Shanghai',
      hourCycle: 'h23',
      dateStyle: 'short',
      timeStyle: 'medium',
    }).format(dueAt);
    expect(shanghai).toBe('2026-10-09, 23:59:59');
  });

  it('counts from the Shanghai date of the request, not the UTC date', async () => {
    // Thu 2026-03-05 in Shanghai: Fri 3/6 (1), Mon–Fri 3/9–3/13 (2–6), Mon–Thu 3/16–3/19 (7–10).
    const expected = { dueAt: '2026-03-19T15:59:59.999Z', provisional: false };
    const lateEvening = bj('2026-03-05T22:30');
    expect(lateEvening.toISOString()).toBe('2026-03-05T14:30:00.000Z');
    expect(await due(lateEvening, 10)).toEqual(expected);
    const earlyMorning = bj('2026-03-05T01:00');
    expect(earlyMorning.toISOString()).toBe('2026-03-04T17:00:00.000Z'); // UTC still says the 4th
    expect(await due(earlyMorning, 10)).toEqual(expected);
    // One millisecond before Shanghai midnight is still the 4th: one working day earlier.
    expect(await due(new Date('2026-03-04T15:59:59.999Z'), 10)).toEqual({ dueAt: '2026-03-18T15:59:59.999Z', provisional: false });
  });

  it('does not depend on the machine time zone', async () => {
    const saved = process.env.TZ;
    try {
      for (const tz of ['America/Los_Angeles', 'Pacific/Kiritimati', 'UTC']) {
        process.env.TZ = tz;
        expect(await due(bj('2026-03-05T22:30'), 10)).toEqual({ dueAt: '2026-03-19T15:59:59.999Z', provisional: false });
        expect(await due(bj('2026-03-05T01:00'), 10)).toEqual({ dueAt: '2026-03-19T15:59:59.999Z', provisional: false });
      }
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });

  it('is provisional in a year with no notice loaded, and final once it is', async () => {
    const db = tdb.database.db;
    // 2033 has no calendar: weekends only.
    expect(await due(bj('2033-03-03T10:00'), 1)).toEqual({ dueAt: '2033-03-04T15:59:59.999Z', provisional: true });
    // Crossing into 2027 (not loaded): Tue–Thu 12/29–12/31 (1–3), Fri 2027-01-01 counts as a weekday (4),
    // Mon–Fri 1/4–1/8 (5–9), Mon 1/11 (10).
    expect(await due(bj('2026-12-28T10:00'), 10)).toEqual({ dueAt: '2027-01-11T15:59:59.999Z', provisional: true });

    // Thu 2032-04-29, before 2032 is loaded: Fri 4/30 (1), Mon 5/3 (2), Tue 5/4 (3).
    expect(await due(bj('2032-04-29T10:00'), 3)).toEqual({ dueAt: '2032-05-04T15:59:59.999Z', provisional: true });
    expect(await isWorkingDay(db, '2032-05-03')).toBe(true);
    await loadWorkingCalendar(db, {
      year: 2032,
      source: 'test notice 2032',
      days: [
        ...['2032-05-01', '2032-05-02', '2032-05-03', '2032-05-04', '2032-05-05'].map((day) => ({ day, kind: 'HOLIDAY' as const, name: '劳动节' })),
        { day: '2032-05-08', kind: 'WORKDAY', name: '劳动节' }, // Saturday
      ],
    });
    // After: Fri 4/30 (1), 5/1–5/5 劳动节, Thu 5/6 (2), Fri 5/7 (3).
    expect(await due(bj('2032-04-29T10:00'), 3)).toEqual({ dueAt: '2032-05-07T15:59:59.999Z', provisional: false });
    expect(await isWorkingDay(db, '2032-05-03')).toBe(false);
  });

  it('refuses a bad calendar with BAD_USER_INPUT and writes nothing', async () => {
    const db = tdb.database.db;
    const before2031 = await calendarYear(db, 2031);
    const [rowsBefore] = await db.select({ n: count() }).from(workingCalendar);
    const [yearsBefore] = await db.select({ n: count() }).from(calendarYears);

    const bad: [CalendarInput['days'][number], RegExp][] = [
      [{ day: '2031-05-07', kind: 'WORKDAY', name: '劳动节' }, /2031-05-07 is a Wednesday/],
      [{ day: '2031-02-30', kind: 'HOLIDAY', name: '春节' }, /2031-02-30 is not a real date/],
      [{ day: '2030-12-31', kind: 'HOLIDAY', name: '元旦' }, /2030-12-31 is not in 2031/],
      [{ day: '2031-05-01', kind: 'HOLIDAY', name: '劳动节' }, /2031-05-01 is listed twice/],
      [{ day: '2031-10-01', kind: 'REST' as 'HOLIDAY', name: '国庆节' }, /2031-10-01 has kind REST/],
      [{ day: '2031-10-01', kind: 'HOLIDAY', name: ' ' }, /2031-10-01 needs a name/],
    ];
    for (const [entry, message] of bad) {
      // The bad day comes after valid ones, so a half-done load would show.
      const attempt = loadWorkingCalendar(db, { year: 2031, source: 'corrected', days: [...TEST_2031.days, entry] });
      await expect(attempt).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'days' } });
      await expect(attempt).rejects.toThrow(message);
    }
    // A year never loaded stays unloaded after a refusal.
    await expect(
      loadWorkingCalendar(db, { year: 2034, source: 'x', days: [{ day: '2034-01-04', kind: 'WORKDAY', name: '元旦' }] }),
    ).rejects.toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'days' } });
    await expect(loadWorkingCalendar(db, { year: 2034, source: 'x', days: [] })).rejects.toMatchObject({
      extensions: { code: 'BAD_USER_INPUT', field: 'days' },
    });

    expect(await calendarYear(db, 2031)).toEqual(before2031);
    expect(await calendarYear(db, 2034)).toEqual({ year: 2034, source: null, loadedAt: null, days: [] });
    expect((await db.select({ n: count() }).from(workingCalendar))[0]).toEqual(rowsBefore);
    expect((await db.select({ n: count() }).from(calendarYears))[0]).toEqual(yearsBefore);
  });

  it('refuses a time limit that is not a positive whole number of days', async () => {
    for (const n of [0, -1, 2.5, Number.NaN]) {
      await expect(addWorkingDays(tdb.database.db, bj('2026-03-05T10:00'), n)).rejects.toMatchObject({
        extensions: { code: 'BAD_USER_INPUT', field: 'n' },
      });
    }
    await expect(addWorkingDays(tdb.database.db, new Date('nope'), 1)).rejects.toMatchObject({
      extensions: { code: 'BAD_USER_INPUT', field: 'from' },
    });
  });

  it('replaces a year on reload and leaves other years alone', async () => {
    const db = tdb.database.db;
    const other = await calendarYear(db, 2026);
    await loadWorkingCalendar(db, {
      year: 2035,
      source: 'first draft',
      days: [
        { day: '2035-01-01', kind: 'HOLIDAY', name: '元旦' },
        { day: '2035-01-06', kind: 'WORKDAY', name: '元旦' },
      ],
    });
    expect(await isWorkingDay(db, '2035-01-06')).toBe(true);
    const result = await loadWorkingCalendar(db, {
      year: 2035,
      source: 'corrected',
      days: [
        { day: '2035-01-02', kind: 'HOLIDAY', name: '元旦' },
        { day: '2035-01-01', kind: 'HOLIDAY', name: '元旦' },
      ],
    });
    expect(result).toEqual({ year: 2035, holidays: 2, workdays: 0 });
    const y2035 = await calendarYear(db, 2035);
    expect(y2035.source).toBe('corrected');
    expect(y2035.days).toEqual([
      { day: '2035-01-01', kind: 'HOLIDAY', name: '元旦' },
      { day: '2035-01-02', kind: 'HOLIDAY', name: '元旦' },
    ]);
    expect(await isWorkingDay(db, '2035-01-06')).toBe(false); // the dropped 调休 Saturday is a plain Saturday again
    expect(await calendarYear(db, 2026)).toEqual(other);
  });
});
