import os from 'node:os';
import { and, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { notFound, HubError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { rows, type Database, type Db } from '../db/index.ts';
import { upsertBaseRecords, type IncomingRecord } from '../basedata/store.ts';
import { SourceError, type Cursor, type SourcePage } from './adapters.ts';
import { RecordProblem, applyMapping, toIncoming, type Mapping, type QuarantineReason } from './records.ts';
import { adapterFor, getConnector, type Connector } from './registry.ts';
import { connectorState, quarantine, syncRuns } from './schema.ts';

export type SyncRun = typeof syncRuns.$inferSelect;

export interface SyncProgress {
  fetched: number;
  inserted: number;
  updated: number;
  unchanged: number;
  quarantined: Record<string, number>;
  batches: number;
}

export interface SyncReport extends SyncProgress {
  runId: string | null;
  connectorId: string;
  mode: 'INCREMENTAL' | 'FULL';
  status: 'SUCCEEDED' | 'FAILED' | 'SKIPPED';
  error: string | null;
  durationMs: number;
}

export interface SyncOptions {
  full?: boolean;
  trigger?: string;
  signal?: AbortSignal;
  pageSize?: number;
  /** retries of one page: attempts and exponential backoff (with jitter) */
  retry?: { attempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** the circuit opens after `threshold` consecutive failed requests, and stays open for `cooldownMs` */
  breaker?: { threshold?: number; cooldownMs?: number };
  onProgress?: (p: SyncProgress) => void;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

const WORKER = `${os.hostname()}:${process.pid}`;
/** PGlite has one session, so its advisory locks are re-entrant: this set stops a second run in the same process. */
const runningHere = new Set<string>();

class RunFailure extends Error {}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
  });

/**
 * One sync of one connector. Never two at once: a session-level advisory lock, which PostgreSQL releases the moment
 * the holding process dies, so a killed worker's connector is free for the next one without waiting for a lease.
 * Each page is validated and committed in one transaction together with the checkpoint and the run's counters, so
 * a crash resumes after the last committed batch with nothing lost and nothing duplicated.
 */
export async function runSync(database: Database, connectorId: string, options: SyncOptions = {}): Promise<SyncReport> {
  const started = Date.now();
  const connector = await getConnector(database.db, connectorId);
  if (!connector) throw notFound(`connector ${connectorId}`);
  if (!connector.enabled) throw new HubError('CONFLICT', `connector ${connectorId} is disabled`);
  const mode = options.full ? 'FULL' : 'INCREMENTAL';
  const skipped = (): SyncReport => ({ runId: null, connectorId, mode, status: 'SKIPPED', error: 'ALREADY_RUNNING: another run of this connector is in progress', durationMs: Date.now() - started, fetched: 0, inserted: 0, updated: 0, unchanged: 0, quarantined: {}, batches: 0 });
  if (runningHere.has(connectorId)) return skipped();
  runningHere.add(connectorId);
  try {
    return await database.session(async (session) => {
      const [{ locked } = { locked: false }] = await rows<{ locked: boolean }>(session, sql`select pg_try_advisory_lock(hashtext(${`hub:sync:${connectorId}`})) as locked`);
      if (!locked) return skipped();
      try {
        return await runLocked(database.db, connector, mode, started, options);
      } finally {
        await session.execute(sql`select pg_advisory_unlock(hashtext(${`hub:sync:${connectorId}`}))`);
      }
    });
  } finally {
    runningHere.delete(connectorId);
  }
}

async function runLocked(db: Db, connector: Connector, mode: 'INCREMENTAL' | 'FULL', started: number, options: SyncOptions): Promise<SyncReport> {
  const id = connector.id;
  const log = options.logger?.child({ connector: id });
  const retry = { attempts: 4, baseDelayMs: 500, maxDelayMs: 15_000, ...options.retry };
  const breaker = { threshold: 5, cooldownMs: 5 * 60_000, ...options.breaker };
  const pageSize = options.pageSize ?? (Number.isInteger(connector.config.pageSize) ? (connector.config.pageSize as number) : 2000);
  const signal = options.signal ?? new AbortController().signal;

  // A run left RUNNING by a process that died holds no lock any more: close it.
  await db
    .update(syncRuns)
    .set({ status: 'FAILED', finishedAt: sql`now()`, error: 'ABANDONED: the process running it stopped; its last committed batch is the checkpoint' })
    .where(and(eq(syncRuns.connectorId, id), eq(syncRuns.status, 'RUNNING')));
  await db.insert(connectorState).values({ connectorId: id }).onConflictDoNothing();
  const [state] = await db.select().from(connectorState).where(eq(connectorState.connectorId, id));
  let cursor: Cursor | null = mode === 'FULL' ? null : (state?.cursor ?? null);
  const [run] = await db.insert(syncRuns).values({ connectorId: id, mode, status: 'RUNNING', trigger: options.trigger ?? 'manual', worker: WORKER, cursorStart: cursor }).returning();
  const runId = run!.id;
  const progress: SyncProgress = { fetched: 0, inserted: 0, updated: 0, unchanged: 0, quarantined: {}, batches: 0 };
  const finish = async (status: 'SUCCEEDED' | 'FAILED', error: string | null): Promise<SyncReport> => {
    await db.update(syncRuns).set({ status, error, finishedAt: sql`now()` }).where(eq(syncRuns.id, runId));
    log?.info({ runId, status, error, ...progress }, 'sync finished');
    return { runId, connectorId: id, mode, status, error, durationMs: Date.now() - started, ...progress };
  };

  if (state?.circuit === 'OPEN' && state.circuitOpenedAt && Date.now() - state.circuitOpenedAt.getTime() < breaker.cooldownMs) {
    return finish('FAILED', `CIRCUIT_OPEN: the source failed ${state.consecutiveFailures} times in a row; next try after ${new Date(state.circuitOpenedAt.getTime() + breaker.cooldownMs).toISOString()}`);
  }

  let failures = state?.consecutiveFailures ?? 0;
  // The source ids in open quarantine (about 1% of a source): only these can be resolved by a good record, so a
  // batch does not probe the quarantine for each of its records.
  const openQuarantine = new Set(
    (await db.select({ sourceId: quarantine.sourceId }).from(quarantine).where(and(eq(quarantine.connectorId, id), isNull(quarantine.resolvedAt)))).map((q) => q.sourceId),
  );
  const adapter = adapterFor(connector, options.env);
  const mapping = connector.mapping as Mapping;
  try {
    /** One page with retries and backoff; consecutive failures feed the circuit breaker. */
    const fetchPage = async (from: Cursor | null): Promise<SourcePage> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const page = await adapter.fetchPage(from, { pageSize, signal });
          failures = 0;
          return page;
        } catch (error) {
          if (signal.aborted) throw new RunFailure('INTERRUPTED: the worker is shutting down; the run resumes from its last committed batch');
          const message = error instanceof Error ? error.message : String(error);
          failures++;
          const retryable = error instanceof SourceError && error.retryable;
          if (failures >= breaker.threshold) {
            await db.update(connectorState).set({ circuit: 'OPEN', circuitOpenedAt: sql`now()`, consecutiveFailures: failures, updatedAt: sql`now()` }).where(eq(connectorState.connectorId, id));
            throw new RunFailure(`CIRCUIT_OPEN after ${failures} consecutive failures: ${message}`);
          }
          if (!retryable || attempt >= retry.attempts) {
            await db.update(connectorState).set({ consecutiveFailures: failures, updatedAt: sql`now()` }).where(eq(connectorState.connectorId, id));
            throw new RunFailure(`SOURCE_FAILED after ${attempt} attempt(s): ${message}`);
          }
          const delay = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
          log?.warn({ attempt, delay: Math.round(delay), error: message }, 'source request failed; retrying');
          await sleep(delay, signal);
        }
      }
    };
    // The next page is fetched while this one is validated and committed; its cursor comes from this page alone.
    let pending: Promise<SourcePage> | null = fetchPage(cursor);
    while (pending) {
      const page: SourcePage = await pending;
      pending = null;
      if (signal.aborted) throw new RunFailure('INTERRUPTED: the worker is shutting down; the run resumes from its last committed batch');
      if (page.next) {
        pending = fetchPage(page.next);
        pending.catch(() => undefined); // observed when awaited; a failure after an abort is not unhandled
      }
      const good: IncomingRecord[] = [];
      const bad: { sourceId: string; reason: QuarantineReason; detail: string; record: Record<string, unknown> }[] = [];
      const idField = typeof connector.config.idField === 'string' ? connector.config.idField : 'id';
      page.records.forEach((raw, i) => {
        const record = raw && typeof raw === 'object' && !Array.isArray(raw) ? raw : { value: raw };
        const sourceId = String(record[idField] ?? `${progress.fetched + i}`);
        try {
          if (record.__malformed !== undefined || raw !== record) throw new RecordProblem('MALFORMED', 'the source record is not a JSON object');
          good.push(toIncoming(connector.kind, applyMapping(record, mapping), sourceId, { authoritative: connector.authoritative }));
        } catch (error) {
          if (!(error instanceof RecordProblem)) throw error;
          bad.push({ sourceId, reason: error.reason, detail: error.message, record });
        }
      });
      const nextCursor = page.next ?? page.resume ?? cursor;
      const retrievedAt = new Date();
      const counts = await db.transaction(async (tx) => {
        const c = await upsertBaseRecords(tx, connector.kind, id, retrievedAt, good);
        if (bad.length) {
          await tx
            .insert(quarantine)
            .values(bad.map((b) => ({ connectorId: id, ...b })))
            .onConflictDoUpdate({
              target: [quarantine.connectorId, quarantine.sourceId],
              set: {
                reason: sql`excluded.reason`,
                detail: sql`excluded.detail`,
                record: sql`excluded.record`,
                lastSeenAt: sql`now()`,
                attempts: sql`${quarantine.attempts} + 1`,
                resolvedAt: null,
              },
            });
        }
        const fixed = good.filter((g) => openQuarantine.has(g.sourceId)).map((g) => g.sourceId);
        if (fixed.length) {
          await tx
            .update(quarantine)
            .set({ resolvedAt: sql`now()` })
            .where(and(eq(quarantine.connectorId, id), isNull(quarantine.resolvedAt), inArray(quarantine.sourceId, fixed)));
        }
        await tx.update(connectorState).set({ cursor: nextCursor, consecutiveFailures: 0, circuit: 'CLOSED', circuitOpenedAt: null, updatedAt: sql`now()` }).where(eq(connectorState.connectorId, id));
        const q: Record<string, number> = { ...progress.quarantined };
        for (const b of bad) q[b.reason] = (q[b.reason] ?? 0) + 1;
        await tx
          .update(syncRuns)
          .set({
            fetched: sql`${syncRuns.fetched} + ${page.records.length}`,
            inserted: sql`${syncRuns.inserted} + ${c.inserted}`,
            updated: sql`${syncRuns.updated} + ${c.updated}`,
            unchanged: sql`${syncRuns.unchanged} + ${c.unchanged}`,
            quarantined: q,
            batches: sql`${syncRuns.batches} + 1`,
            heartbeatAt: sql`now()`,
            cursorEnd: nextCursor,
          })
          .where(eq(syncRuns.id, runId));
        return { ...c, q };
      });
      cursor = nextCursor;
      for (const g of good) openQuarantine.delete(g.sourceId);
      for (const b of bad) openQuarantine.add(b.sourceId);
      progress.fetched += page.records.length;
      progress.inserted += counts.inserted;
      progress.updated += counts.updated;
      progress.unchanged += counts.unchanged;
      progress.quarantined = counts.q;
      progress.batches++;
      options.onProgress?.({ ...progress });
    }
    await db.update(connectorState).set({ lastCompletedAt: sql`now()`, updatedAt: sql`now()` }).where(eq(connectorState.connectorId, id));
    return await finish('SUCCEEDED', null);
  } catch (error) {
    if (error instanceof RunFailure) return finish('FAILED', error.message);
    await finish('FAILED', `INTERNAL: ${error instanceof Error ? error.message : String(error)}`).catch(() => undefined);
    throw error;
  } finally {
    await adapter.close?.();
  }
}

export async function listSyncRuns(db: Db, filter: { connectorId?: string | null; status?: string | null }, limit = 50): Promise<SyncRun[]> {
  const conditions = [];
  if (filter.connectorId) conditions.push(eq(syncRuns.connectorId, filter.connectorId));
  if (filter.status) conditions.push(eq(syncRuns.status, filter.status as SyncRun['status']));
  return db.select().from(syncRuns).where(conditions.length ? and(...conditions) : undefined).orderBy(desc(syncRuns.startedAt)).limit(limit);
}

export async function listQuarantine(db: Db, connectorId: string, open = true): Promise<(typeof quarantine.$inferSelect)[]> {
  return db
    .select()
    .from(quarantine)
    .where(open ? and(eq(quarantine.connectorId, connectorId), isNull(quarantine.resolvedAt)) : eq(quarantine.connectorId, connectorId))
    .orderBy(quarantine.sourceId);
}
