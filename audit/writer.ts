import { desc } from 'drizzle-orm';
import { isUniqueViolation, sqlState } from '../core/errors.ts';
import { advisoryXactLock, Statement, type Db } from '../db/index.ts';
import { chainHash, GENESIS_HASH, type ChainedEntry } from './chain.ts';
import { ensurePartitions } from './months.ts';
import { auditEntries } from './schema.ts';

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
  details?: Record<string, unknown> | null;
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

/**
 * Numbers and chains records after a head; every entry of a batch has the same time, never earlier than the head's
 * (processes' clocks differ a little), so each month's partition holds one contiguous run of the chain.
 */
function chain(head: Head, records: readonly AuditRecord[]) {
  let seq = head.seq;
  let prev = head.hash;
  const at = new Date(Math.max(Date.now(), head.at)).toISOString();
  return records.map((r) => {
    const e: ChainedEntry = {
      seq: ++seq,
      at,
      clientId: r.clientId ?? null,
      department: r.department ?? null,
      operator: r.operator ?? null,
      itemCode: r.itemCode ?? null,
      caseId: r.caseId ?? null,
      operation: r.operation,
      resourceCode: r.resourceCode ?? null,
      subject: r.subject ?? null,
      fields: r.fields ?? null,
      outcome: r.outcome,
      reason: r.reason ?? null,
      withholdBasis: r.withholdBasis ?? null,
      requestId: r.requestId ?? null,
      details: r.details ?? null,
    };
    const hash = chainHash(prev, e);
    const row = { ...e, prevHash: prev, hash };
    prev = hash;
    return row;
  });
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

const NEEDS_ESCAPE = /["\\]/;

/** A PostgreSQL array literal of texts, each quoted (NULL for null): what the driver would write, without its per-value work. */
function textArrayLiteral(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ',';
    out += v === null || v === undefined ? 'NULL' : `"${NEEDS_ESCAPE.test(v) ? v.replace(/["\\]/g, '\\$&') : v}"`;
  }
  return `${out}}`;
}

/**
 * One statement of 17 array parameters whatever the batch size; every entry of a batch has the same time, given
 * once. The same statement claims the head the batch chains onto in `audit_batches`: a writer that chained onto a
 * head another process has since extended collides there (23505) and chains again.
 */
const APPEND = new Statement(
  'hub_audit_append',
  `with claim as (insert into audit_batches (prev_seq, last_seq, at) values ($1, $2, $3::timestamptz))
   insert into audit_entries (seq, at, client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, reason, withhold_basis, request_id, details, prev_hash, hash)
   select seq, $3::timestamptz, client_id, department, operator, item_code, case_id, operation, resource_code, subject,
          string_to_array(fields, chr(31)), outcome, reason, withhold_basis, request_id, details, prev_hash, hash
   from unnest($4::int8[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
               $14::text[], $15::text[], $16::text[], $17::text[], $18::jsonb[], $19::text[], $20::text[])
     as t(seq, client_id, department, operator, item_code, case_id, operation, resource_code, subject, fields, outcome, reason, withhold_basis, request_id, details, prev_hash, hash)`,
);

async function insertRows(db: Db, rows: ReturnType<typeof chain>): Promise<void> {
  const col = (f: (r: (typeof rows)[number]) => string | null) => textArrayLiteral(rows.map(f));
  const first = rows[0]!;
  const last = rows.at(-1)!;
  await APPEND.run(db, [
    first.seq - 1,
    last.seq,
    first.at,
    `{${rows.map((r) => r.seq).join(',')}}`,
    col((r) => r.clientId),
    col((r) => r.department),
    col((r) => r.operator),
    col((r) => r.itemCode),
    col((r) => r.caseId),
    col((r) => r.operation),
    col((r) => r.resourceCode),
    col((r) => r.subject),
    col((r) => (r.fields ? joinFields(r.fields) : null)),
    col((r) => r.outcome),
    col((r) => r.reason),
    col((r) => r.withholdBasis),
    col((r) => r.requestId),
    col((r) => (r.details ? JSON.stringify(r.details) : null)),
    col((r) => r.prevHash),
    col((r) => r.hash),
  ]);
}

const MAX_ATTEMPTS = 20;

/** 23514 from a partitioned table: no partition holds this time (the monthly job did not run); create it and retry. */
async function repairedPartition(db: Db, error: unknown, at: string): Promise<boolean> {
  if (sqlState(error) !== '23514') return false;
  return (await ensurePartitions(db, new Date(at))).length > 0;
}

/**
 * Appends records inside the caller's transaction, so an administrative act and its record commit together. The
 * batch claim keeps one chain across every process: a writer that chained onto a head another process has since
 * extended collides on that head's claim, and chains again from the new head (in a savepoint here).
 */
export async function appendInTransaction(tx: Db, records: readonly AuditRecord[]): Promise<number[]> {
  if (records.length === 0) return [];
  await advisoryXactLock(tx, AUDIT_LOCK); // administrative writers queue here rather than collide
  for (let attempt = 1; ; attempt++) {
    const rows = chain(await readHead(tx), records);
    try {
      await tx.transaction((sp) => insertRows(sp, rows));
      return rows.map((r) => r.seq);
    } catch (error) {
      if (attempt >= MAX_ATTEMPTS || !(isUniqueViolation(error) || (await repairedPartition(tx, error, rows[0]!.at)))) throw error;
    }
  }
}

interface Pending {
  record: AuditRecord;
  resolve: (seq: number) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for reads: every record waits for its own durable commit (fail closed: the caller returns data only
 * after `append` resolves), but records that arrive while a commit is in flight share the next one, so thousands of
 * entries a second cost a few transactions. No timer adds latency when the log is idle.
 */
export class AuditWriter {
  private queue: Pending[] = [];
  private flushing: Promise<void> | null = null;
  /** the last entry this writer wrote: the next batch chains onto it without reading the log first */
  private head: Head | null = null;

  constructor(
    private readonly db: Db,
    private readonly maxBatch = 2000,
  ) {}

  append(record: AuditRecord): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (!this.flushing) this.flushing = this.flush();
    });
  }

  appendMany(records: readonly AuditRecord[]): Promise<number[]> {
    return Promise.all(records.map((r) => this.append(r)));
  }

  private async flush(): Promise<void> {
    // yield once so that records appended in the same tick join this batch
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        const seqs = await this.write(batch.map((p) => p.record));
        batch.forEach((p, i) => p.resolve(seqs[i]!));
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.flushing = null;
  }

  /**
   * One autocommitted statement per batch (one round trip, durable on return). If another process extended the log
   * since, the insert collides on the head's claim, and the batch is chained again from the new head.
   */
  private async write(records: AuditRecord[]): Promise<number[]> {
    for (let attempt = 1; ; attempt++) {
      const rows = chain(this.head ?? (await readHead(this.db)), records);
      try {
        await insertRows(this.db, rows);
        this.head = { seq: rows.at(-1)!.seq, hash: rows.at(-1)!.hash, at: Date.parse(rows[0]!.at) };
        return rows.map((r) => r.seq);
      } catch (error) {
        this.head = null;
        if (attempt >= MAX_ATTEMPTS || !(isUniqueViolation(error) || (await repairedPartition(this.db, error, rows[0]!.at)))) throw error;
      }
    }
  }

  /** Waits for every record appended so far. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
