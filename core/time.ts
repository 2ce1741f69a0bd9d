/** China keeps one offset all year (no daylight saving): Asia/Shanghai is UTC+08:00. */
export const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;

/** The calendar date (YYYY-MM-DD) in Asia/Shanghai: licence dates, working days and months are Beijing dates. */
export function shanghaiDate(d: Date): string {
  return new Date(d.getTime() + SHANGHAI_OFFSET_MS).toISOString().slice(0, 10);
}
