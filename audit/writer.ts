import { desc } from 'drizzle-orm';
import type { Pool, PoolClient } from 'pg';
import { advisoryXactLock, arrayLiteral, pgPool, separatedList, Statement, type Db } from '../db/index.ts';
import { chainHashOf, entrySegments, entryTextsWith, GENESIS_HASH, type CanonicalJson, type EntrySegments, type SharedFields } from './chain.ts';
import { ensurePartitions, monthOf } from './months.ts';
import { auditEntries, entryTags } from './schema.ts';

/** What a caller records; the writer adds the sequence number, the time and the chain. */
export interface AuditRecord {
  clientId?: string | null;
  department?: string | null;
  operator?: string | null;
  itemCode?: string | null;
  caseId?: string | null;
  operation: string;
  resourceCode?: string | null;
  subject?: string | null;
  fields?: string[] | null;
  outcome: 'RETURNED' | 'NOT_FOUND' | 'REFUSED' | 'DONE';
  reason?: string | null;
  withholdBasis?: string | null;
  requestId?: string | null;
  /** as an object, or already as canonical JSON (CanonicalJson) */
  details?: Record<string, unknown> | CanonicalJson | null;
}

const AUDIT_LOCK = 'hub:audit';

interface Head {
  seq: number;
  hash: string;
  /** epoch ms of the head's time */
  at: number;
}

async function readHead(db: Db): Promise<Head> {
  const [head] = await db.select({ seq: auditEntries.seq, hash: auditEntries.hash, at: auditEntries.at }).from(auditEntries).orderBy(desc(auditEntries.seq)).limit(1);
  return head ? { seq: head.seq, hash: head.hash, at: head.at.getTime() } : { seq: 0, hash: GENESIS_HASH, at: 0 };
}

/** A batch chained after a head: its sequence numbers, its one time, its last hash and the statement's parameters. */
interface ChainedBatch {
  seqs: number[];
  at: string;
  lastHash: string;
  params: unknown[];
}

/**
 * A list of 信息项 as one text (unit separator between them), split again by string_to_array in the statement: a
 * 2-D array parameter cannot hold rows of different lengths, and a JSON list costs a subquery per row.
 */
function joinFields(fields: readonly string[]): string {
  // string_to_array could not give these back as they were hashed
  if (fields.some((f) => f === '' || f.includes('\u001f'))) throw new Error('an audited field name is empty or holds the unit separator');
  return fields.join('\u001f');
}

/**
 * The columns an entry shares with the others of its read (who, why, what, how it ended): a batch sends each distinct
 * combination once, as a "kind", and each entry the number of its kind. A read of 100 subjects is then a handful of
 * kinds and, per entry, its kind, subject, details and hash.
 */
const KIND_COLUMNS = 12;

/** The kind columns of an entry, in the statement's order. */
function kindOf(e: SharedFields): (string | null)[] {
  return [e.clientId, e.department, e.operator, e.itemCode, e.caseId, e.operation, e.resourceCode, e.fields ? joinFields(e.fields) : null, e.outcome, e.reason, e.withholdBasis, e.requestId];
}

/** What an entry shares with the others of its kind, and the batch's time. */
function sharedOf(r: AuditRecord, at: string): SharedFields {
  return {
    at,
    clientId: r.clientId ?? null,
    department: r.department ?? null,
    operator: r.operator ?? null,
    itemCode: r.itemCode ?? null,
    caseId: r.caseId ?? null,
    operation: r.operation,
    resourceCode: r.resourceCode ?? null,
    fields: r.fields ?? null,
    outcome: r.outcome,
    reason: r.reason ?? null,
    withholdBasis: r.withholdBasis ?? null,
    requestId: r.requestId ?? null,
  };
}

/** Whether two records share their kind columns (a read's records do, and usually their 信息项 list too). */
function sameShared(a: AuditRecord, b: AuditRecord): boolean {
  if (a.operation !== b.operation || a.outcome !== b.outcome) return false;
  if ((a.clientId ?? null) !== (b.clientId ?? null) || (a.department ?? null) !== (b.department ?? null) || (a.operator ?? null) !== (b.operator ?? null)) return false;
  if ((a.itemCode ?? null) !== (b.itemCode ?? null) || (a.caseId ?? null) !== (b.caseId ?? null) || (a.resourceCode ?? null) !== (b.resourceCode ?? null)) return false;
  if ((a.reason ?? null) !== (b.reason ?? null) || (a.withholdBasis ?? null) !== (b.withholdBasis ?? null) || (a.requestId ?? null) !== (b.requestId ?? null)) return false;
  const fa = a.fields ?? null;
  const fb = b.fields ?? null;
  if (fa === fb) return true;
  if (fa === null || fb === null || fa.length !== fb.length) return false;
  for (let k = 0; k < fa.length; k++) if (fa[k] !== fb[k]) return false;
  return true;
}

/**
 * Numbers and chains records after a head, straight into the statement's columns (no row objects); every
 * entry of a batch has the same time, never earlier than the head's (processes' clocks differ a little), so each
 * month's partition holds one contiguous run of the chain. A run of records of one kind shares its canonical
 * segments, so per entry only its number, subject and details are written out.
 */
function chain(head: Head, records: readonly AuditRecord[]): ChainedBatch {
  let seq = head.seq;
  let prev = head.hash;
  const at = new Date(Math.max(Date.now(), head.at)).toISOString();
  const n = records.length;
  const seqs: number[] = new Array<number>(n);
  const kindIx: number[] = new Array<number>(n);
  const subjects: (string | null)[] = new Array<string | null>(n);
  const details: (string | null)[] = new Array<string | null>(n);
  const hashes: string[] = new Array<string>(n);
  const kinds: (string | null)[][] = [];
  /** each kind's run tags, in the order of kinds */
  const kindTags: string[][] = [];
  const kindByKey = new Map<string, number>();
  let kind = 0;
  let segments: EntrySegments | undefined;
  // the batch's runs: consecutive entries of one client (or of none), and the kinds in each, for its tags
  const runFirst: number[] = [];
  const runLast: number[] = [];
  const runClient: (string | null)[] = [];
  const runKinds: number[][] = [];
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const client = r.clientId ?? null;
    // the entry before (number seq) was this client's: its run goes on
    if (i > 0 && runClient[runClient.length - 1] === client) runLast[runLast.length - 1] = seq + 1;
    else {
      runFirst.push(seq + 1);
      runLast.push(seq + 1);
      runClient.push(client);
      runKinds.push([]);
    }
    if (i === 0 || !sameShared(r, records[i - 1]!)) {
      const shared = sharedOf(r, at);
      segments = entrySegments(shared);
      const columns = kindOf(shared);
      const key = JSON.stringify(columns);
      let ix = kindByKey.get(key);
      if (ix === undefined) {
        kinds.push(columns);
        kindTags.push(entryTags(shared));
        kindByKey.set(key, (ix = kinds.length)); // 1-based, as WITH ORDINALITY counts
      }
      kind = ix;
      // a new run starts with a new client, so a new kind: each run hears of each of its kinds here
      const inRun = runKinds[runKinds.length - 1]!;
      if (!inRun.includes(ix)) inRun.push(ix);
    }
    const subject = r.subject ?? null;
    const texts = entryTextsWith(segments!, ++seq, subject, r.details ?? null);
    const hash = chainHashOf(prev, texts.canonical);
    kindIx[i] = kind;
    seqs[i] = seq;
    subjects[i] = subject;
    details[i] = texts.details;
    hashes[i] = hash;
    prev = hash;
  }
  const params: unknown[] = [head.seq, seq, at];
  for (let k = 0; k < KIND_COLUMNS; k++) params.push(arrayLiteral(kinds.map((columns) => columns[k]!)));
  // kind numbers need no quoting; details are JSON texts (or null, written as N, which no JSON text is) and hashes hex:
  // separated lists, nothing to escape, and split at a fraction of the array parser's cost (2,000 hashes: 0.25 ms
  // against 1.3 ms, a twentieth of the statement's time in the database)
  params.push(`{${kindIx.join(',')}}`, arrayLiteral(subjects), separatedList(details, 'N'), separatedList(hashes), head.hash);
  params.push(monthOf(new Date(at)).partition);
  const runTags = runKinds.map((ks) => arrayLiteral(ks.length === 1 ? kindTags[ks[0]! - 1]! : [...new Set(ks.flatMap((k) => kindTags[k - 1]!))]));
  params.push(`{${runFirst.join(',')}}`, `{${runLast.join(',')}}`, arrayLiteral(runClient), arrayLiteral(runTags));
  return { seqs, at, lastHash: prev, params };
}

/** The batch's kinds ($4 … $15), numbered 1, 2 … */
const KINDS = `kinds as (select * from unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[])
               with ordinality as k(client_id, department, operator, item_code, case_id, operation, resource_code, fields, outcome, reason, withhold_basis, request_id, ord))`;

/**
 * The batch's entries ($16 … $19) with their kinds' columns, every entry with the batch's one time. Sequence numbers
 * follow the head's ($1) one by one, and each entry's previous hash is the hash before it, the first's the head's
 * ($20): neither is sent per entry. (The hashes are split once, OFFSET 0 keeping the planner from copying the split
 * into each use, and zipped with themselves one place on; a window function would sort the batch's rows first.)
 */
const ENTRIES = `insert into audit_entries (seq, at, client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, reason, withhold_basis, request_id, details, prev_hash, hash)
   select $1::int8 + t.n, $3::timestamptz, k.client_id, k.department, k.operator, k.item_code, k.case_id, k.operation, k.resource_code, t.subject,
          string_to_array(k.fields, chr(31)), k.outcome, k.reason, k.withhold_basis, k.request_id, t.details, t.prev_hash, t.hash
   from (select string_to_array($19::text, chr(30)) as h offset 0) hs,
        unnest($16::int8[], $17::text[], string_to_array($18::text, chr(30), 'N')::jsonb[], hs.h, (array_prepend($20::text, hs.h))[1:cardinality(hs.h)])
        with ordinality as t(kind, subject, details, hash, prev_hash, n)
   join kinds k on k.ord = t.kind`;

/**
 * One statement whatever the batch size, with the batch's runs ($22 … $25: first and last seq, client, tags). It
 * claims the head the batch chains onto in `audit_batches`; a claim that
 * collides (another writer extended the log since), or a month without its partition yet ($21, its name), inserts
 * nothing and says which, rather than failing: inside a caller's transaction there is then no savepoint to roll back
 * to, and a pipelined batch tells a collision from an error by its result.
 */
// a data-modifying WITH runs to completion whether or not the query reads it: the entries are in iff the claim is
const APPEND = new Statement<{ partition_ok: boolean; claimed: number }>(
  'hub_audit_append',
  `with part as (select to_regclass($21::text) is not null as ok),
   claim as (insert into audit_batches (prev_seq, last_seq, at) select $1::int8, $2::int8, $3::timestamptz where (select ok from part) on conflict do nothing returning 1),
   ${KINDS},
   ins as (${ENTRIES} where exists (select 1 from claim)),
   runs as (insert into audit_runs (first_seq, last_seq, at, client_id, tags)
            select r.first_seq, r.last_seq, $3::timestamptz, r.client_id, r.tags::text[] from unnest($22::int8[], $23::int8[], $24::text[], $25::text[]) as r(first_seq, last_seq, client_id, tags)
            where exists (select 1 from claim))
   select (select ok from part) as partition_ok, (select count(*) from claim)::int8 as claimed`,
);

/** The batch appended, or why not: its claim was taken (chain again) or its month had no partition (made now). */
async function appended(db: Db, r: { partition_ok: boolean; claimed: number } | undefined, batch: ChainedBatch): Promise<boolean> {
  if (Number(r?.claimed) > 0) return true;
  if (r && !r.partition_ok) await ensurePartitions(db, new Date(batch.at));
  return false;
}

const MAX_ATTEMPTS = 20;
const headKeptMoving = () => new Error(`the audit log's head moved under ${MAX_ATTEMPTS} attempts in a row to append to it`);

/**
 * Appends records inside the caller's transaction, so an administrative act and its record commit together. The
 * batch claim keeps one chain across every process: a writer that chained onto a head another process has since
 * extended collides on that head's claim, and chains again from the new head (the claim is skipped rather than
 * failed, so no savepoint is needed).
 */
export async function appendInTransaction(tx: Db, records: readonly AuditRecord[]): Promise<number[]> {
  if (records.length === 0) return [];
  await advisoryXactLock(tx, AUDIT_LOCK); // administrative writers queue here rather than collide
  for (let attempt = 1; ; attempt++) {
    const batch = chain(await readHead(tx), records);
    // the read writer (it takes no lock) may have extended the log since the head was read: chained again
    if (await appended(tx, (await APPEND.run(tx, batch.params))[0], batch)) return batch.seqs;
    if (attempt >= MAX_ATTEMPTS) throw headKeptMoving();
  }
}

/**
 * A batch's callers grouped by client, each group in the order its first caller came: concurrent callers are
 * numbered in no particular order anyway, and a client's entries next to each other are one run (audit_runs) rather
 * than one each, with the kinds they share sent once. Callers of one client, or each of another, stay as they came.
 */
function byClient(callers: Pending[]): Pending[] {
  if (callers.length < 3) return callers;
  const groups = new Map<string | null, Pending[]>();
  for (const p of callers) {
    const client = p.records[0]!.clientId ?? null;
    const group = groups.get(client);
    if (group) group.push(p);
    else groups.set(client, [p]);
  }
  return groups.size === 1 || groups.size === callers.length ? callers : [...groups.values()].flat();
}

/** The records of one caller (a read of up to 100 subjects is one), answered together. */
interface Pending {
  records: readonly AuditRecord[];
  resolve: (seqs: number[]) => void;
  reject: (error: unknown) => void;
  /** batches of its own whose claim was taken (another process extended the log) */
  attempts: number;
}

/**
 * Batches in flight at once on PostgreSQL: the next ones are inserted while the one before commits. Four rather than
 * two: batch lookups measured 10% more subjects a second (alternating runs 31,080/27,300 at two, 34,380/30,411 at four),
 * the inserts of two batches overlapping on the database's two backends while the hub builds the next.
 */
const PIPELINE_DEPTH = 4;
/**
 * Records that make a batch worth sending behind one in flight; fewer wait for it to end and go in one batch (a
 * transaction per few records would cost more than the wait saves).
 */
const PIPELINE_AT = 256;

/**
 * Group commit for reads: every record waits for its own durable commit (fail closed: the caller returns data only
 * after `append` resolves), but records that arrive while a commit is in flight share the next one, so thousands of
 * entries a second cost a few transactions. No timer adds latency when the log is idle.
 *
 * A batch with nothing ahead of it is one autocommitted statement. Under load, on PostgreSQL, up to PIPELINE_DEPTH are
 * in flight: batch k+1, chained onto batch k's last hash, is inserted in its own transaction while k commits, and its
 * COMMIT is sent only once k's has succeeded. Commits land in chain order, so the durable log is always a gap-free
 * prefix; if k does not commit (another process extended the log: its claim was taken), every batch behind it rolls
 * back too and all are chained again from the head as it then is. On PGlite (one connection) batches are written one
 * after the other.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  /** the last entry this writer wrote (or is writing): the next batch chains onto it without reading the log first */
  private head: Head | null = null;
  private readonly pool: Pool | null;
  /** set while the flush waits on a batch in flight with room for another: new records wake it */
  private wake: (() => void) | null = null;
  /** records waiting in the queue */
  private queued = 0;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 2000,
  ) {
    this.pool = pgPool(db);
  }

  async append(record: AuditRecord): Promise<number> {
    return (await this.appendMany([record]))[0]!;
  }

  /** Records that share one commit (a batch never splits them), answered in order once it is durable. */
  appendMany(records: readonly AuditRecord[]): Promise<number[]> {
    if (records.length === 0) return Promise.resolve([]);
    return new Promise<number[]>((resolve, reject) => {
      this.queue.push({ records, resolve, reject, attempts: 0 });
      this.queued += records.length;
      if (!this.flushing) this.flushing = this.flush();
      else if (this.queued >= PIPELINE_AT) this.wake?.();
    });
  }

  /** Callers whole, up to maxBatch records (a caller with more goes alone). */
  private take(): Pending[] {
    let n = 0;
    let size = 0;
    while (n < this.queue.length && (n === 0 || size + this.queue[n]!.records.length <= this.maxBatch)) size += this.queue[n++]!.records.length;
    this.queued -= size;
    return byClient(this.queue.splice(0, n));
  }

  private async flush(): Promise<void> {
    // yield once so that records appended in the same tick join this batch
    await new Promise<void>((r) => setImmediate(r));
    /** batches not settled yet, in chain order: each resolves to whether it committed */
    const inFlight: Promise<boolean>[] = [];
    const depth = this.pool ? PIPELINE_DEPTH : 1;
    while (this.queue.length > 0 || inFlight.length > 0) {
      // no room for another, or a failure (the head is then read afresh, once nothing is in flight any more)
      if (inFlight.length >= depth || (this.head === null && inFlight.length > 0)) {
        await inFlight.shift();
        continue;
      }
      if (this.queue.length === 0) {
        // a batch in flight and room for the next: whichever comes first, its end or enough new records
        const settled = await Promise.race([inFlight[0]!.then(() => true), new Promise<false>((r) => (this.wake = () => r(false)))]);
        this.wake = null;
        if (settled) inFlight.shift();
        else await new Promise<void>((r) => setImmediate(r)); // records of the same tick join them
        continue;
      }
      const callers = this.take();
      let batch: ChainedBatch;
      try {
        batch = chain(this.head ?? (await readHead(this.db)), callers.length === 1 ? callers[0]!.records : callers.flatMap((p) => p.records));
      } catch (error) {
        for (const p of callers) p.reject(error);
        continue;
      }
      this.head = { seq: batch.seqs.at(-1)!, hash: batch.lastHash, at: Date.parse(batch.at) };
      // alone, one autocommitted statement; behind a batch still in flight, a transaction that commits after it
      const ahead = inFlight.at(-1);
      inFlight.push(this.pool && ahead ? this.pipelined(this.pool, callers, batch, ahead) : this.single(callers, batch));
    }
    this.flushing = null;
  }

  /** One autocommitted statement (one round trip, durable on return). */
  private async single(callers: Pending[], batch: ChainedBatch): Promise<boolean> {
    try {
      if (!(await appended(this.db, (await APPEND.run(this.db, batch.params))[0], batch))) return this.chainAgain(callers);
      this.answer(callers, batch);
      return true;
    } catch (error) {
      return this.fail(callers, error);
    }
  }

  /** Inserted in its own transaction now, committed once the batch it chains onto (`ahead`) has committed. */
  private async pipelined(pool: Pool, callers: Pending[], batch: ChainedBatch, ahead: Promise<boolean>): Promise<boolean> {
    let client: PoolClient | undefined;
    let open = false;
    let broken = false;
    try {
      client = await pool.connect();
      await client.query('begin');
      open = true;
      const [r] = await APPEND.runOn(client, batch.params);
      const committedAhead = await ahead;
      open = false;
      if (!committedAhead) {
        // chained onto a batch that did not commit: chained again, from the head as it then is (no attempt of its own)
        await client.query('rollback');
        this.head = null;
        this.requeue(callers);
        return false;
      }
      if (!(await appended(this.db, r, batch))) {
        await client.query('rollback');
        return this.chainAgain(callers);
      }
      await client.query('commit');
      this.answer(callers, batch);
      return true;
    } catch (error) {
      if (open) await client!.query('rollback').catch(() => (broken = true));
      await ahead; // a failure is acted on in chain order
      return this.fail(callers, error);
    } finally {
      client?.release(broken);
    }
  }

  private answer(callers: Pending[], batch: ChainedBatch): void {
    let offset = 0;
    for (const p of callers) {
      p.resolve(batch.seqs.slice(offset, offset + p.records.length));
      offset += p.records.length;
    }
  }

  /** Its claim was taken or its month was missing: the callers are chained again from the head as it now is. */
  private chainAgain(callers: Pending[]): false {
    this.head = null;
    const again: Pending[] = [];
    for (const p of callers) {
      if (++p.attempts < MAX_ATTEMPTS) again.push(p);
      else p.reject(headKeptMoving());
    }
    this.requeue(again);
    return false;
  }

  /** The database refused the batch: its callers fail (their data is not returned). */
  private fail(callers: Pending[], error: unknown): false {
    this.head = null;
    for (const p of callers) p.reject(error);
    return false;
  }

  private requeue(callers: Pending[]): void {
    this.queue.unshift(...callers);
    for (const p of callers) this.queued += p.records.length;
  }

  /** Waits for every record appended so far. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
