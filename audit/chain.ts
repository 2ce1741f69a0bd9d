import crypto from 'node:crypto';

/**
 * The audit log's two structures, both over SHA-256:
 * - a hash chain: hash(n) = SHA-256(hash(n-1) ‖ canonical(entry n)), with hash(0) = 64 zeros, so changing,
 *   removing or reordering any entry breaks every hash after it;
 * - an RFC 6962 Merkle tree over the chain hashes: leaf = SHA-256(0x00 ‖ h), node = SHA-256(0x01 ‖ left ‖ right),
 *   whose signed heads (checkpoints) let anyone holding one prove, with logarithmic proofs, that an entry is in the
 *   log and that a later head extends an earlier one.
 */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields of an entry that are hashed, in a fixed order; absent values are null. */
export interface ChainedEntry {
  seq: number;
  at: string;
  clientId: string | null;
  department: string | null;
  operator: string | null;
  itemCode: string | null;
  caseId: string | null;
  operation: string;
  resourceCode: string | null;
  subject: string | null;
  fields: string[] | null;
  outcome: string;
  reason: string | null;
  withholdBasis: string | null;
  requestId: string | null;
  details: Record<string, unknown> | null;
}

/** The reference form: keys sorted at every level, absent values null, nothing else but JSON. */
export function canonical(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  return `{${Object.keys(value as Record<string, unknown>)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

/**
 * True when JSON.stringify writes exactly what `canonical` does: plain objects whose keys are in order already, arrays,
 * and strings, finite numbers, booleans and null, with nothing undefined, no Date or other object with toJSON.
 */
function stringifiesCanonically(value: unknown): boolean {
  if (value === null) return true;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value);
    case 'object': {
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!stringifiesCanonically(value[i])) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      let previous: string | undefined;
      for (const k in value as Record<string, unknown>) {
        if (!Object.hasOwn(value, k)) return false;
        if (previous !== undefined && !(previous < k)) return false;
        if (!stringifiesCanonically((value as Record<string, unknown>)[k])) return false;
        previous = k;
      }
      return true;
    }
    default:
      return false;
  }
}

/**
 * The entry's hashed form, `canonical` of its fields in order. The writer's entries take the native JSON.stringify
 * (the same text, tested against `canonical`); anything it would write differently goes the reference way.
 */
export function canonicalEntry(e: ChainedEntry): string {
  return entryTexts(e).canonical;
}

/**
 * The canonical text of an entry around its own values (seq, subject, details): `head` is the run from its time to
 * its resource, `tail` from its 信息项 to its request id. Both are the same for every entry of one time and kind, so
 * the writer makes them once per kind; entryTexts puts them together the same way for one entry.
 */
export interface EntrySegments {
  head: string;
  tail: string;
}

/** An entry's fields but its own three: what the entries of one kind and batch share. */
export type SharedFields = Omit<ChainedEntry, 'seq' | 'subject' | 'details'>;

export function entrySegments(e: SharedFields): EntrySegments {
  return {
    head: runOf([e.at, e.clientId, e.department, e.operator, e.itemCode, e.caseId, e.operation, e.resourceCode]),
    tail: runOf([e.fields, e.outcome, e.reason, e.withholdBasis, e.requestId]),
  };
}

/** Values as they stand inside the canonical array: native JSON.stringify where it writes the same text. */
function runOf(values: unknown[]): string {
  return (stringifiesCanonically(values) ? JSON.stringify(values) : canonical(values)).slice(1, -1);
}

/**
 * Details already written as canonical JSON (what `canonical` writes: keys in order at every level, nothing but JSON),
 * for a caller that records many entries of one shape and makes their common part once: the writer stores and hashes
 * the text as it is. Verification recomputes the canonical form from the stored value, so a text that was not
 * canonical shows there as an altered entry.
 */
export class CanonicalJson {
  constructor(readonly text: string) {}
}

/**
 * The entry's hashed form and its details as the JSON text stored (JSON.stringify's, whatever the key order: the
 * column is jsonb, and verification recomputes the canonical form from what it reads back).
 */
export function entryTextsWith(segments: EntrySegments, seq: number, subject: string | null, details: Record<string, unknown> | CanonicalJson | null): { canonical: string; details: string | null } {
  let stored: string | null = null;
  let hashed = 'null';
  if (details instanceof CanonicalJson) stored = hashed = details.text;
  else if (details !== null && details !== undefined) {
    stored = JSON.stringify(details);
    hashed = stringifiesCanonically(details) ? stored : canonical(details);
  }
  // a sequence number is an integer and a subject a string or null: JSON.stringify writes them as canonical does
  return { canonical: `[${String(seq)},${segments.head},${subject === null || subject === undefined ? 'null' : JSON.stringify(subject)},${segments.tail},${hashed}]`, details: stored };
}

export function entryTexts(e: ChainedEntry): { canonical: string; details: string | null } {
  return entryTextsWith(entrySegments(e), e.seq, e.subject, e.details);
}

export function chainHash(prevHash: string, e: ChainedEntry): string {
  return chainHashOf(prevHash, canonicalEntry(e));
}

/** One buffer for the hash input, reused: hashing is synchronous, and a batch hashes every entry in turn. */
let input = Buffer.allocUnsafe(16 * 1024);

/** SHA-256(previous hash's bytes ‖ the canonical text's UTF-8). */
export function chainHashOf(prevHash: string, canonicalText: string): string {
  const need = (prevHash.length >> 1) + canonicalText.length * 3;
  if (input.length < need) input = Buffer.allocUnsafe(Math.max(need, input.length * 2));
  // as Buffer.from(prevHash, 'hex') would: a malformed stored hash gives fewer bytes, and so another hash
  const k = input.write(prevHash, 0, 'hex');
  const n = input.write(canonicalText, k, 'utf8');
  return crypto.hash('sha256', input.subarray(0, k + n), 'hex');
}

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

export function leafHash(entryHash: string): Buffer {
  return crypto.createHash('sha256').update(LEAF).update(Buffer.from(entryHash, 'hex')).digest();
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return crypto.createHash('sha256').update(NODE).update(left).update(right).digest();
}

/** The largest power of two smaller than n (RFC 6962's split point k). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * The leaves of a tree, some of which may be archived: `leaves[i]` is leaf i, or undefined once archived, and
 * `known(lo, hi)` gives the hash of an archived subtree (the pieces of the compact range kept at the archive's
 * boundary). Every function below asks `known` first, so proofs about entries after the boundary still work.
 */
export interface TreeLeaves {
  leaves: readonly (Buffer | undefined)[];
  known?: (lo: number, hi: number) => Buffer | undefined;
}

function leavesOf(t: TreeLeaves | readonly Buffer[]): TreeLeaves {
  return Array.isArray(t) ? { leaves: t } : (t as TreeLeaves);
}

function subtree(t: TreeLeaves, lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return crypto.createHash('sha256').digest();
  const known = t.known?.(lo, hi);
  if (known) return known;
  if (n === 1) {
    const leaf = t.leaves[lo];
    if (!leaf) throw new RangeError(`leaf ${lo} is archived: prove it from its archive`);
    return leaf;
  }
  const k = split(n);
  return nodeHash(subtree(t, lo, lo + k), subtree(t, lo + k, hi));
}

/** MTH(D[lo:hi]) over leaf hashes. */
export function merkleRoot(tree: TreeLeaves | readonly Buffer[], lo = 0, hi = leavesOf(tree).leaves.length): Buffer {
  return subtree(leavesOf(tree), lo, hi);
}

/** PATH(m, D[0:n]): the audit path of leaf m (0-based) in the tree of the first n leaves. */
export function inclusionProof(tree: TreeLeaves | readonly Buffer[], m: number, lo = 0, hi = leavesOf(tree).leaves.length): Buffer[] {
  const t = leavesOf(tree);
  const path = (m: number, lo: number, hi: number): Buffer[] => {
    const n = hi - lo;
    if (n <= 1) return [];
    const k = split(n);
    return m < k ? [...path(m, lo, lo + k), subtree(t, lo + k, hi)] : [...path(m - k, lo + k, hi), subtree(t, lo, lo + k)];
  };
  return path(m, lo, hi);
}

/** PROOF(m, D[0:n]) (RFC 6962 §2.1.2): shows the tree of n leaves extends the tree of its first m. */
export function consistencyProof(tree: TreeLeaves | readonly Buffer[], m: number, n = leavesOf(tree).leaves.length): Buffer[] {
  const t = leavesOf(tree);
  const subproof = (m: number, lo: number, hi: number, complete: boolean): Buffer[] => {
    const n = hi - lo;
    if (m === n) return complete ? [] : [subtree(t, lo, hi)];
    const k = split(n);
    return m <= k
      ? [...subproof(m, lo, lo + k, complete), subtree(t, lo + k, hi)]
      : [...subproof(m - k, lo + k, hi, false), subtree(t, lo, lo + k)];
  };
  if (m <= 0 || m > n) throw new RangeError(`consistency proof needs 0 < m ≤ n (m=${m}, n=${n})`);
  return subproof(m, 0, n, true);
}

/** The subtrees a compact range of `size` leaves stands for, left to right: [lo, hi) for each of its hashes. */
export function rangePieces(size: number, range: readonly Buffer[]): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let lo = 0;
  let i = 0;
  for (let bit = 2 ** Math.floor(Math.log2(Math.max(size, 1))); bit >= 1; bit /= 2) {
    if (Math.floor(size / bit) % 2 === 1) {
      out.set(`${lo}:${lo + bit}`, range[i++]!);
      lo += bit;
    }
  }
  if (i !== range.length) throw new RangeError(`a compact range of ${size} leaves has ${i} hashes, not ${range.length}`);
  return out;
}

/**
 * Appends leaves to a compact range (the roots of the perfect subtrees covering the leaves so far, largest first)
 * and returns the new range; `rootOfRange` folds it into the tree head. A checkpoint stores its range, so the next
 * one hashes only the leaves added since.
 */
export function extendRange(range: readonly Buffer[], size: number, leaves: readonly Buffer[]): Buffer[] {
  const out = [...range];
  let n = size;
  for (const leaf of leaves) {
    let node = leaf;
    // merge while the lowest bit of n is set: each set bit of n is a perfect subtree at the end of the range
    for (let bits = n; bits & 1; bits >>= 1) node = nodeHash(out.pop()!, node);
    out.push(node);
    n++;
  }
  return out;
}

export function rootOfRange(range: readonly Buffer[]): Buffer {
  if (range.length === 0) return crypto.createHash('sha256').digest();
  let acc = range[range.length - 1]!;
  for (let i = range.length - 2; i >= 0; i--) acc = nodeHash(range[i]!, acc);
  return acc;
}
