import { actorOf, requireRole, type HubContext } from '../core/context.ts';
import { badInput, notFound } from '../core/errors.ts';
import {
  decideAccessRequest,
  listAccessRequests,
  listGrants,
  requestAccess,
  revokeGrant,
  type AccessRequest,
  type AccessRequestInput,
  type Grant,
  type GrantChecker,
} from './access.ts';
import { calendarYear, loadWorkingCalendar, type CalendarInput } from './calendar.ts';
import { exportCatalogue, importCatalogue } from './catalogue.ts';
import { getDepartment, listDepartments } from './departments.ts';
import { getBundle, getServiceItem, listBundles, materialsOf, registerBundle, registerServiceItem, searchServiceItems, type ServiceItem, type ServiceItemInput } from './items.ts';
import type { EgressPolicy } from '../core/egress.ts';
import { listNotifications, setWebhook } from './notifications.ts';
import {
  encodeCursor,
  getCurrentResource,
  getResourceVersion,
  listResourceVersions,
  publishResource,
  registerResource,
  retireResource,
  searchResources,
  updateResource,
  type Page,
  type Resource,
  type ResourceFilter,
  type ResourceInput,
} from './resources.ts';

/** What the directory's resolvers need beyond the common context. */
export interface DirectoryPorts {
  grants: GrantChecker;
  masterKey: Buffer;
  /** what the hub may call (HUB_EGRESS_ALLOW): webhooks must pass it */
  egress: EgressPolicy;
}
type Ctx = HubContext & DirectoryPorts;

export const typeDefs = /* GraphQL */ `
  enum ResourceCategory { BASE THEME DEPARTMENT }
  enum BaseKind { POPULATION LEGAL_PERSON CREDIT LICENCE GEO MACRO }
  enum SharingType { UNCONDITIONAL CONDITIONAL NONE }
  enum OpenType { UNCONDITIONAL CONDITIONAL NONE }
  enum ResourceStatus { DRAFT PUBLISHED RETIRED }
  enum AccessRequestStatus { PENDING APPROVED REFUSED }
  enum MaterialTolerance { NONE RONGQUE COMMITMENT }
  enum CatalogueFormat { GBT21063 DCAT_AP }

  type PageInfo { hasNextPage: Boolean! endCursor: String }

  type Department { code: String! name: String! region: String! level: String! }

  "信息项"
  type ResourceField { code: String! name: String! dataType: String! length: Int sensitive: Boolean! }

  "政务信息资源 (one version of it)"
  type Resource {
    code: String!
    version: Int!
    "true for the version in force"
    current: Boolean!
    name: String!
    category: ResourceCategory!
    baseKind: BaseKind
    providerCode: String!
    provider: Department
    summary: String
    format: String
    updateCycle: String
    sharingType: SharingType!
    sharingCondition: String
    sharingMethod: String
    legalBasis: String
    openType: OpenType!
    openCondition: String
    relatedCodes: [String!]!
    fields: [ResourceField!]!
    status: ResourceStatus!
    publishedAt: String
    retiredAt: String
    retiredReason: String
    updatedAt: String!
    "every version, oldest first"
    versions: [Resource!]!
  }
  type ResourceEdge { cursor: String! node: Resource! }
  type ResourceConnection { edges: [ResourceEdge!]! pageInfo: PageInfo! totalCount: Int! }

  input ResourceFieldInput { code: String! name: String! dataType: String! length: Int sensitive: Boolean }
  input ResourceInput {
    code: String!
    name: String!
    category: ResourceCategory!
    baseKind: BaseKind
    providerCode: String!
    summary: String
    format: String
    updateCycle: String
    sharingType: SharingType!
    sharingCondition: String
    sharingMethod: String
    legalBasis: String
    openType: OpenType
    openCondition: String
    relatedCodes: [String!]
    fields: [ResourceFieldInput!]!
  }
  input ResourceFilter { department: String baseKind: BaseKind sharingType: SharingType status: ResourceStatus }

  "共享申请"
  type AccessRequest {
    id: ID!
    resourceCode: String!
    resourceVersion: Int!
    clientId: String!
    department: String!
    providerCode: String!
    fields: [String!]!
    fullFields: [String!]!
    itemCodes: [String!]!
    "on the licence base resource: the 证照类型 it opens (调用权限)"
    licenceTypes: [String!]
    purpose: String!
    legalBasis: String
    validUntil: String
    status: AccessRequestStatus!
    reason: String
    "reply due by (10 working days, Asia/Shanghai)"
    dueAt: String
    "true when a year of the due period has no loaded holiday calendar (weekends only were skipped)"
    dueProvisional: Boolean!
    overdue: Boolean!
    decidedBy: String
    decidedAt: String
    createdAt: String!
  }
  input AccessRequestInput {
    resourceCode: String!
    fields: [String!]!
    fullFields: [String!]
    itemCodes: [String!]!
    "on the licence base resource: the 证照类型 it opens (调用权限); a request without them asks for the types its items' materials name"
    licenceTypes: [String!]
    purpose: String!
    legalBasis: String
    validUntil: String
  }
  input AccessRequestFilter { status: AccessRequestStatus overdue: Boolean resourceCode: String }

  "授权"
  type Grant {
    id: ID!
    requestId: ID
    clientId: String!
    resourceCode: String!
    fields: [String!]!
    unmaskedFields: [String!]!
    itemCodes: [String!]!
    "on the licence base resource: the 证照类型 it opens (调用权限)"
    licenceTypes: [String!]
    expiresAt: String
    grantedBy: String!
    createdAt: String!
    revokedAt: String
    revokedBy: String
    revokeReason: String
    active: Boolean!
  }

  "What the caller may use, like X-Road's allowedMethods"
  type AllowedResource {
    resource: Resource!
    fields: [String!]!
    unmaskedFields: [String!]!
    itemCodes: [String!]!
    "on the licence base resource: the 证照类型 it opens (调用权限)"
    licenceTypes: [String!]
    expiresAt: String
  }

  union MaterialSourceUnion = LicenceSource | DataSource | SubmitSource
  type LicenceSource { licenceTypeCode: String! }
  type DataSource { resourceCode: String! fields: [String!]! }
  type SubmitSource { submit: Boolean! }

  "申请材料"
  type Material {
    code: String!
    name: String!
    "alternative sources, in order of preference"
    sources: [MaterialSourceUnion!]!
    tolerance: MaterialTolerance!
    "容缺: working days within which the material must follow"
    toleranceDays: Int
    "告知承诺: the commitment the applicant signs"
    commitmentText: String
  }
  "政务服务事项"
  type ServiceItem {
    code: String!
    name: String!
    departmentCode: String!
    department: Department
    "联合奖惩 measure codes that apply"
    measureCodes: [String!]!
    materials: [Material!]!
  }
  type ServiceItemEdge { cursor: String! node: ServiceItem! }
  type ServiceItemConnection { edges: [ServiceItemEdge!]! pageInfo: PageInfo! totalCount: Int! }
  "一件事"
  type Bundle { code: String! name: String! items: [ServiceItem!]! }

  input MaterialSourceInput { kind: String! licenceTypeCode: String resourceCode: String fields: [String!] }
  input MaterialInput {
    code: String!
    name: String!
    sources: [MaterialSourceInput!]!
    tolerance: MaterialTolerance
    toleranceDays: Int
    commitmentText: String
  }
  input ServiceItemInput { code: String! name: String! departmentCode: String! measureCodes: [String!] materials: [MaterialInput!]! }
  input BundleInput { code: String! name: String! itemCodes: [String!]! }

  type Notification { id: ID! kind: String! subjectId: String! payload: JSON! createdAt: String! deliveredAt: String attempts: Int! lastError: String }
  type Webhook { url: String! "shown once: the HMAC-SHA256 key for x-hub-signature" secret: String! }

  enum CalendarDayKind { HOLIDAY WORKDAY }
  type CalendarDay { day: String! kind: CalendarDayKind! name: String! }
  type CalendarYear { year: Int! source: String loadedAt: String days: [CalendarDay!]! }
  input CalendarDayInput { day: String! kind: CalendarDayKind! name: String! }
  type CalendarLoadResult { year: Int! holidays: Int! workdays: Int! }
  type CatalogueImportResult { created: Int! updated: Int! unchanged: Int! }

  extend type Query {
    departments: [Department!]!
    resources(query: String, first: Int, after: String, filter: ResourceFilter): ResourceConnection!
    resource(code: String!, version: Int): Resource
    accessRequests(filter: AccessRequestFilter, first: Int): [AccessRequest!]!
    grants(resourceCode: String, clientId: String, active: Boolean): [Grant!]!
    allowedResources: [AllowedResource!]!
    serviceItems(query: String, first: Int, after: String): ServiceItemConnection!
    serviceItem(code: String!): ServiceItem
    bundles: [Bundle!]!
    bundle(code: String!): Bundle
    notifications(department: String, first: Int): [Notification!]!
    workingCalendar(year: Int!): CalendarYear!
    exportCatalogue(format: CatalogueFormat!): JSON!
  }

  type Mutation {
    registerResource(input: ResourceInput!): Resource!
    updateResource(code: String!, input: ResourceInput!): Resource!
    publishResource(code: String!): Resource!
    retireResource(code: String!, reason: String!): Resource!
    requestAccess(input: AccessRequestInput!): AccessRequest!
    "the provider approves (narrowing 信息项, unmasked 信息项 and licence types, never widening) or refuses with a reason"
    decideAccessRequest(id: ID!, approve: Boolean!, reason: String, fields: [String!], fullFields: [String!], licenceTypes: [String!]): AccessRequest!
    revokeGrant(id: ID!, reason: String!): Grant!
    registerServiceItem(input: ServiceItemInput!): ServiceItem!
    registerBundle(input: BundleInput!): Bundle!
    setWebhook(department: String!, url: String!): Webhook!
    loadWorkingCalendar(year: Int!, source: String!, days: [CalendarDayInput!]!): CalendarLoadResult!
    importCatalogue(document: JSON!): CatalogueImportResult!
  }
`;

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

function pageSize(first: number | null | undefined): number {
  if (first == null) return 20;
  if (!Number.isInteger(first) || first < 1 || first > 100) throw badInput('first', 'first must be from 1 to 100');
  return first;
}

function connection<T>(page: Page<T>, key: (t: T) => string) {
  const edges = page.items.map((node) => ({ cursor: encodeCursor(key(node)), node }));
  return { edges, pageInfo: { hasNextPage: page.hasNextPage, endCursor: edges.at(-1)?.cursor ?? null }, totalCount: page.totalCount };
}

/** A draft is visible to its own department and admins only. */
function visible(ctx: Ctx, r: Resource | undefined): Resource | null {
  if (!r) return null;
  if (r.status === 'DRAFT' && !ctx.principal.roles.includes('admin') && ctx.principal.department !== r.providerCode) return null;
  return r;
}

export const resolvers = {
  Query: {
    departments: (_: unknown, __: unknown, ctx: Ctx) => listDepartments(ctx.db),
    resources: async (_: unknown, a: { query?: string; first?: number; after?: string; filter?: ResourceFilter }, ctx: Ctx) =>
      connection(await searchResources(ctx, { ...a.filter, query: a.query ?? null }, pageSize(a.first), a.after ?? null), (r) => r.code),
    resource: async (_: unknown, a: { code: string; version?: number }, ctx: Ctx) =>
      visible(ctx, a.version ? await getResourceVersion(ctx.db, a.code, a.version) : await getCurrentResource(ctx.db, a.code)),
    accessRequests: (_: unknown, a: { filter?: Parameters<typeof listAccessRequests>[1]; first?: number }, ctx: Ctx) =>
      listAccessRequests(ctx, a.filter ?? {}, Math.min(pageSize(a.first ?? 100), 100)),
    grants: (_: unknown, a: { resourceCode?: string; clientId?: string; active?: boolean }, ctx: Ctx) => listGrants(ctx, a),
    allowedResources: (_: unknown, __: unknown, ctx: Ctx) => ctx.grants.allowed(requireRole(ctx, 'consumer', 'provider', 'issuer', 'auditor', 'admin').clientId),
    serviceItems: async (_: unknown, a: { query?: string; first?: number; after?: string }, ctx: Ctx) =>
      connection(await searchServiceItems(ctx.db, a.query, pageSize(a.first), a.after ?? null), (i) => i.code),
    serviceItem: async (_: unknown, a: { code: string }, ctx: Ctx) => (await getServiceItem(ctx.db, a.code)) ?? null,
    bundles: (_: unknown, __: unknown, ctx: Ctx) => listBundles(ctx.db),
    bundle: async (_: unknown, a: { code: string }, ctx: Ctx) => (await getBundle(ctx.db, a.code)) ?? null,
    notifications: (_: unknown, a: { department?: string; first?: number }, ctx: Ctx) => listNotifications(ctx, a.department ?? null, pageSize(a.first ?? 50)),
    workingCalendar: (_: unknown, a: { year: number }, ctx: Ctx) => calendarYear(ctx.db, a.year),
    exportCatalogue: (_: unknown, a: { format: 'GBT21063' | 'DCAT_AP' }, ctx: Ctx) => exportCatalogue(ctx, a.format),
  },
  Mutation: {
    registerResource: (_: unknown, a: { input: ResourceInput }, ctx: Ctx) => registerResource(ctx, a.input),
    updateResource: (_: unknown, a: { code: string; input: ResourceInput }, ctx: Ctx) => updateResource(ctx, a.code, a.input),
    publishResource: (_: unknown, a: { code: string }, ctx: Ctx) => publishResource(ctx, a.code),
    retireResource: (_: unknown, a: { code: string; reason: string }, ctx: Ctx) => retireResource(ctx, a.code, a.reason),
    requestAccess: (_: unknown, a: { input: AccessRequestInput }, ctx: Ctx) => requestAccess(ctx, a.input),
    decideAccessRequest: (_: unknown, a: { id: string; approve: boolean; reason?: string; fields?: string[]; fullFields?: string[]; licenceTypes?: string[] }, ctx: Ctx) =>
      decideAccessRequest(ctx, a.id, a),
    revokeGrant: (_: unknown, a: { id: string; reason: string }, ctx: Ctx) => revokeGrant(ctx, a.id, a.reason),
    registerServiceItem: (_: unknown, a: { input: ServiceItemInput }, ctx: Ctx) => registerServiceItem(ctx, a.input),
    registerBundle: async (_: unknown, a: { input: { code: string; name: string; itemCodes: string[] } }, ctx: Ctx) => {
      await registerBundle(ctx, a.input);
      return getBundle(ctx.db, a.input.code);
    },
    setWebhook: (_: unknown, a: { department: string; url: string }, ctx: Ctx) => setWebhook(ctx, ctx.masterKey, ctx.egress, a.department, a.url),
    loadWorkingCalendar: (_: unknown, a: CalendarInput, ctx: Ctx) => {
      requireRole(ctx, 'admin');
      return loadWorkingCalendar(ctx.db, a, actorOf(ctx));
    },
    importCatalogue: (_: unknown, a: { document: unknown }, ctx: Ctx) => importCatalogue(ctx, a.document),
  },
  Resource: {
    provider: (r: Resource, _: unknown, ctx: Ctx) => getDepartment(ctx.db, r.providerCode),
    publishedAt: (r: Resource) => iso(r.publishedAt),
    retiredAt: (r: Resource) => iso(r.retiredAt),
    updatedAt: (r: Resource) => iso(r.updatedAt),
    versions: (r: Resource, _: unknown, ctx: Ctx) => listResourceVersions(ctx.db, r.code),
  },
  AccessRequest: {
    department: (r: AccessRequest) => r.departmentCode,
    validUntil: (r: AccessRequest) => iso(r.validUntil),
    dueAt: (r: AccessRequest) => iso(r.dueAt),
    overdue: (r: AccessRequest) => r.status === 'PENDING' && r.dueAt !== null && r.dueAt.getTime() < Date.now(),
    decidedAt: (r: AccessRequest) => iso(r.decidedAt),
    createdAt: (r: AccessRequest) => iso(r.createdAt),
  },
  Grant: {
    expiresAt: (g: Grant) => iso(g.expiresAt),
    createdAt: (g: Grant) => iso(g.createdAt),
    revokedAt: (g: Grant) => iso(g.revokedAt),
    active: (g: Grant) => !g.revokedAt && (!g.expiresAt || g.expiresAt.getTime() > Date.now()),
  },
  AllowedResource: { expiresAt: (a: { expiresAt: Date | null }) => iso(a.expiresAt) },
  ServiceItem: {
    department: (i: ServiceItem, _: unknown, ctx: Ctx) => getDepartment(ctx.db, i.departmentCode),
    materials: async (i: ServiceItem, _: unknown, ctx: Ctx) => (await materialsOf(ctx.db, [i.code])).get(i.code) ?? [],
  },
  MaterialSourceUnion: {
    __resolveType: (s: { kind: string }) => (s.kind === 'LICENCE' ? 'LicenceSource' : s.kind === 'DATA' ? 'DataSource' : 'SubmitSource'),
  },
  SubmitSource: { submit: () => true },
  Bundle: {
    items: async (b: { itemCodes: string[] }, _: unknown, ctx: Ctx) => {
      const items = await Promise.all(b.itemCodes.map((c) => getServiceItem(ctx.db, c)));
      return items.filter((i): i is ServiceItem => {
        if (!i) throw notFound('a bundled service item');
        return true;
      });
    },
  },
  Notification: {
    createdAt: (n: { createdAt: Date }) => iso(n.createdAt),
    deliveredAt: (n: { deliveredAt: Date | null }) => iso(n.deliveredAt),
  },
  CalendarYear: { loadedAt: (y: { loadedAt: Date | null }) => iso(y.loadedAt) },
};
