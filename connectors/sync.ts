import os from 'node:os';
import { and, desc, eq, inArray, isNull, sql } from 'drizzle-orm';
import { appendInTransaction } from '../audit/writer.ts';
import type { HubContext } from '../core/context.ts';
import type { EgressPolicy } from '../core/egress.ts';
import { maskIdNumbers } from '../core/ids.ts';
import { notFound, HubError, sqlState } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import { rows, type Database, type Db } from '../db/index.ts';
import { upsertBaseRecords, type IncomingRecord } from '../basedata/store.ts';
import { adapterFor, databaseIdentity, SourceError, type Cursor, type DatabaseIdentity, type SourceAdapter, type SourcePage } from './adapters.ts';
import { authoritativeDepartments, notAuthoritative } from './authority.ts';
import { RecordProblem, applyMapping, toIncoming, type Mapping, type QuarantineReason } from './records.ts';
import { getConnector, isApproved, type Connector } from './registry.ts';
import { connectors, connectorState, quarantine, syncRuns } from './schema.ts';
import { SecretReader } from './secrets.ts';

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
  logger?: Logger;
}

/** What a run needs of the hub beside its database: the master key (source secrets), egress policy, import folder. */
export interface SyncSources {
  masterKey: Buffer;
  egress: EgressPolicy;
  /** HUB_IMPORT_DIR */
  importDir?: string | undefined;
}

/** Run errors that another try will not mend: the job is not retried. */
export const FINAL_RUN_ERRORS = /^(NOT_APPROVED|NOT_AUTHORITATIVE|INTERRUPTED)/;

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
export async function runSync(database: Database, connectorId: string, sources: SyncSources, options: SyncOptions = {}): Promise<SyncReport> {
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
        return await runLocked(database.db, connector, mode, started, sources, options);
      } finally {
        await session.execute(sql`select pg_advisory_unlock(hashtext(${`hub:sync:${connectorId}`}))`);
      }
    });
  } finally {
    runningHere.delete(connectorId);
  }
}

/** The hub's own database, which no SQL source may be; null where the server will not say (PGlite). */
async function hubIdentity(db: Db): Promise<DatabaseIdentity | null> {
  return databaseIdentity(async (text) => ({ rows: await rows<Record<string, unknown>>(db, sql.raw(text)) }));
}

/**
 * The connectors of other departments that are authoritative sources of the kind too (designated by the operator):
 * records they hold are not overwritten by this one, so a record's provenance never changes department silently.
 * Records held by a department that is no longer a source may be corrected by one that is.
 */
async function protectedHolders(tx: Db, connector: Connector, sources: Set<string>): Promise<string[]> {
  const others = [...sources].filter((d) => d !== connector.departmentCode);
  if (others.length === 0) return [];
  const held = await tx
    .select({ id: connectors.id })
    .from(connectors)
    .where(and(eq(connectors.kind, connector.kind), inArray(connectors.departmentCode, others)));
  return held.map((c) => c.id);
}

/** An unexpected failure as a run's error text: its SQLSTATE or its class, never its message (it may quote values). */
function internalError(error: unknown): string {
  const state = sqlState(error);
  return `INTERNAL: ${state ? `the batch could not be stored (SQLSTATE ${state})` : `${error instanceof Error ? error.name : 'error'} while syncing`}`;
}

async function runLocked(db: Db, connector: Connector, mode: 'INCREMENTAL' | 'FULL', started: number, sources: SyncSources, options: SyncOptions): Promise<SyncReport> {
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
    // the run and its audit entry commit together: every run of a source is in the log, with what it did
    await db.transaction(async (tx) => {
      await tx.update(syncRuns).set({ status, error, finishedAt: sql`now()` }).where(eq(syncRuns.id, runId));
      await appendInTransaction(tx, [
        {
          department: connector.departmentCode,
          operation: 'CONNECTOR_SYNC',
          outcome: status === 'SUCCEEDED' ? 'DONE' : 'REFUSED',
          // the error's code (NOT_APPROVED, SOURCE_FAILED …); its text stays with the run
          reason: error ? (/^[A-Z_]+/.exec(error)?.[0] ?? 'FAILED') : null,
          requestId: runId,
          details: { connector: id, run: runId, mode, trigger: options.trigger ?? 'manual', digest: connector.approvedDigest, fetched: progress.fetched, inserted: progress.inserted, updated: progress.updated, unchanged: progress.unchanged, quarantined: progress.quarantined },
        },
      ]);
    });
    log?.info({ runId, status, error, ...progress }, 'sync finished');
    return { runId, connectorId: id, mode, status, error, durationMs: Date.now() - started, ...progress };
  };

  // 前置机登记: only the configuration an admin approved runs, and only for a department that is the kind's source
  if (!isApproved(connector)) return finish('FAILED', `NOT_APPROVED: connector ${id} runs once an admin approved its configuration (approveConnector)`);
  if (!(await authoritativeDepartments(db, connector.kind)).has(connector.departmentCode)) return finish('FAILED', notAuthoritative(connector.kind, connector.departmentCode));

  if (state?.circuit === 'OPEN' && state.circuitOpenedAt && Date.now() - state.circuitOpenedAt.getTime() < breaker.cooldownMs) {
    return finish('FAILED', `CIRCUIT_OPEN: the source failed ${state.consecutiveFailures} times in a row; next try after ${new Date(state.circuitOpenedAt.getTime() + breaker.cooldownMs).toISOString()}`);
  }

  let failures = state?.consecutiveFailures ?? 0;
  // The source ids in open quarantine (about 1% of a source): only these can be resolved by a good record, so a
  // batch does not probe the quarantine for each of its records.
  const openQuarantine = new Set(
    (await db.select({ sourceId: quarantine.sourceId }).from(quarantine).where(and(eq(quarantine.connectorId, id), isNull(quarantine.resolvedAt)))).map((q) => q.sourceId),
  );
  let adapter: SourceAdapter | undefined;
  const mapping = connector.mapping as Mapping;
  try {
    adapter = adapterFor(connector, { egress: sources.egress, secrets: new SecretReader(db, sources.masterKey, connector.departmentCode), importDir: sources.importDir, hubDatabase: connector.adapter === 'sql' ? await hubIdentity(db) : null });
    const source = adapter;
    /** One page with retries and backoff; consecutive failures feed the circuit breaker. */
    const fetchPage = async (from: Cursor | null): Promise<SourcePage> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const page = await source.fetchPage(from, { pageSize, signal });
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
          if (record.__malformed !== undefined) throw new RecordProblem('MALFORMED', `line ${String(record.__line)} of the file is not JSON`);
          if (raw !== record) throw new RecordProblem('MALFORMED', 'the source record is not a JSON object');
          good.push(toIncoming(connector.kind, applyMapping(record, mapping), sourceId, { authoritative: connector.authoritative }));
        } catch (error) {
          if (!(error instanceof RecordProblem)) throw error;
          // a line that did not parse is kept as its number alone, and a value that is not an object not at all
          bad.push({ sourceId, reason: error.reason, detail: error.message, record: record.__malformed !== undefined ? { line: record.__line } : raw === record ? record : {} });
        }
      });
      const nextCursor = page.next ?? page.resume ?? cursor;
      const retrievedAt = new Date();
      const counts = await db.transaction(async (tx) => {
        // the department is a source of the kind at the moment its batch commits, not only when the run began
        const authorities = await authoritativeDepartments(tx, connector.kind);
        if (!authorities.has(connector.departmentCode)) throw new RunFailure(notAuthoritative(connector.kind, connector.departmentCode));
        const held = await protectedHolders(tx, connector, authorities);
        let writable = good;
        if (held.length) {
          const taken = new Set(
            (await rows<{ key: string }>(tx, sql`select key from base_records where kind = ${connector.kind} and key = any(${sql.param(good.map((g) => g.key))}::text[]) and connector_id = any(${sql.param(held)}::text[])`)).map((r) => r.key),
          );
          if (taken.size) {
            writable = good.filter((g) => !taken.has(g.key));
            for (const g of good) if (taken.has(g.key)) bad.push({ sourceId: g.sourceId, reason: 'HELD_BY_OTHER_SOURCE', detail: `the record is held by another department's source of ${connector.kind}; it is not overwritten`, record: g.data });
          }
        }
        const c = await upsertBaseRecords(tx, connector.kind, id, retrievedAt, writable, held);
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
        const fixed = writable.filter((g) => openQuarantine.has(g.sourceId)).map((g) => g.sourceId);
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
      const stillBad = new Set(bad.map((b) => b.sourceId));
      for (const g of good) if (!stillBad.has(g.sourceId)) openQuarantine.delete(g.sourceId);
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
    if (error instanceof HubError && error.code === 'BAD_USER_INPUT') return finish('FAILED', `CONFIG_INVALID: ${error.message}`);
    log?.error({ err: { name: (error as Error)?.name, code: sqlState(error) } }, 'sync failed unexpectedly');
    await finish('FAILED', internalError(error)).catch(() => undefined);
    throw new Error(internalError(error));
  } finally {
    await adapter?.close?.();
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

/** Every string in a JSON value with its 公民身份号码 masked. */
function masked(value: unknown): unknown {
  if (typeof value === 'string') return maskIdNumbers(value);
  if (Array.isArray(value)) return value.map(masked);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, masked(v)]));
  return value;
}

/**
 * 隔离区 as a caller may see it: whole for the source department's providers (they fix the records at the source),
 * with ID numbers masked for everyone else (admins and auditors included). Each read is an audit entry, written
 * before the records are returned.
 */
export async function readQuarantine(ctx: HubContext, connector: Connector, open: boolean): Promise<(typeof quarantine.$inferSelect)[]> {
  const p = ctx.principal;
  const whole = p.kind === 'client' && p.department === connector.departmentCode && p.roles.includes('provider');
  const found = await listQuarantine(ctx.db, connector.id, open);
  await ctx.db.transaction((tx) =>
    appendInTransaction(tx, [
      {
        clientId: p.clientId || null,
        department: p.department || null,
        operation: 'QUARANTINE_READ',
        outcome: found.length ? 'RETURNED' : 'NOT_FOUND',
        requestId: ctx.requestId,
        details: { connector: connector.id, departmentCode: connector.departmentCode, open, records: found.length, masked: !whole },
      },
    ]),
  );
  if (whole) return found;
  return found.map((q) => ({ ...q, detail: maskIdNumbers(q.detail), record: masked(q.record) as Record<string, unknown> }));
}
