/**
 * A department source system's data as it stands: `records` records generated from the seed, a generation per
 * record (Uint16Array) and, for each generation after the first, the sorted list of the indexes it changed.
 *
 * Time order: in generation 0 record i has gxsj T0 + floor(i / 5) ms; the changes of generation g are stamped
 * T0 + g · 30 days + floor(rank / 5) ms, rank being the order of the index among that generation's changes. Groups
 * of five records share a timestamp, so only (gxsj, id) orders them. A record is served only in its current version,
 * at its current gxsj: the entries of earlier generations that it left are skipped.
 *
 * Cursor (`page`):
 * - neither updatedSince nor afterId: from the beginning;
 * - updatedSince only: records with gxsj > updatedSince;
 * - updatedSince and afterId: records with (gxsj, id) > (updatedSince, afterId);
 * - afterId alone is refused.
 * `next` is the (gxsj, id) of the page's last record when more records follow, else null.
 */
import {
  changesIn,
  createGenerator,
  GENERATION_SPAN_MS,
  ID_PREFIX,
  indexOfId,
  invalidReason,
  MAX_RECORDS,
  RECORDS_PER_MS,
  recordId,
  T0,
  type InvalidReason,
  type RecordGenerator,
  type RecordOf,
  type SourceKind,
} from './records.ts';

import { isoTimestamp } from './hash.ts';

export const DEFAULT_SEED = 1;
export const MAX_PAGE = 5000;
const MAX_GENERATION = 65535;

export interface SourceOptions<K extends SourceKind = SourceKind> {
  kind: K;
  records: number;
  seed?: number;
  /**
   * Legal representatives and credit subjects that are people are population records with an index below this
   * (default: `records`); start the population simulator with at least as many records, and the same seed, for
   * them to join.
   */
  linkPeople?: number;
  /** Credit subjects that are organisations are legal_person records with an index below this (default: `records`). */
  linkOrgs?: number;
}

export interface PageCursor {
  /** ISO 8601 */
  updatedSince?: string;
  afterId?: string;
}

export interface Page<R> {
  records: R[];
  next: { updatedSince: string; afterId: string } | null;
}

/** A cursor the source cannot read (→ HTTP 400). */
export class CursorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CursorError';
  }
}

let lastMs = Number.NaN;
let lastIso = '';
/** ISO 8601 with milliseconds, UTC (consecutive records share timestamps: the last one is kept). */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = isoTimestamp(ms);
  }
  return lastIso;
}

export class SourceData<K extends SourceKind = SourceKind> {
  readonly kind: K;
  readonly seed: number;
  readonly recordCount: number;
  private readonly gen: Uint16Array;
  /** changes[g] (g ≥ 1): the indexes that changed in generation g, ascending (their rank order). */
  private readonly changes: Uint32Array[] = [new Uint32Array(0)];
  private readonly generator: RecordGenerator<K>;

  constructor(options: SourceOptions<K>) {
    const { kind, records } = options;
    if (!Number.isInteger(records) || records < 1 || records > MAX_RECORDS) throw new RangeError(`records must be an integer in 1..${MAX_RECORDS}`);
    const linkPeople = options.linkPeople ?? records;
    const linkOrgs = options.linkOrgs ?? records;
    for (const [name, n] of [['linkPeople', linkPeople], ['linkOrgs', linkOrgs]] as const)
      if (!Number.isInteger(n) || n < 1 || n > MAX_RECORDS) throw new RangeError(`${name} must be an integer in 1..${MAX_RECORDS}`);
    this.kind = kind;
    this.seed = (options.seed ?? DEFAULT_SEED) >>> 0;
    this.recordCount = records;
    this.gen = new Uint16Array(records);
    this.generator = createGenerator(kind, { seed: this.seed, linkPeople, linkOrgs });
  }

  /** The current generation (0 until the first advance). */
  get generation(): number {
    return this.changes.length - 1;
  }

  /** The generation of record i's current version. */
  generationOf(index: number): number {
    this.check(index);
    return this.gen[index]!;
  }

  /** The indexes that changed in generation g (≥ 1), ascending; some may have changed again since. */
  changedIn(generation: number): readonly number[] {
    return Array.from(this.changes[generation] ?? []);
  }

  idOf(index: number): string {
    return recordId(this.kind, index);
  }

  /** Why record i is invalid as currently held, or null. */
  invalidReason(index: number): InvalidReason | null {
    return invalidReason(this.kind, this.seed, index, this.generationOf(index));
  }

  /** The update time (ms) of record i's current version. */
  timeOf(index: number): number {
    const g = this.generationOf(index);
    if (g === 0) return T0 + Math.floor(index / RECORDS_PER_MS);
    const list = this.changes[g]!;
    let lo = 0;
    let hi = list.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (list[mid]! < index) lo = mid + 1;
      else hi = mid;
    }
    return T0 + g * GENERATION_SPAN_MS + Math.floor(lo / RECORDS_PER_MS);
  }

  /** Record i as the source holds it now. */
  current(index: number): RecordOf[K] {
    return this.generator.record(index, this.generationOf(index), isoTime(this.timeOf(index)));
  }

  /**
   * Starts generation g + 1: the records chosen by a hash of (seed, index, g + 1), a fraction `share` of them,
   * change and are stamped in that generation's time range.
   */
  advance(share: number): { generation: number; changed: number } {
    if (!(share >= 0 && share <= 1)) throw new RangeError('share must be in 0..1');
    const g = this.changes.length;
    if (g > MAX_GENERATION) throw new RangeError('too many generations');
    const picked = new Uint32Array(this.recordCount);
    let n = 0;
    for (let i = 0; i < this.recordCount; i++) {
      if (changesIn(this.kind, this.seed, i, g, share)) {
        picked[n++] = i;
        this.gen[i] = g;
      }
    }
    this.changes.push(picked.slice(0, n));
    return { generation: g, changed: n };
  }

  /** Reads a cursor into (time ms, index) bounds; throws CursorError when it cannot. */
  parseCursor(cursor: PageCursor): { since: number | null; after: number | null } {
    let since: number | null = null;
    let after: number | null = null;
    if (cursor.updatedSince !== undefined && cursor.updatedSince !== '') {
      if (!/^\d{4}-\d{2}-\d{2}T/.test(cursor.updatedSince)) throw new CursorError('updatedSince must be an ISO 8601 date-time');
      since = Date.parse(cursor.updatedSince);
      if (Number.isNaN(since)) throw new CursorError('updatedSince must be an ISO 8601 date-time');
    }
    if (cursor.afterId !== undefined && cursor.afterId !== '') {
      if (since === null) throw new CursorError('afterId needs updatedSince');
      after = indexOfId(this.kind, cursor.afterId);
      if (after === null) throw new CursorError(`afterId must be an id of this source (${ID_PREFIX[this.kind]}0000001)`);
    }
    return { since, after };
  }

  /** The current records after the cursor in (gxsj, id) order, at most `limit`. */
  page(cursor: PageCursor, limit: number): Page<RecordOf[K]> {
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new CursorError(`limit must be an integer in 1..${MAX_PAGE}`);
    const { since, after } = this.parseCursor(cursor);
    const records: RecordOf[K][] = [];
    let more = false;
    this.scan(since, after, limit + 1, (index, generation, time) => {
      if (records.length === limit) more = true;
      else records.push(this.generator.record(index, generation, isoTime(time)));
    });
    const last = records.at(-1);
    return { records, next: more && last ? { updatedSince: last.gxsj, afterId: last.id } : null };
  }

  /** Every current record in (gxsj, id) order, in batches. */
  *batches(size = 2000): Generator<RecordOf[K][]> {
    let cursor: PageCursor = {};
    for (;;) {
      const page = this.page(cursor, Math.min(size, MAX_PAGE));
      if (page.records.length) yield page.records;
      if (!page.next) return;
      cursor = page.next;
    }
  }

  /**
   * Calls `emit` for up to `max` current records after (since, after) in (gxsj, index) order. Generations are
   * disjoint in time and each is ordered by (time, index), so it walks them one after the other.
   */
  private scan(since: number | null, after: number | null, max: number, emit: (index: number, generation: number, time: number) => void): void {
    let emitted = 0;
    for (let g = 0; g < this.changes.length && emitted < max; g++) {
      const list = g === 0 ? null : this.changes[g]!;
      const len = list ? list.length : this.recordCount;
      const base = T0 + g * GENERATION_SPAN_MS;
      let r = 0;
      if (since !== null) {
        const k = since - base;
        if (k >= 0) {
          const lo = Math.floor(k) * RECORDS_PER_MS;
          if (lo >= len) continue;
          // since may fall inside a millisecond (sub-ms precision is not produced here, but be exact)
          if (after === null || !Number.isInteger(k)) r = lo + RECORDS_PER_MS;
          else {
            const end = Math.min(lo + RECORDS_PER_MS, len);
            r = lo;
            while (r < end && (list ? list[r]! : r) <= after) r++;
            if (r === end) r = lo + RECORDS_PER_MS;
          }
        }
      }
      for (; r < len && emitted < max; r++) {
        const index = list ? list[r]! : r;
        if (this.gen[index] !== g) continue;
        emit(index, g, base + Math.floor(r / RECORDS_PER_MS));
        emitted++;
      }
    }
  }

  private check(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.recordCount) throw new RangeError(`no record ${index}`);
  }
}

/** Why record `index` of a given generation is invalid (seed DEFAULT_SEED unless given), or null. */
export function recordInvalidReason(kind: SourceKind, index: number, generation: number, seed = DEFAULT_SEED): InvalidReason | null {
  return invalidReason(kind, seed >>> 0, index, generation);
}

/** Whether record `index` is invalid in that generation (only generation 0 holds invalid records). */
export function isInvalid(kind: SourceKind, index: number, generation: number, seed = DEFAULT_SEED): boolean {
  return recordInvalidReason(kind, index, generation, seed) !== null;
}
