import type crypto from 'node:crypto';
import { and, asc, desc, eq, gt, isNotNull, lte, sql } from 'drizzle-orm';
import { compactVerify, SignJWT } from 'jose';
import type { KeyRing } from '../auth/keys.ts';
import { advisoryXactLock, type Db } from '../db/index.ts';
import { HubError } from '../core/errors.ts';
import { extendRange, inclusionProof, consistencyProof, leafHash, rangePieces, rootOfRange, GENESIS_HASH, chainHash, type ChainedEntry, type TreeLeaves } from './chain.ts';
import { auditArchives, auditCheckpoints, auditEntries, auditRuns, RUN_TAG_COLUMNS, runTag, type RunTagColumn } from './schema.ts';

export type Checkpoint = typeof auditCheckpoints.$inferSelect;
export const CHECKPOINT_TYP = 'audit-checkpoint+jwt';

/**
 * Seals the entries written since the last checkpoint into a signed tree head. Only the new leaves are hashed: the
 * previous checkpoint's compact range carries the rest. Returns null when nothing new was written.
 */
export async function createCheckpoint(db: Db, keys: KeyRing, issuer: string): Promise<Checkpoint | null> {
  return db.transaction(async (tx) => {
    await advisoryXactLock(tx, 'hub:audit-checkpoint');
    const [last] = await tx.select().from(auditCheckpoints).orderBy(desc(auditCheckpoints.treeSize)).limit(1);
    let size = last?.treeSize ?? 0;
    let range: Buffer[] = (last?.frontier ?? []).map((h) => Buffer.from(h, 'hex'));
    let lastHash = last?.lastHash ?? GENESIS_HASH;
    for await (const chunk of hashChunks(tx, size)) {
      range = extendRange(range, size, chunk.map((c) => leafHash(c.hash)));
      size = chunk.at(-1)!.seq;
      lastHash = chunk.at(-1)!.hash;
    }
    if (size === (last?.treeSize ?? 0)) return null;
    const rootHash = rootOfRange(range).toString('hex');
    const signer = keys.signer('audit');
    const createdAt = new Date();
    const signature = await new SignJWT({ tree_size: size, root_hash: rootHash, last_hash: lastHash })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: CHECKPOINT_TYP })
      .setIssuer(issuer)
      .setIssuedAt(Math.floor(createdAt.getTime() / 1000))
      .sign(signer.privateKey);
    const [row] = await tx
      .insert(auditCheckpoints)
      .values({ treeSize: size, rootHash, lastHash, frontier: range.map((b) => b.toString('hex')), signature, kid: signer.kid, createdAt })
      .returning();
    return row!;
  });
}

export async function listCheckpoints(db: Db, limit = 100): Promise<Checkpoint[]> {
  return db.select().from(auditCheckpoints).orderBy(desc(auditCheckpoints.treeSize)).limit(limit);
}

/** The entries' (seq, hash) after `after` (up to `upTo`), in seq order, a chunk at a time. */
async function* hashChunks(db: Db, after: number, upTo?: number): AsyncGenerator<{ seq: number; hash: string }[]> {
  for (let from = after; ; ) {
    const chunk = await db
      .select({ seq: auditEntries.seq, hash: auditEntries.hash })
      .from(auditEntries)
      .where(upTo === undefined ? gt(auditEntries.seq, from) : and(gt(auditEntries.seq, from), lte(auditEntries.seq, upTo)))
      .orderBy(asc(auditEntries.seq))
      .limit(50_000);
    if (chunk.length === 0) return;
    yield chunk;
    from = chunk.at(-1)!.seq;
  }
}

/** The archives detached from the log, oldest first: the attached log begins after the last of them. */
async function detachedArchives(db: Db) {
  return db.select().from(auditArchives).where(isNotNull(auditArchives.detachedAt)).orderBy(asc(auditArchives.lastSeq));
}

/**
 * The tree's leaves up to n: those still attached, and for the archived prefix the subtree hashes of the compact
 * range kept at the boundary, so proofs about entries after it need no archive.
 */
async function leavesUpTo(db: Db, n: number): Promise<TreeLeaves & { boundary: number }> {
  const base = (await detachedArchives(db)).at(-1);
  const boundary = base?.lastSeq ?? 0;
  const leaves: (Buffer | undefined)[] = new Array<Buffer | undefined>(n);
  let count = 0;
  for await (const chunk of hashChunks(db, boundary, n)) {
    for (const c of chunk) leaves[c.seq - 1] = leafHash(c.hash);
    count += chunk.length;
  }
  if (boundary + count !== n) throw new RangeError(`the log holds ${boundary + count} entries, fewer than ${n}`);
  const pieces = base ? rangePieces(boundary, base.frontier.map((h) => Buffer.from(h, 'hex'))) : new Map<string, Buffer>();
  return { leaves, known: (lo, hi) => (hi <= boundary ? pieces.get(`${lo}:${hi}`) : undefined), boundary };
}

function archived(error: unknown): never {
  if (error instanceof RangeError && /archived/.test(error.message)) {
    throw new HubError('CONFLICT', `${error.message}: the proof needs entries of an archived month (prove it with the archive file)`);
  }
  throw error;
}

/** The audit path of entry `seq` in the tree of a checkpoint's size (RFC 6962 inclusion proof). */
export async function proveInclusion(db: Db, seq: number, treeSize: number): Promise<{ leafIndex: number; treeSize: number; entryHash: string; path: string[] }> {
  if (!(seq >= 1 && seq <= treeSize)) throw new RangeError('the entry is not in a tree of that size');
  const tree = await leavesUpTo(db, treeSize);
  if (seq <= tree.boundary) throw new HubError('CONFLICT', `entry ${seq} is archived: prove it with its month's archive file`);
  try {
    const path = inclusionProof(tree, seq - 1).map((b) => b.toString('hex'));
    return { leafIndex: seq - 1, treeSize, entryHash: (await db.select({ hash: auditEntries.hash }).from(auditEntries).where(eq(auditEntries.seq, seq)))[0]!.hash, path };
  } catch (error) {
    return archived(error);
  }
}

/** The proof that the tree of size `to` extends the tree of size `from` (RFC 6962 consistency proof). */
export async function proveConsistency(db: Db, from: number, to: number): Promise<string[]> {
  const tree = await leavesUpTo(db, to);
  try {
    return consistencyProof(tree, from, to).map((b) => b.toString('hex'));
  } catch (error) {
    return archived(error);
  }
}

/** The number of hashes in the compact range of a tree of n leaves. */
const popcount = (n: number): number => n.toString(2).replaceAll('0', '').length;

export interface VerifyProblem {
  seq: number;
  kind: 'GAP' | 'PREV_HASH' | 'HASH' | 'CHECKPOINT_ROOT' | 'CHECKPOINT_SIGNATURE' | 'CHECKPOINT_BEYOND_LOG' | 'ARCHIVE_LINK' | 'RUN';
  message: string;
}

export interface VerifyReport {
  ok: boolean;
  entries: number;
  checkpoints: number;
  problem: VerifyProblem | null;
  seconds: number;
}

type Run = Pick<typeof auditRuns.$inferSelect, 'firstSeq' | 'lastSeq' | 'at' | 'clientId' | 'tags'>;
type TaggedColumns = Pick<typeof auditEntries.$inferSelect, RunTagColumn>;

/**
 * The runs (audit_runs) alongside the entries, in order: each entry must lie in exactly one, of its client and time,
 * whose tags name its department, resource, item code, operation and outcome. An entry outside them would be left
 * out of every search by those filters without its chain showing anything amiss; runs that overlap would show
 * entries twice.
 */
class RunCheck {
  private runs: Run[] = [];
  private next = 0;
  private run: (Run & { tagSet: Set<string> }) | null = null;
  /** the entry before, whose tagged columns were checked against the run already */
  private checked: TaggedColumns | null = null;
  private done = false;
  /** the last run read, and how many read have its (first_seq, last_seq): the next page begins after them */
  private last: Run | null = null;
  private alikeRead = 0;

  constructor(
    private readonly db: Db,
    /** the last entry of the archived months: runs that end after it are the attached log's */
    private readonly boundary: number,
    private readonly pageSize: number,
  ) {}

  /** Why the entry is not where its run says, or null. */
  async problem(e: typeof auditEntries.$inferSelect): Promise<string | null> {
    while (!this.run || this.run.lastSeq < e.seq) {
      const previous = this.run;
      const next = await this.nextRun();
      if (!next) return inNoRun(e.seq);
      if (previous && next.firstSeq <= previous.lastSeq) return overlap(previous, next);
      this.run = { ...next, tagSet: new Set(next.tags) };
      this.checked = null;
    }
    const run = this.run;
    if (run.firstSeq > e.seq) return inNoRun(e.seq);
    if (run.clientId !== e.clientId || run.at.getTime() !== e.at.getTime()) return `entry ${e.seq} lies in the run ${run.firstSeq}-${run.lastSeq} of another client or time`;
    const checked = this.checked;
    if (checked && RUN_TAG_COLUMNS.every((column) => checked[column] === e[column])) return null;
    for (const column of RUN_TAG_COLUMNS) {
      const value = e[column];
      if (value !== null && !run.tagSet.has(runTag(column, value))) return `entry ${e.seq} lies in the run ${run.firstSeq}-${run.lastSeq}, whose tags do not name its ${column}: a search by it would not find the entry`;
    }
    this.checked = e;
    return null;
  }

  /**
   * After the last entry checked: a run that begins at or before it would overlap the runs checked. (Runs of entries
   * committed since the entries were read begin after it.)
   */
  async rest(lastSeq: number): Promise<string | null> {
    const next = await this.nextRun();
    return next && this.run && next.firstSeq <= lastSeq ? overlap(this.run, next) : null;
  }

  private async nextRun(): Promise<Run | null> {
    if (this.next === this.runs.length) {
      if (this.done) return null;
      // in order of (first_seq, last_seq); runs have no key of their own, so a page begins at the last one read, and
      // the ones of its (first_seq, last_seq) already read are skipped: two alike are both read, even across pages
      const last = this.last;
      const page = await this.db
        .select({ firstSeq: auditRuns.firstSeq, lastSeq: auditRuns.lastSeq, at: auditRuns.at, clientId: auditRuns.clientId, tags: auditRuns.tags })
        .from(auditRuns)
        .where(last ? sql`(${auditRuns.firstSeq}, ${auditRuns.lastSeq}) >= (${last.firstSeq}::int8, ${last.lastSeq}::int8)` : gt(auditRuns.lastSeq, this.boundary))
        .orderBy(asc(auditRuns.firstSeq), asc(auditRuns.lastSeq))
        .limit(this.pageSize + this.alikeRead);
      this.runs = page.slice(this.alikeRead);
      this.next = 0;
      if (this.runs.length === 0) {
        this.done = true;
        return null;
      }
      const end = this.runs.at(-1)!;
      const alike = this.runs.filter((r) => r.firstSeq === end.firstSeq && r.lastSeq === end.lastSeq).length;
      this.alikeRead = last && last.firstSeq === end.firstSeq && last.lastSeq === end.lastSeq ? this.alikeRead + alike : alike;
      this.last = end;
    }
    return this.runs[this.next++]!;
  }
}

function inNoRun(seq: number): string {
  return `entry ${seq} is in no run: a search by client, department, resource, item code, operation or outcome would not find it`;
}

function overlap(a: Run, b: Run): string {
  return `the runs ${a.firstSeq}-${a.lastSeq} and ${b.firstSeq}-${b.lastSeq} overlap: searches would show their entries twice`;
}

/**
 * Recomputes the whole chain and every checkpoint's tree head and signature, and checks the runs alongside
 * (RunCheck); stops at the first entry that does not match and names it. `keyFor` gives the public key of an
 * audit-key kid (from the JWKS).
 */
export async function verifyAuditLog(db: Db, keyFor: (kid: string) => Promise<crypto.KeyObject | undefined>, options: { runPage?: number } = {}): Promise<VerifyReport> {
  const started = Date.now();
  const checkpoints = (await db.select().from(auditCheckpoints).orderBy(asc(auditCheckpoints.treeSize))).map((c) => c);
  // Archived months: each archive must begin where the one before it ended; the attached log begins after the last.
  const archives = await detachedArchives(db);
  let next = 0;
  let prev = GENESIS_HASH;
  let expected = 1;
  let range: Buffer[] = [];
  const fail = (problem: VerifyProblem): VerifyReport => ({ ok: false, entries: expected - 1, checkpoints: next, problem, seconds: (Date.now() - started) / 1000 });
  for (const a of archives) {
    if (a.firstSeq !== expected || a.prevHash !== prev) return fail({ seq: a.firstSeq, kind: 'ARCHIVE_LINK', message: `the archive of ${a.partition} does not begin where the log before it ends (entry ${expected - 1})` });
    if (a.frontier.length !== popcount(a.lastSeq)) return fail({ seq: a.lastSeq, kind: 'ARCHIVE_LINK', message: `the archive of ${a.partition} keeps a malformed tree range` });
    prev = a.lastHash;
    expected = a.lastSeq + 1;
    range = a.frontier.map((h) => Buffer.from(h, 'hex'));
  }
  const signatureOk = async (c: Checkpoint): Promise<VerifyProblem | null> => {
    const key = await keyFor(c.kid);
    try {
      if (!key) throw new Error('unknown key');
      const { payload } = await compactVerify(c.signature, key);
      const claims = JSON.parse(Buffer.from(payload).toString()) as { tree_size: number; root_hash: string; last_hash: string };
      if (claims.tree_size !== c.treeSize || claims.root_hash !== c.rootHash || claims.last_hash !== c.lastHash) throw new Error('claims differ');
      return null;
    } catch (error) {
      return { seq: c.treeSize, kind: 'CHECKPOINT_SIGNATURE', message: `checkpoint at tree size ${c.treeSize}: signature does not verify (${(error as Error).message})` };
    }
  };
  // checkpoints inside archived months: their roots are recomputed from the archive files (hub audit verify --archive)
  while (next < checkpoints.length && checkpoints[next]!.treeSize < expected - 1) {
    const bad = await signatureOk(checkpoints[next]!);
    if (bad) return fail(bad);
    next++;
  }
  const checkAt = async (size: number): Promise<VerifyProblem | null> => {
    while (next < checkpoints.length && checkpoints[next]!.treeSize === size) {
      const c = checkpoints[next]!;
      const root = rootOfRange(range).toString('hex');
      if (root !== c.rootHash || c.lastHash !== prev) return { seq: size, kind: 'CHECKPOINT_ROOT', message: `checkpoint at tree size ${size} does not match the entries up to ${size}` };
      const bad = await signatureOk(c);
      if (bad) return bad;
      next++;
    }
    return null;
  };
  const first = await checkAt(expected - 1);
  if (first) return fail(first);
  const runs = new RunCheck(db, expected - 1, options.runPage ?? 10_000);
  for (let after = expected - 1; ; ) {
    const chunk = await db.select().from(auditEntries).where(gt(auditEntries.seq, after)).orderBy(asc(auditEntries.seq)).limit(10_000);
    if (chunk.length === 0) break;
    for (const row of chunk) {
      if (row.seq !== expected) return fail({ seq: expected, kind: 'GAP', message: `entry ${expected} is missing (the next one present is ${row.seq})` });
      if (row.prevHash !== prev) return fail({ seq: row.seq, kind: 'PREV_HASH', message: `entry ${row.seq} does not follow entry ${row.seq - 1}` });
      const e: ChainedEntry = { ...row, at: row.at.toISOString() };
      if (chainHash(prev, e) !== row.hash) return fail({ seq: row.seq, kind: 'HASH', message: `entry ${row.seq} was altered: its content does not give its hash` });
      const misplaced = await runs.problem(row);
      if (misplaced) return fail({ seq: row.seq, kind: 'RUN', message: misplaced });
      prev = row.hash;
      range = extendRange(range, expected - 1, [leafHash(row.hash)]);
      const bad = await checkAt(expected);
      if (bad) return fail(bad);
      expected++;
    }
    after = chunk.at(-1)!.seq;
  }
  const trailing = expected > 1 ? await runs.rest(expected - 1) : null;
  if (trailing) return fail({ seq: expected - 1, kind: 'RUN', message: trailing });
  if (next < checkpoints.length) {
    const c = checkpoints[next]!;
    return fail({ seq: c.treeSize, kind: 'CHECKPOINT_BEYOND_LOG', message: `checkpoint at tree size ${c.treeSize} covers entries the log no longer holds (it ends at ${expected - 1})` });
  }
  return { ok: true, entries: expected - 1, checkpoints: next, problem: null, seconds: (Date.now() - started) / 1000 };
}
