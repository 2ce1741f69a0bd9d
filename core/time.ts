/** China keeps one offset all year (no daylight saving): Asia/Shanghai is UTC+08:00. */
export const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;

/** The calendar date (YYYY-MM-DD) in Asia/Shanghai: licence dates, working days and months are Beijing dates. */
export function shanghaiDate(d: Date): string {
  const ms = d.getTime();
  // a batch asks for the date of one instant many times over (each licence's issue date)
  if (ms === last.ms) return last.day;
  const day = new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 10);
  last = { ms, day };
  return day;
}
let last = { ms: Number.NaN, day: '' };

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether year, month (1-12) and day name a day of the Gregorian calendar (arithmetic: it runs on hot paths). */
export function isRealDay(y: number, m: number, d: number): boolean {
  if (m < 1 || m > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (m === 2 && leap ? 29 : MONTH_DAYS[m - 1]!);
}

/** The value of `length` decimal digits of `v` from `at`, or -1 when one of them is not a digit. */
export function digitsAt(v: string, at: number, length: number): number {
  let n = 0;
  for (let i = at; i < at + length; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}
