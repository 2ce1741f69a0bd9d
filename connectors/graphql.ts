import { eq } from 'drizzle-orm';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import type { EgressPolicy } from '../core/egress.ts';
import { HubError, notFound } from '../core/errors.ts';
import { designateBaseSource, withdrawBaseSource } from './authority.ts';
import { approveConnector, configurationDigest, createConnector, getConnector, isApproved, listConnectors, recordRunRequest, updateConnector, type Connector, type ConnectorInput } from './registry.ts';
import { connectorState } from './schema.ts';
import { listSourceSecrets, setSourceSecret } from './secrets.ts';
import { listSyncRuns, readQuarantine, type SyncRun } from './sync.ts';

/** Starting work outside the request: BullMQ when Redis is configured, the in-process runner otherwise. */
export interface JobQueuePort {
  enqueue(name: 'connectors.sync' | 'licence.issue-batch', data: Record<string, unknown>, jobId?: string): Promise<string | undefined> | void;
}
export interface ConnectorPorts {
  jobs: JobQueuePort;
  /** seals source secrets */
  masterKey: Buffer;
  /** a connector's source is checked against it when it is set and approved */
  egress: EgressPolicy;
}
type Ctx = HubContext & ConnectorPorts;

export const typeDefs = /* GraphQL */ `
  enum BaseRecordKind { population legal_person credit }
  enum ConnectorAdapter { http file sql }
  enum SyncRunStatus { RUNNING SUCCEEDED FAILED }
  "DRAFT: changed since an admin approved it, or never approved; it does not run. APPROVED: runs as approved."
  enum ConnectorStatus { DRAFT APPROVED }

  type ConnectorState { cursor: JSON lastCompletedAt: String circuit: String! circuitOpenedAt: String consecutiveFailures: Int! }
  "A source adapter + mapping + validation pulling one department system into the base data"
  type Connector {
    id: ID!
    name: String!
    departmentCode: String!
    kind: BaseRecordKind!
    adapter: ConnectorAdapter!
    "adapter settings; a secret is named (\`secret\`: a source secret of the department), never held here"
    config: JSON!
    mapping: JSON!
    schedule: String
    authoritative: Boolean!
    enabled: Boolean!
    status: ConnectorStatus!
    "the clients that changed it since its last approval (none of them may approve it)"
    draftedBy: [String!]!
    approvedBy: String
    approvedAt: String
    "SHA-256 of the approved configuration"
    approvedDigest: String
    "SHA-256 of the configuration as it is now (approveConnector takes it, so what is approved is what was reviewed)"
    digest: String!
    state: ConnectorState
    runs(first: Int): [SyncRun!]!
  }
  "One sync run and its report"
  type SyncRun {
    id: ID!
    connectorId: String!
    mode: String!
    status: SyncRunStatus!
    trigger: String!
    worker: String!
    startedAt: String!
    finishedAt: String
    fetched: Int!
    inserted: Int!
    updated: Int!
    unchanged: Int!
    "quarantined records by reason code"
    quarantined: JSON!
    batches: Int!
    error: String
  }
  type QuarantinedRecord { sourceId: String! reason: String! detail: String! record: JSON! firstSeenAt: String! lastSeenAt: String! attempts: Int! resolvedAt: String }
  input ConnectorInput {
    id: ID!
    name: String!
    departmentCode: String!
    kind: BaseRecordKind!
    adapter: ConnectorAdapter!
    config: JSON!
    mapping: JSON
    schedule: String
    authoritative: Boolean
    enabled: Boolean
  }
  type SyncQueued { connectorId: String! full: Boolean! jobId: String }
  "A department's source secret: its name and version; the value is write-only"
  type SourceSecret { departmentCode: String! name: String! version: Int! updatedAt: String! }
  "A department the operator designated as a source of a base kind beside its base resource's provider"
  type BaseSource { kind: BaseRecordKind! departmentCode: String! reason: String! designatedBy: String! designatedAt: String! withdrawnAt: String }

  extend type Query {
    connectors(department: String): [Connector!]!
    connector(id: ID!): Connector
    syncRuns(connectorId: String, status: SyncRunStatus, first: Int): [SyncRun!]!
    "records that failed validation; ID numbers masked except for the source department's providers; every read is audited"
    quarantine(connectorId: String!, open: Boolean): [QuarantinedRecord!]!
    sourceSecrets(department: String!): [SourceSecret!]!
  }
  extend type Mutation {
    createConnector(input: ConnectorInput!): Connector!
    updateConnector(id: ID!, input: ConnectorInput!): Connector!
    "runs a connector now (a failed run is re-run the same way); it must be approved"
    runConnector(id: ID!, full: Boolean): SyncQueued!
    "admins: approves the connector's configuration (as its digest says, when given: a change since is CONFLICT), not by a client that changed it since its last approval"
    approveConnector(id: ID!, digest: String): Connector!
    "stores or rotates a source secret of the department (write-only)"
    setSourceSecret(department: String!, name: String!, value: String!): SourceSecret!
    "admins: designates a further source department of a base kind"
    designateBaseSource(kind: BaseRecordKind!, department: String!, reason: String!): BaseSource!
    withdrawBaseSource(kind: BaseRecordKind!, department: String!, reason: String!): BaseSource!
  }
`;

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

/** Connectors, their runs and quarantine are the owning department's (and admins', and auditors' to read). */
async function readable(ctx: Ctx, id: string): Promise<Connector> {
  requireRole(ctx, 'provider', 'admin', 'auditor');
  const c = await getConnector(ctx.db, id);
  if (!c) throw notFound(`connector ${id}`);
  if (!ctx.principal.roles.includes('auditor')) requireOwnDepartment(ctx, c.departmentCode, `connector ${id}`);
  return c;
}

export const resolvers = {
  Query: {
    connectors: (_: unknown, a: { department?: string }, ctx: Ctx) => {
      const p = requireRole(ctx, 'provider', 'admin', 'auditor');
      const privileged = p.roles.includes('admin') || p.roles.includes('auditor');
      return listConnectors(ctx.db, privileged ? (a.department ?? null) : p.department);
    },
    connector: async (_: unknown, a: { id: string }, ctx: Ctx) => readable(ctx, a.id),
    syncRuns: async (_: unknown, a: { connectorId?: string; status?: string; first?: number }, ctx: Ctx) => {
      if (a.connectorId) await readable(ctx, a.connectorId);
      else requireRole(ctx, 'admin', 'auditor');
      return listSyncRuns(ctx.db, a, Math.min(a.first ?? 50, 200));
    },
    quarantine: async (_: unknown, a: { connectorId: string; open?: boolean }, ctx: Ctx) => readQuarantine(ctx, await readable(ctx, a.connectorId), a.open ?? true),
    sourceSecrets: (_: unknown, a: { department: string }, ctx: Ctx) => listSourceSecrets(ctx, a.department),
  },
  Mutation: {
    createConnector: (_: unknown, a: { input: ConnectorInput }, ctx: Ctx) => createConnector(ctx, a.input, { egress: ctx.egress }),
    updateConnector: (_: unknown, a: { id: string; input: ConnectorInput }, ctx: Ctx) => updateConnector(ctx, a.id, a.input, { egress: ctx.egress }),
    approveConnector: (_: unknown, a: { id: string; digest?: string | null }, ctx: Ctx) => approveConnector(ctx, a.id, { egress: ctx.egress }, a.digest ?? null),
    setSourceSecret: (_: unknown, a: { department: string; name: string; value: string }, ctx: Ctx) => setSourceSecret(ctx, ctx.masterKey, a.department, a.name, a.value),
    designateBaseSource: (_: unknown, a: { kind: string; department: string; reason: string }, ctx: Ctx) => designateBaseSource(ctx, a.kind, a.department, a.reason),
    withdrawBaseSource: (_: unknown, a: { kind: string; department: string; reason: string }, ctx: Ctx) => withdrawBaseSource(ctx, a.kind, a.department, a.reason),
    runConnector: async (_: unknown, a: { id: string; full?: boolean }, ctx: Ctx) => {
      const c = await readable(ctx, a.id);
      requireRole(ctx, 'provider', 'admin');
      if (!isApproved(c)) throw new HubError('FORBIDDEN', `connector ${c.id} is not approved in its current configuration: an admin approves it first (approveConnector)`, { reason: 'NOT_APPROVED' });
      await recordRunRequest(ctx, c, Boolean(a.full));
      const jobId = await ctx.jobs.enqueue('connectors.sync', { connectorId: c.id, full: Boolean(a.full), trigger: `graphql:${ctx.principal.clientId}` });
      return { connectorId: c.id, full: Boolean(a.full), jobId: jobId ?? null };
    },
  },
  Connector: {
    approvedAt: (c: Connector) => iso(c.approvedAt),
    // the digest an approval would record: what an admin reviews
    digest: (c: Connector) => configurationDigest(c),
    state: async (c: Connector, _: unknown, ctx: Ctx) => {
      const [s] = await ctx.db.select().from(connectorState).where(eq(connectorState.connectorId, c.id));
      return s ? { ...s, lastCompletedAt: iso(s.lastCompletedAt), circuitOpenedAt: iso(s.circuitOpenedAt) } : null;
    },
    runs: (c: Connector, a: { first?: number }, ctx: Ctx) => listSyncRuns(ctx.db, { connectorId: c.id }, Math.min(a.first ?? 10, 100)),
  },
  SyncRun: {
    startedAt: (r: SyncRun) => iso(r.startedAt),
    finishedAt: (r: SyncRun) => iso(r.finishedAt),
  },
  SourceSecret: { updatedAt: (s: { updatedAt: Date }) => iso(s.updatedAt) },
  BaseSource: { designatedAt: (s: { designatedAt: Date }) => iso(s.designatedAt), withdrawnAt: (s: { withdrawnAt: Date | null }) => iso(s.withdrawnAt) },
  QuarantinedRecord: {
    firstSeenAt: (q: { firstSeenAt: Date }) => iso(q.firstSeenAt),
    lastSeenAt: (q: { lastSeenAt: Date }) => iso(q.lastSeenAt),
    resolvedAt: (q: { resolvedAt: Date | null }) => iso(q.resolvedAt),
  },
};
