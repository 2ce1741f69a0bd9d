import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { and, asc, desc, eq, gt, gte, lt, sql } from 'drizzle-orm';
import { compactVerify } from 'jose';
import type { KeyRing } from '../auth/keys.ts';
import { HubError, sqlState } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { chainHash, extendRange, GENESIS_HASH, leafHash, rootOfRange, type ChainedEntry } from './chain.ts';
import { createCheckpoint, type Checkpoint } from './checkpoints.ts';
import { attachedPartitions, auditMonth, monthOfPartition } from './months.ts';
import { auditArchives, auditCheckpoints, auditEntries } from './schema.ts';
import { appendInTransaction } from './writer.ts';

export type AuditArchive = typeof auditArchives.$inferSelect;
export const ARCHIVE_TYPE = 'hub-audit-archive';

/** The first line of an archive file: where it sits in the chain and the tree, and the checkpoints it carries. */
export interface ArchiveHeader {
  type: typeof ARCHIVE_TYPE;
  version: 1;
  issuer: string;
  partition: string;
  month: string;
  from: string;
  to: string;
  firstSeq: number;
  /** the last hash of the previous archive (or of the entry before, or the genesis hash): the link */
  prevHash: string;
  previousArchive: { partition: string; lastSeq: number; lastHash: string; sha256: string } | null;
  /** the tree's compact range after entry firstSeq − 1, so the tree heads can be recomputed from this file on */
  frontier: string[];
  /** the signed checkpoints whose tree ends inside this month, and the first one past it */
  checkpoints: Pick<Checkpoint, 'treeSize' | 'rootHash' | 'lastHash' | 'signature' | 'kid'>[];
}

export interface ArchiveTrailer {
  type: 'end';
  entries: number;
  lastSeq: number;
  lastHash: string;
  frontier: string[];
}

/** Where the attached log begins: after the newest detached archive, or at the genesis. */
export async function archiveBoundary(db: Db): Promise<AuditArchive | null> {
  const [a] = await db.select().from(auditArchives).where(sql`${auditArchives.detachedAt} is not null`).orderBy(desc(auditArchives.lastSeq)).limit(1);
  return a ?? null;
}

/** Every month of the log: attached partitions and archived ones, oldest first. */
export async function listAuditMonths(db: Db): Promise<{ month: string; partition: string; attached: boolean; archive: AuditArchive | null }[]> {
  const attached = await attachedPartitions(db);
  const archives = await db.select().from(auditArchives).orderBy(asc(auditArchives.fromAt));
  const byPartition = new Map(archives.map((a) => [a.partition, a]));
  const months = new Map<string, { month: string; partition: string; attached: boolean; archive: AuditArchive | null }>();
  for (const m of attached) months.set(m.partition, { month: m.month, partition: m.partition, attached: true, archive: byPartition.get(m.partition) ?? null });
  for (const a of archives) if (!months.has(a.partition)) months.set(a.partition, { month: monthOfPartition(a.partition).month, partition: a.partition, attached: false, archive: a });
  return [...months.values()].sort((x, y) => x.partition.localeCompare(y.partition));
}

function entryLine(row: typeof auditEntries.$inferSelect): ChainedEntry & { prevHash: string; hash: string } {
  return { ...row, at: row.at.toISOString() };
}

/**
 * 归档: writes a finished month of the log to `file` (JSONL: a header linking to the previous archive, the entries,
 * a trailer), after checking its chain, and records it. A signed checkpoint is made first if none covers the month's
 * last entry yet. Months are archived in order: the month must begin right after the last archive.
 */
export async function archiveMonth(db: Db, keys: KeyRing, issuer: string, month: string, file: string, actor: { clientId?: string; department?: string } = {}): Promise<AuditArchive> {
  const m = auditMonth(month);
  if (m.to.getTime() > Date.now()) throw new HubError('CONFLICT', `the month ${month} is not over yet`);
  if (!(await attachedPartitions(db)).some((p) => p.partition === m.partition)) throw new HubError('NOT_FOUND', `the audit log has no attached partition for ${month}`);
  const [existing] = await db.select().from(auditArchives).where(eq(auditArchives.partition, m.partition));
  if (existing) throw new HubError('CONFLICT', `${month} was archived at ${existing.createdAt.toISOString()} to ${existing.location}`);
  const [previous] = await db.select().from(auditArchives).orderBy(desc(auditArchives.lastSeq)).limit(1);
  const boundary = previous?.lastSeq ?? 0;
  const [{ before } = { before: 0 }] = await db.select({ before: sql<number>`count(*)::int` }).from(auditEntries).where(and(lt(auditEntries.at, m.from), gt(auditEntries.seq, boundary)));
  if (before > 0) throw new HubError('CONFLICT', `${before} entries before ${month} are not archived yet: archive the months in order`);
  const [last] = await db.select({ seq: auditEntries.seq }).from(auditEntries).where(and(gte(auditEntries.at, m.from), lt(auditEntries.at, m.to))).orderBy(desc(auditEntries.seq)).limit(1);
  const lastSeq = last?.seq ?? boundary;

  let [covering] = await db.select().from(auditCheckpoints).where(gte(auditCheckpoints.treeSize, lastSeq)).orderBy(asc(auditCheckpoints.treeSize)).limit(1);
  if (!covering && lastSeq > 0) {
    await createCheckpoint(db, keys, issuer);
    [covering] = await db.select().from(auditCheckpoints).where(gte(auditCheckpoints.treeSize, lastSeq)).orderBy(asc(auditCheckpoints.treeSize)).limit(1);
  }
  const inMonth = await db.select().from(auditCheckpoints).where(and(gt(auditCheckpoints.treeSize, boundary), lt(auditCheckpoints.treeSize, lastSeq))).orderBy(asc(auditCheckpoints.treeSize));
  const carried = [...inMonth, ...(covering ? [covering] : [])].map(({ treeSize, rootHash, lastHash, signature, kid }) => ({ treeSize, rootHash, lastHash, signature, kid }));

  const header: ArchiveHeader = {
    type: ARCHIVE_TYPE,
    version: 1,
    issuer,
    partition: m.partition,
    month,
    from: m.from.toISOString(),
    to: m.to.toISOString(),
    firstSeq: boundary + 1,
    prevHash: previous?.lastHash ?? GENESIS_HASH,
    previousArchive: previous ? { partition: previous.partition, lastSeq: previous.lastSeq, lastHash: previous.lastHash, sha256: previous.sha256 } : null,
    frontier: previous?.frontier ?? [],
    checkpoints: carried,
  };
  const target = path.resolve(file);
  const tmp = `${target}.${process.pid}.tmp`;
  const digest = crypto.createHash('sha256');
  const outFile = fs.openSync(tmp, 'w', 0o600);
  const write = (line: unknown) => {
    const text = `${JSON.stringify(line)}\n`;
    digest.update(text);
    fs.writeSync(outFile, text);
  };
  let prev = header.prevHash;
  let range: Buffer[] = header.frontier.map((h) => Buffer.from(h, 'hex'));
  let size = boundary;
  try {
    write(header);
    for (let after = boundary; ; ) {
      const chunk = await db.select().from(auditEntries).where(and(gt(auditEntries.seq, after), lt(auditEntries.seq, lastSeq + 1))).orderBy(asc(auditEntries.seq)).limit(10_000);
      if (chunk.length === 0) break;
      for (const row of chunk) {
        const e = entryLine(row);
        if (row.seq !== size + 1 || row.prevHash !== prev || chainHash(prev, e) !== row.hash) {
          throw new HubError('CONFLICT', `entry ${row.seq} does not verify: run hub audit verify; nothing was archived`);
        }
        write(e);
        range = extendRange(range, size, [leafHash(row.hash)]);
        prev = row.hash;
        size = row.seq;
      }
      after = chunk.at(-1)!.seq;
    }
    const trailer: ArchiveTrailer = { type: 'end', entries: size - boundary, lastSeq: size, lastHash: prev, frontier: range.map((b) => b.toString('hex')) };
    write(trailer);
    fs.fsyncSync(outFile);
  } catch (error) {
    fs.closeSync(outFile);
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  fs.closeSync(outFile);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(auditArchives)
      .values({
        partition: m.partition,
        fromAt: m.from,
        toAt: m.to,
        firstSeq: boundary + 1,
        lastSeq: size,
        entries: size - boundary,
        prevHash: header.prevHash,
        lastHash: prev,
        frontier: range.map((b) => b.toString('hex')),
        sha256: digest.digest('hex'),
        location: target,
        createdAt: new Date(),
      })
      .returning();
    await appendInTransaction(tx, [
      { clientId: actor.clientId ?? null, department: actor.department ?? null, operation: 'AUDIT_ARCHIVE', outcome: 'DONE', details: { partition: m.partition, firstSeq: boundary + 1, lastSeq: size, sha256: row!.sha256 } },
    ]);
    fs.renameSync(tmp, target);
    return row!;
  });
}

/**
 * Detaches an archived month's partition from the log (the database function checks that its archive matches it and
 * a checkpoint covers it, and that older months left first). The entries stay in the detached table and the file.
 */
export async function detachMonth(db: Db, month: string, actor: { clientId?: string; department?: string } = {}): Promise<AuditArchive> {
  const m = auditMonth(month);
  try {
    return await db.transaction(async (tx) => {
      await tx.execute(sql`select audit_detach_partition(${m.partition})`);
      await appendInTransaction(tx, [{ clientId: actor.clientId ?? null, department: actor.department ?? null, operation: 'AUDIT_DETACH', outcome: 'DONE', details: { partition: m.partition } }]);
      const [row] = await tx.select().from(auditArchives).where(eq(auditArchives.partition, m.partition));
      return row!;
    });
  } catch (error) {
    if (sqlState(error) === '55000') throw new HubError('CONFLICT', (error as { cause?: { message?: string } }).cause?.message ?? (error as Error).message, {}, { cause: error });
    throw error;
  }
}

export interface ArchiveReport {
  ok: boolean;
  file: string;
  partition?: string;
  firstSeq?: number;
  lastSeq?: number;
  lastHash?: string;
  prevHash?: string;
  sha256: string;
  checkpoints: number;
  problem: { seq: number | null; kind: string; message: string } | null;
}

/**
 * Recomputes an archive file on its own: its chain from the header's link, the tree from the header's compact range,
 * the roots and signatures of the checkpoints it carries. `keyFor` gives an audit key by kid (the JWKS).
 */
export async function verifyArchiveFile(file: string, keyFor: (kid: string) => Promise<crypto.KeyObject | undefined>): Promise<ArchiveReport> {
  const digest = crypto.createHash('sha256');
  const input = fs.createReadStream(file);
  input.on('data', (chunk) => digest.update(chunk));
  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  let header: ArchiveHeader | null = null;
  let trailer: ArchiveTrailer | null = null;
  let prev = '';
  let size = 0;
  let range: Buffer[] = [];
  let nextCheckpoint = 0;
  let verified = 0;
  let problem: ArchiveReport['problem'] = null;
  const checkRoot = (): void => {
    while (!problem && header && nextCheckpoint < header.checkpoints.length && header.checkpoints[nextCheckpoint]!.treeSize === size) {
      const c = header.checkpoints[nextCheckpoint++]!;
      if (c.rootHash !== rootOfRange(range).toString('hex') || c.lastHash !== prev) problem = { seq: size, kind: 'CHECKPOINT_ROOT', message: `checkpoint at tree size ${size} does not match the archived entries` };
    }
  };
  for await (const text of lines) {
    if (problem) continue;
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      problem = { seq: size + 1, kind: 'MALFORMED', message: 'a line is not JSON' };
      continue;
    }
    if (!header) {
      if (line.type !== ARCHIVE_TYPE) {
        problem = { seq: null, kind: 'MALFORMED', message: 'the first line is not an archive header' };
        continue;
      }
      header = line as unknown as ArchiveHeader;
      prev = header.prevHash;
      size = header.firstSeq - 1;
      range = header.frontier.map((h) => Buffer.from(h, 'hex'));
      checkRoot();
      continue;
    }
    if (trailer) {
      problem = { seq: size, kind: 'MALFORMED', message: 'lines after the trailer' };
      continue;
    }
    if (line.type === 'end') {
      trailer = line as unknown as ArchiveTrailer;
      continue;
    }
    const e = line as unknown as ChainedEntry & { prevHash: string; hash: string };
    if (e.seq !== size + 1) problem = { seq: size + 1, kind: 'GAP', message: `entry ${size + 1} is missing (the next one present is ${e.seq})` };
    else if (e.prevHash !== prev) problem = { seq: e.seq, kind: 'PREV_HASH', message: `entry ${e.seq} does not follow entry ${e.seq - 1}` };
    else if (chainHash(prev, e) !== e.hash) problem = { seq: e.seq, kind: 'HASH', message: `entry ${e.seq} was altered: its content does not give its hash` };
    else if (e.at < header.from || e.at >= header.to) problem = { seq: e.seq, kind: 'MONTH', message: `entry ${e.seq} is dated ${e.at}, outside ${header.month}` };
    if (problem) continue;
    range = extendRange(range, size, [leafHash(e.hash)]);
    prev = e.hash;
    size = e.seq;
    checkRoot();
  }
  if (!problem && !header) problem = { seq: null, kind: 'MALFORMED', message: 'the file is empty' };
  if (!problem && !trailer) problem = { seq: size, kind: 'TRUNCATED', message: `the archive ends after entry ${size} without its trailer` };
  if (!problem && trailer && (trailer.lastSeq !== size || trailer.lastHash !== prev || trailer.entries !== size - header!.firstSeq + 1 || trailer.frontier.join() !== range.map((b) => b.toString('hex')).join())) {
    problem = { seq: size, kind: 'TRAILER', message: 'the trailer does not match the entries' };
  }
  if (!problem && header) {
    const unchecked = header.checkpoints.slice(nextCheckpoint).find((c) => c.treeSize <= size);
    if (unchecked) problem = { seq: unchecked.treeSize, kind: 'CHECKPOINT_ROOT', message: `checkpoint at tree size ${unchecked.treeSize} lies outside the archived entries` };
    for (const c of problem ? [] : header.checkpoints) {
      try {
        const key = await keyFor(c.kid);
        if (!key) throw new Error('unknown key');
        const claims = JSON.parse(Buffer.from((await compactVerify(c.signature, key)).payload).toString()) as { tree_size: number; root_hash: string; last_hash: string };
        if (claims.tree_size !== c.treeSize || claims.root_hash !== c.rootHash || claims.last_hash !== c.lastHash) throw new Error('claims differ');
        verified++;
      } catch (error) {
        problem = { seq: c.treeSize, kind: 'CHECKPOINT_SIGNATURE', message: `checkpoint at tree size ${c.treeSize}: signature does not verify (${(error as Error).message})` };
        break;
      }
    }
  }
  return {
    ok: !problem,
    file,
    ...(header ? { partition: header.partition, firstSeq: header.firstSeq, prevHash: header.prevHash } : {}),
    ...(trailer ? { lastSeq: trailer.lastSeq, lastHash: trailer.lastHash } : {}),
    sha256: digest.digest('hex'),
    checkpoints: verified,
    problem,
  };
}
