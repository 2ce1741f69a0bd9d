import type { CalendarDayKind } from './calendar.ts';

/**
 * The State Council's holiday notices (国务院办公厅关于某年部分节假日安排的通知) as data for loadWorkingCalendar.
 *
 * TRANSCRIBED BY HAND from the published notices (as reprinted by 新华社 / 中国政府网). Before loading a year in
 * production, check every date here against the notice on www.gov.cn: a wrong day silently moves every statutory
 * due date that crosses it. Each holiday is written as the notice words it ("1月28日至2月4日放假调休，共8天", with
 * weekend days inside the span included) and expanded below; make-up working days (调休上班) are listed one by one.
 */

interface Festival {
  name: string;
  /** First and last day off, inclusive, as in the notice. */
  off: [string, string];
  /** 调休 make-up working days (always a Saturday or Sunday). */
  work?: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

/** Every day of a festival's span as a HOLIDAY, then its make-up days as WORKDAYs. */
function expand(festivals: Festival[]): { day: string; kind: CalendarDayKind; name: string }[] {
  const days: { day: string; kind: CalendarDayKind; name: string }[] = [];
  for (const f of festivals) {
    const last = Date.parse(`${f.off[1]}T00:00:00Z`);
    for (let t = Date.parse(`${f.off[0]}T00:00:00Z`); t <= last; t += DAY_MS) {
      days.push({ day: new Date(t).toISOString().slice(0, 10), kind: 'HOLIDAY', name: f.name });
    }
    for (const day of f.work ?? []) days.push({ day, kind: 'WORKDAY', name: f.name });
  }
  return days.sort((a, b) => a.day.localeCompare(b.day));
}

export const STATE_COUNCIL_CALENDARS: Record<number, { source: string; days: { day: string; kind: CalendarDayKind; name: string }[] }> = {
  // 国办发明电〔2024〕12号, 2024-11-12. 28 days off, 5 make-up days.
  2025: {
    source: '国务院办公厅关于2025年部分节假日安排的通知（国办发明电〔2024〕12号）',
    days: expand([
      { name: '元旦', off: ['2025-01-01', '2025-01-01'] },
      { name: '春节', off: ['2025-01-28', '2025-02-04'], work: ['2025-01-26', '2025-02-08'] },
      { name: '清明节', off: ['2025-04-04', '2025-04-06'] },
      { name: '劳动节', off: ['2025-05-01', '2025-05-05'], work: ['2025-04-27'] },
      { name: '端午节', off: ['2025-05-31', '2025-06-02'] },
      { name: '国庆节、中秋节', off: ['2025-10-01', '2025-10-08'], work: ['2025-09-28', '2025-10-11'] },
    ]),
  },
  // Dated 2025-11-04. The dates match the 新华社 text; the 文号 〔2025〕7号 is as other sources cite it, not read
  // from the notice itself: confirm it on www.gov.cn. 33 days off, 6 make-up days.
  2026: {
    source: '国务院办公厅关于2026年部分节假日安排的通知（国办发明电〔2025〕7号）',
    days: expand([
      { name: '元旦', off: ['2026-01-01', '2026-01-03'], work: ['2026-01-04'] },
      { name: '春节', off: ['2026-02-15', '2026-02-23'], work: ['2026-02-14', '2026-02-28'] },
      { name: '清明节', off: ['2026-04-04', '2026-04-06'] },
      { name: '劳动节', off: ['2026-05-01', '2026-05-05'], work: ['2026-05-09'] },
      { name: '端午节', off: ['2026-06-19', '2026-06-21'] },
      { name: '中秋节', off: ['2026-09-25', '2026-09-27'] },
      { name: '国庆节', off: ['2026-10-01', '2026-10-07'], work: ['2026-09-20', '2026-10-10'] },
    ]),
  },
};
