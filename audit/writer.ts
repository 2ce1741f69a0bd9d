import { desc } from 'drizzle-orm';
import { advisoryXactLock, type Db } from '../db/index.ts';
import { chainHash, GENESIS_HASH, type ChainedEntry } from './chain.ts';
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

/**
 * Appends records inside a transaction: takes the log's lock (one chain across every process), reads the head and
 * inserts the chained entries. Used directly by administrative acts, so the act and its record commit together.
 */
export async function appendInTransaction(tx: Db, records: readonly AuditRecord[]): Promise<number[]> {
  if (records.length === 0) return [];
  await advisoryXactLock(tx, AUDIT_LOCK);
  const [head] = await tx.select({ seq: auditEntries.seq, hash: auditEntries.hash }).from(auditEntries).orderBy(desc(auditEntries.seq)).limit(1);
  let seq = head?.seq ?? 0;
  let prev = head?.hash ?? GENESIS_HASH;
  const at = new Date().toISOString();
  const rows = records.map((r) => {
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
    const row = { ...e, at: new Date(at), prevHash: prev, hash };
    prev = hash;
    return row;
  });
  // at most ~8,000 parameters per statement: chunks of 400 entries
  for (let i = 0; i < rows.length; i += 400) await tx.insert(auditEntries).values(rows.slice(i, i + 400));
  return rows.map((r) => r.seq);
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
        const seqs = await this.db.transaction((tx) => appendInTransaction(tx, batch.map((p) => p.record)));
        batch.forEach((p, i) => p.resolve(seqs[i]!));
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
    this.flushing = null;
  }

  /** Waits for every record appended so far. */
  async drain(): Promise<void> {
    while (this.flushing) await this.flushing;
  }
}
