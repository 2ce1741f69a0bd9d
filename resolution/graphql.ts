import type { PurposeInput } from '../basedata/query.ts';
import { requireRole, type HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
import { resolveBundle, resolveMaterials, type ResolutionPorts, type SubjectCodeType } from './resolve.ts';
import { reformStats } from './stats.ts';

export type { ResolutionPorts };
type Ctx = HubContext & ResolutionPorts;

export const typeDefs = /* GraphQL */ `
  enum MaterialOutcomeKind { PROVIDED_BY_LICENCE PROVIDED_BY_DATA WAIVABLE MUST_SUBMIT }
  "One required material (申请材料) and how it is settled, with its evidence and each candidate not used and why"
  type MaterialOutcome {
    materialCode: String!
    name: String!
    outcome: MaterialOutcomeKind!
    "LICENCE: identifier and signed credential; DATA: the 信息项 with provenance; RONGQUE: the due date; COMMITMENT: the text to sign"
    evidence: JSON
    "{ source, reason (NO_GRANT NO_RECORD EXPIRED NOT_YET_VALID SUSPENDED REVOKED CANCELLED WITHDRAWN SUPERSEDED UNDER_OBJECTION NOT_APPLICABLE NOT_HELD BLACK_LISTED), detail, ... }"
    rejected: [JSON!]!
    "the items of the application that need it (several when a bundle shares it)"
    itemCodes: [String!]!
  }
  "联合奖惩: the applicant's black-list entries that this application's measures match, and red-list fast track"
  type CreditCheck {
    checked: Boolean!
    "why not checked (NO_GRANT, NOT_HELD)"
    reason: String
    blackList: [JSON!]!
    "the 联合惩戒 measures the approval system must apply"
    measures: [String!]!
    redList: [JSON!]!
    "绿色通道: any material may follow within the fast-track time limit (容缺)"
    fastTrack: Boolean!
  }
  type ItemMaterials { itemCode: String! name: String! materials: [MaterialOutcome!]! }
  type MaterialResolution {
    itemCode: String!
    applicantCode: String!
    codeType: SubjectCodeType!
    resolvedAt: String!
    "the audit entry of this resolution"
    auditId: ID!
    materials: [MaterialOutcome!]!
    credit: CreditCheck!
    "JWS signed with the hub's receipt key (JWKS): the whole resolution, its time, caller and purpose"
    receipt: String!
  }
  "一件事: several items at once; materials they share are resolved once"
  type BundleResolution {
    bundleCode: String!
    applicantCode: String!
    codeType: SubjectCodeType!
    resolvedAt: String!
    auditId: ID!
    items: [ItemMaterials!]!
    "each distinct material once, with the items that need it"
    materials: [MaterialOutcome!]!
    credit: CreditCheck!
    receipt: String!
  }
  enum ReformPeriod { DAY MONTH }
  "减证便民: how many materials applicants no longer submitted"
  type ReformPoint {
    period: String!
    resolutions: Int!
    materials: Int!
    byLicence: Int!
    byData: Int!
    byCommitment: Int!
    deferred: Int!
    mustSubmit: Int!
    "materials replaced by a licence, shared data or a commitment, of all materials"
    share: Float!
  }

  extend type Query {
    "免提交: which of an item's materials the applicant need not bring, and the proof"
    resolveMaterials(itemCode: String!, applicantCode: String!, purpose: PurposeInput!, codeType: SubjectCodeType): MaterialResolution!
    "免提交 for a 一件事 bundle"
    resolveBundle(bundleCode: String!, applicantCode: String!, purpose: PurposeInput!, codeType: SubjectCodeType): BundleResolution!
    "the share of materials no longer submitted, per item or per bundle, by day or month (any client)"
    materialsReform(itemCode: String, bundleCode: String, from: String!, to: String!, period: ReformPeriod): [ReformPoint!]!
  }
`;

type Args = { applicantCode: string; purpose: PurposeInput; codeType?: SubjectCodeType | null };

function date(value: string, field: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw badInput(field, `${field} must be an ISO date or instant`);
  return d;
}

export const resolvers = {
  Query: {
    resolveMaterials: (_: unknown, a: Args & { itemCode: string }, ctx: Ctx) => resolveMaterials(ctx, a),
    resolveBundle: (_: unknown, a: Args & { bundleCode: string }, ctx: Ctx) => resolveBundle(ctx, a),
    materialsReform: (_: unknown, a: { itemCode?: string; bundleCode?: string; from: string; to: string; period?: 'DAY' | 'MONTH' }, ctx: Ctx) => {
      requireRole(ctx, 'consumer', 'provider', 'issuer', 'auditor', 'admin');
      return reformStats(ctx.db, { itemCode: a.itemCode ?? null, bundleCode: a.bundleCode ?? null, from: date(a.from, 'from'), to: date(a.to, 'to'), period: a.period ?? 'DAY' });
    },
  },
};
