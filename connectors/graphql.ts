import { eq } from 'drizzle-orm';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { notFound } from '../core/errors.ts';
import { createConnector, getConnector, listConnectors, updateConnector, type Connector, type ConnectorInput } from './registry.ts';
import { connectorState } from './schema.ts';
import { listQuarantine, listSyncRuns, type SyncRun } from './sync.ts';

/** Starting work outside the request: BullMQ when Redis is configured, the in-process runner otherwise. */
export interface JobQueuePort {
  enqueue(name: 'connectors.sync' | 'licence.issue-batch', data: Record<string, unknown>, jobId?: string): Promise<string | undefined> | void;
}
export interface ConnectorPorts {
  jobs: JobQueuePort;
}
type Ctx = HubContext & ConnectorPorts;

export const typeDefs = /* GraphQL */ `
  enum BaseRecordKind { population legal_person credit }
  enum ConnectorAdapter { http file sql }
  enum SyncRunStatus { RUNNING SUCCEEDED FAILED }

  type ConnectorState { cursor: JSON lastCompletedAt: String circuit: String! circuitOpenedAt: String consecutiveFailures: Int! }
  "A source adapter + mapping + validation pulling one department system into the base data"
  type Connector {
    id: ID!
    name: String!
    departmentCode: String!
    kind: BaseRecordKind!
    adapter: ConnectorAdapter!
    "adapter settings; secrets are named by environment variable, never stored"
    config: JSON!
    mapping: JSON!
    schedule: String
    authoritative: Boolean!
    enabled: Boolean!
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

  extend type Query {
    connectors(department: String): [Connector!]!
    connector(id: ID!): Connector
    syncRuns(connectorId: String, status: SyncRunStatus, first: Int): [SyncRun!]!
    quarantine(connectorId: String!, open: Boolean): [QuarantinedRecord!]!
  }
  extend type Mutation {
    createConnector(input: ConnectorInput!): Connector!
    updateConnector(id: ID!, input: ConnectorInput!): Connector!
    "runs a connector now (a failed run is re-run the same way)"
    runConnector(id: ID!, full: Boolean): SyncQueued!
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
    quarantine: async (_: unknown, a: { connectorId: string; open?: boolean }, ctx: Ctx) => {
      await readable(ctx, a.connectorId);
      return listQuarantine(ctx.db, a.connectorId, a.open ?? true);
    },
  },
  Mutation: {
    createConnector: (_: unknown, a: { input: ConnectorInput }, ctx: Ctx) => createConnector(ctx, a.input),
    updateConnector: (_: unknown, a: { id: string; input: ConnectorInput }, ctx: Ctx) => updateConnector(ctx, a.id, a.input),
    runConnector: async (_: unknown, a: { id: string; full?: boolean }, ctx: Ctx) => {
      const c = await readable(ctx, a.id);
      requireRole(ctx, 'provider', 'admin');
      const jobId = await ctx.jobs.enqueue('connectors.sync', { connectorId: c.id, full: Boolean(a.full), trigger: `graphql:${ctx.principal.clientId}` });
      return { connectorId: c.id, full: Boolean(a.full), jobId: jobId ?? null };
    },
  },
  Connector: {
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
  QuarantinedRecord: {
    firstSeenAt: (q: { firstSeenAt: Date }) => iso(q.firstSeenAt),
    lastSeenAt: (q: { lastSeenAt: Date }) => iso(q.lastSeenAt),
    resolvedAt: (q: { resolvedAt: Date | null }) => iso(q.resolvedAt),
  },
};
