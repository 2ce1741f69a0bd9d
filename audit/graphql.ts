import { and, desc, eq, gte, inArray, isNull, lt, lte, type SQL } from 'drizzle-orm';
import { requireHolder, requireRole, type HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
import { listAuditMonths } from './archive.ts';
import { proveConsistency, proveInclusion } from './checkpoints.ts';
import { auditFindings, newestEntries } from './findings.ts';
import { auditCheckpoints, auditEntries, subjectIs } from './schema.ts';
import type { AuditWriter } from './writer.ts';

export interface AuditPorts {
  audit: AuditWriter;
}
type Ctx = HubContext & AuditPorts;
type Entry = typeof auditEntries.$inferSelect;

export const typeDefs = /* GraphQL */ `
  enum AuditOutcome { RETURNED NOT_FOUND REFUSED DONE }
  "One entry of the audit log: who, what, when, why"
  type AccessLogEntry {
    id: ID!
    at: String!
    clientId: String
    department: String
    operator: String
    itemCode: String
    caseId: String
    operation: String!
    resourceCode: String
    subject: String
    fields: [String!]
    outcome: AuditOutcome!
    reason: String
    withholdBasis: String
    hash: String!
  }
  type AccessLogEdge { cursor: String! node: AccessLogEntry! }
  type AccessLogConnection { edges: [AccessLogEdge!]! pageInfo: PageInfo! }
  input AccessLogFilter {
    clientId: String
    department: String
    resourceCode: String
    subject: String
    itemCode: String
    caseId: String
    operation: String
    outcome: AuditOutcome
    "ISO instant, inclusive"
    from: String
    "ISO instant, exclusive"
    to: String
  }
  enum FindingKind { READ_WITHOUT_CASE REFUSED_READ VOLUME_SPIKE OFF_HOURS }
  type AuditFinding { kind: FindingKind! clientId: String day: String count: Int! median: Float sample: [ID!]! }
  type InclusionProof { leafIndex: Int! treeSize: Int! entryHash: String! "sibling hashes, leaf to root (hex)" path: [String!]! }
  type AuditCheckpoint { treeSize: Int! rootHash: String! lastHash: String! signature: String! kid: String! createdAt: String! }
  "归档: a month of the log written to an archive file (the first line links to the previous archive)"
  type AuditArchive { firstSeq: Int! lastSeq: Int! entries: Int! prevHash: String! lastHash: String! sha256: String! location: String! createdAt: String! detachedAt: String }
  "A monthly partition of the log (Asia/Shanghai): attached, or detached after its archive"
  type AuditMonth { month: String! partition: String! attached: Boolean! archive: AuditArchive }

  extend type Query {
    "auditors: every entry; providers: the reads of their department's resources"
    accessLog(filter: AccessLogFilter, first: Int, after: String): AccessLogConnection!
    auditCheckpoints(first: Int): [AuditCheckpoint!]!
    "RFC 6962 audit path of entry id in the tree of treeSize entries"
    auditInclusionProof(id: ID!, treeSize: Int!): InclusionProof!
    "RFC 6962 proof that the tree of size to extends the tree of size from"
    auditConsistencyProof(from: Int!, to: Int!): [String!]!
    "审计发现 in a period (auditors): reads without a case id, refused reads, daily volume spikes, reads outside office hours"
    auditFindings(from: String!, to: String!): [AuditFinding!]!
    "the log's monthly partitions and their archives (auditors)"
    auditMonths: [AuditMonth!]!
    "a holder's own view (like Estonia's Data Tracker): who read my data, when, for which item and case"
    myAccessLog(first: Int, after: String): AccessLogConnection!
  }
`;

function instant(value: string | undefined, field: string): Date | undefined {
  if (!value) return undefined;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw badInput(`filter.${field}`, `${field} must be an ISO instant`);
  return d;
}

function cursorSeq(after: string | undefined): number | undefined {
  if (!after) return undefined;
  const seq = Number(Buffer.from(after, 'base64url').toString());
  if (!Number.isInteger(seq)) throw badInput('after', 'the cursor is not one this API gave out');
  return seq;
}

function page(rows: Entry[], first: number) {
  const edges = rows.slice(0, first).map((node) => ({ cursor: Buffer.from(String(node.seq)).toString('base64url'), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > first, endCursor: edges.at(-1)?.cursor ?? null } };
}

export const resolvers = {
  Query: {
    accessLog: async (_: unknown, a: { filter?: Record<string, string>; first?: number; after?: string }, ctx: Ctx) => {
      const p = requireRole(ctx, 'auditor', 'provider');
      const f = a.filter ?? {};
      const first = a.first ?? 50;
      if (!Number.isInteger(first) || first < 1 || first > 500) throw badInput('first', 'first must be from 1 to 500');
      // a department sees who read its own resources
      const filter = { ...f, from: instant(f.from, 'from'), to: instant(f.to, 'to'), provider: p.roles.includes('auditor') ? undefined : p.department };
      const rows = await newestEntries(ctx.db, filter, first + 1, cursorSeq(a.after));
      // an auditor's search is itself an act on the record
      await ctx.audit.append({
        clientId: p.clientId,
        department: p.department,
        operation: 'AUDIT_SEARCH',
        outcome: 'DONE',
        requestId: ctx.requestId,
        details: { filter: f, first },
        ...(f.subject ? { subject: f.subject } : {}),
      });
      return page(rows, first);
    },
    auditFindings: async (_: unknown, a: { from: string; to: string }, ctx: Ctx) => {
      const p = requireRole(ctx, 'auditor');
      const from = instant(a.from, 'from')!;
      const to = instant(a.to, 'to')!;
      const findings = await auditFindings(ctx.db, from, to);
      await ctx.audit.append({ clientId: p.clientId, department: p.department, operation: 'AUDIT_FINDINGS', outcome: 'DONE', requestId: ctx.requestId, details: { from: a.from, to: a.to, findings: findings.length } });
      return findings;
    },
    myAccessLog: async (_: unknown, a: { first?: number; after?: string }, ctx: Ctx) => {
      const holder = requireHolder(ctx);
      const first = a.first ?? 50;
      if (!Number.isInteger(first) || first < 1 || first > 500) throw badInput('first', 'first must be from 1 to 500');
      // reads withheld under a legal basis (withholdBasis) stay out of the holder's view; administrative acts too
      const conditions: SQL[] = [subjectIs(holder.subject), isNull(auditEntries.withholdBasis), inArray(auditEntries.outcome, ['RETURNED', 'NOT_FOUND'])];
      const after = cursorSeq(a.after);
      if (after !== undefined) conditions.push(lt(auditEntries.seq, after));
      const rows = await ctx.db.select().from(auditEntries).where(and(...conditions)).orderBy(desc(auditEntries.seq)).limit(first + 1);
      return page(rows, first);
    },
    auditMonths: (_: unknown, _a: unknown, ctx: Ctx) => {
      requireRole(ctx, 'auditor');
      return listAuditMonths(ctx.db);
    },
    auditCheckpoints: (_: unknown, a: { first?: number }, ctx: Ctx) =>
      ctx.db.select().from(auditCheckpoints).orderBy(desc(auditCheckpoints.treeSize)).limit(Math.min(a.first ?? 20, 200)),
    auditInclusionProof: async (_: unknown, a: { id: string; treeSize: number }, ctx: Ctx) => {
      const seq = Number(a.id);
      const [cp] = await ctx.db.select().from(auditCheckpoints).where(eq(auditCheckpoints.treeSize, a.treeSize));
      if (!cp) throw badInput('treeSize', `no checkpoint has tree size ${a.treeSize}`);
      if (!Number.isInteger(seq) || seq < 1 || seq > a.treeSize) throw badInput('id', `entry ${a.id} is not in the tree of size ${a.treeSize}`);
      return proveInclusion(ctx.db, seq, a.treeSize);
    },
    auditConsistencyProof: async (_: unknown, a: { from: number; to: number }, ctx: Ctx) => {
      const sizes = await ctx.db.select({ n: auditCheckpoints.treeSize }).from(auditCheckpoints).where(and(gte(auditCheckpoints.treeSize, a.from), lte(auditCheckpoints.treeSize, a.to)));
      const known = new Set(sizes.map((s) => s.n));
      if (!known.has(a.from) || !known.has(a.to) || a.from > a.to) throw badInput('from', 'from and to must be tree sizes of checkpoints, from ≤ to');
      return proveConsistency(ctx.db, a.from, a.to);
    },
  },
  AccessLogEntry: {
    id: (e: Entry) => String(e.seq),
    at: (e: Entry) => e.at.toISOString(),
  },
  AuditCheckpoint: { createdAt: (c: { createdAt: Date }) => c.createdAt.toISOString() },
  AuditArchive: {
    createdAt: (a: { createdAt: Date }) => a.createdAt.toISOString(),
    detachedAt: (a: { detachedAt: Date | null }) => a.detachedAt?.toISOString() ?? null,
  },
};
