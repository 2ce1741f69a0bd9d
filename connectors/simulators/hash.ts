/**
 * Deterministic randomness for the simulators: a 32-bit hash of (seed, salt, index, extra), a small PRNG seeded
 * from it, keyed bijections on n-bit integers (so distinct indexes give distinct codes), and calendar helpers.
 */

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A well-mixed unsigned 32-bit hash of four integers. */
export function hash(seed: number, salt: number, index: number, extra = 0): number {
  const a = fmix((seed ^ Math.imul(salt + 1, 0x9e3779b1)) >>> 0);
  const b = fmix((a ^ index) >>> 0);
  return fmix((b ^ Math.imul(extra + 1, 0x27d4eb2f)) >>> 0);
}

/** mulberry32 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed | 0;
  }
  next32(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** [0, 1) */
  next(): number {
    return this.next32() / 4294967296;
  }
  /** an integer in [0, n) */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.next() * list.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

/**
 * A keyed bijection on [0, 2^bits) (bits ≤ 30): additions, multiplications by odd constants and right xorshifts
 * modulo 2^bits, each invertible, so distinct inputs always give distinct outputs.
 */
export class Permutation {
  private readonly mask: number;
  private readonly shift: number;
  private readonly keys: number[] = [];
  constructor(
    seed: number,
    salt: number,
    readonly bits: number,
  ) {
    if (bits < 4 || bits > 30) throw new RangeError('a permutation needs 4..30 bits');
    this.mask = (1 << bits) - 1;
    this.shift = Math.ceil(bits / 2);
    for (let round = 0; round < 3; round++) this.keys.push(hash(seed, salt, round, 0), hash(seed, salt, round, 1) | 1);
  }
  apply(x: number): number {
    const m = this.mask;
    for (let k = 0; k < this.keys.length; k += 2) {
      x = (x + this.keys[k]!) & m;
      x = Math.imul(x, this.keys[k + 1]!) & m;
      x ^= x >>> this.shift;
    }
    return x;
  }
}

export const DAY_MS = 86_400_000;

/** Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));

/** [year, month, day] of a day number (civil_from_days). */
export function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

function formatIsoDay(days: number): string {
  const [y, m, d] = civilFromDays(days);
  return `${y}-${pad2(m)}-${pad2(d)}`;
}

function formatCompactDay(days: number): string {
  const [y, m, d] = civilFromDays(days);
  return `${y}${pad2(m)}${pad2(d)}`;
}

/** Day strings are looked up in tables built on first use (1900..2100), computed outside that range. */
const TABLE_FIRST_DAY = daysFromCivil(1900, 1, 1);
const TABLE_DAYS = daysFromCivil(2100, 1, 1) - TABLE_FIRST_DAY;
let isoDays: string[] | null = null;
let compactDays: string[] | null = null;

/** YYYY-MM-DD of a day number */
export function isoDay(days: number): string {
  const k = days - TABLE_FIRST_DAY;
  if (k < 0 || k >= TABLE_DAYS) return formatIsoDay(days);
  isoDays ??= Array.from({ length: TABLE_DAYS }, (_, i) => formatIsoDay(TABLE_FIRST_DAY + i));
  return isoDays[k]!;
}

/** YYYYMMDD of a day number */
export function compactDay(days: number): string {
  const k = days - TABLE_FIRST_DAY;
  if (k < 0 || k >= TABLE_DAYS) return formatCompactDay(days);
  compactDays ??= Array.from({ length: TABLE_DAYS }, (_, i) => formatCompactDay(TABLE_FIRST_DAY + i));
  return compactDays[k]!;
}

const TWO = Array.from({ length: 60 }, (_, i) => pad2(i));
const THREE = Array.from({ length: 1000 }, (_, i) => (i < 10 ? `00${i}` : i < 100 ? `0${i}` : String(i)));

/** ISO 8601 with milliseconds, UTC, of a time in ms (as Date.prototype.toISOString, for years 0..9999). */
export function isoTimestamp(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  let rest = ms - days * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const sec = rest % 60;
  rest = (rest - sec) / 60;
  const min = rest % 60;
  const hour = (rest - min) / 60;
  return `${isoDay(days)}T${TWO[hour]}:${TWO[min]}:${TWO[sec]}.${THREE[milli]}Z`;
}

export function pad(n: number, width: number): string {
  if (width <= 15 && n >= 0 && n < 10 ** width) return String(10 ** width + n).slice(1);
  const s = String(n);
  return s.length >= width ? s : '0'.repeat(width - s.length) + s;
}
