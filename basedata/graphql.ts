import type { GraphQLResolveInfo } from 'graphql';
import { forEachSelected } from '../core/selection.ts';
import type { HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
import { maskValue, readBase, type PurposeInput, type QueryPorts, type ReadRequest, type ReadResult } from './query.ts';
import type { BaseRecordKind } from './schema.ts';
import type { BaseRecordView } from './store.ts';
import { inForce } from './credit.ts';
import { departmentsOf, provenance, withProvenance } from './provenance.ts';

type Ctx = HubContext & QueryPorts;

export const MAX_BATCH = 100;

export const typeDefs = /* GraphQL */ `
  "用途: 事项编码 and 办件编号 of the case the read serves"
  input PurposeInput {
    "事项编码 (a registered service item)"
    itemCode: String!
    "办件编号"
    caseId: String
    "经办人"
    operator: String
    "hides the read from the holder's own view, with the legal basis (clients with that permission only)"
    withholdBasis: String
  }
  type Provenance { resourceCode: String! sourceDepartment: String connector: String! sourceRecordId: String! retrievedAt: String! version: Int! recordedAt: String! }
  "人口基础信息"
  type Person {
    idNumber: String
    name: String
    gender: String
    ethnicity: String
    birthDate: String
    birthPlace: String
    householdAddress: String
    registrationAuthority: String
    maritalStatus: String
    deceased: Boolean
    provenance: Provenance!
  }
  enum LegalPersonStatus { EXISTING OPERATING REVOKED CANCELLED MOVED_OUT }
  type LegalRepresentative { name: String idNumber: String }
  "法人单位基础信息"
  type LegalPerson {
    uscc: String
    name: String
    orgType: String
    legalRepresentative: LegalRepresentative
    registeredCapital: Float
    establishedOn: String
    address: String
    businessScope: String
    registrationAuthority: String
    status: LegalPersonStatus
    approvedOn: String
    provenance: Provenance!
  }
  "A 红名单 / 黑名单 entry, a 双公示 permit or sanction"
  type CreditEntry { entryId: String! subjectName: String authority: String reason: String basis: String listedOn: String validUntil: String repairedAt: String measures: [String!]! }
  "公共信用信息: the lists an approval system must act on (信用修复 and expired entries leave them, and stay in history)"
  type CreditProfile {
    subjectCode: String
    redList: [CreditEntry!]
    blackList: [CreditEntry!]
    sanctions: [CreditEntry!]
    permits: [CreditEntry!]
    "联合奖惩 measures in force"
    measures: [String!]
    provenance: Provenance
  }

  extend type Query {
    person(idNumber: String!, purpose: PurposeInput!, asOf: String): Person
    legalPerson(uscc: String!, purpose: PurposeInput!, asOf: String): LegalPerson
    creditProfile(subjectCode: String!, purpose: PurposeInput!): CreditProfile
    "up to 100 at once, in the order asked; null for a subject the hub does not hold"
    persons(idNumbers: [String!]!, purpose: PurposeInput!, asOf: String): [Person]!
    legalPersons(usccs: [String!]!, purpose: PurposeInput!, asOf: String): [LegalPerson]!
  }
`;

const NOT_ITEMS = new Set(['provenance', '__typename']);

/** What a query selected: its 信息项 (field names are the 信息项 codes), through fragments too, and whether provenance. */
interface Selection {
  fields: Set<string>;
  provenance: boolean;
}

function selectionOf(info: GraphQLResolveInfo): Selection {
  const out: Selection = { fields: new Set(), provenance: false };
  forEachSelected(info, (name) => {
    if (!NOT_ITEMS.has(name)) out.fields.add(name);
    else if (name === 'provenance') out.provenance = true;
  });
  return out;
}

/** Only the selected 信息项 leave the hub, sensitive ones masked unless the grant allows them unmasked. */
function shape(data: Record<string, unknown>, fields: string[], unmasked: Set<string>, sensitive: Set<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) out[f] = sensitive.has(f) && !unmasked.has(f) ? maskValue(f, data[f]) : data[f];
  return out;
}

async function single(ctx: Ctx, info: GraphQLResolveInfo, kind: BaseRecordKind, operation: ReadRequest['operation'], subjects: string[], purpose: PurposeInput, asOf?: string | null) {
  if (subjects.length > MAX_BATCH) throw badInput('subjects', `at most ${MAX_BATCH} subjects per call`);
  const selection = selectionOf(info);
  const fields = [...selection.fields];
  // records are read without provenance when the query does not select it; a credit profile is built from whole
  // entries, with theirs
  const readsProvenance = selection.provenance || kind === 'credit';
  const results = await readBase(ctx, { kind, operation, subjects: subjects.map((s) => s.trim().toUpperCase()), fields, provenance: readsProvenance, purpose, asOf: asOf ?? null });
  if (!readsProvenance) return results.map((r) => recordView(r, fields));
  const views = results.map((r) => withProvenance(r.record ?? []));
  const depts = await departmentsOf(ctx.db, views.flat());
  return results.map((r, i) => {
    const records = views[i]!;
    if (kind === 'credit') return creditProfile(r, records, fields, depts);
    // built only when selected (provenanceOf calls the function)
    return recordView(r, fields, records[0] && provenance.bind(null, records[0], r.resourceCode, depts));
  });
}

function recordView(r: ReadResult, fields: string[], provenanceOf?: () => unknown) {
  const rec = r.record?.[0];
  if (!rec) return null;
  const view = shape(rec.data, fields, r.unmasked, r.sensitive);
  if (provenanceOf) view.provenance = provenanceOf;
  return view;
}

function creditProfile(r: ReadResult, records: BaseRecordView[], fields: string[], depts: Map<string, string>) {
  if (!records.length) return null;
  const today = new Date().toISOString().slice(0, 10);
  const entries = records.map((x) => x.data);
  const current = (e: Record<string, unknown>) => inForce(e, today);
  const of = (type: string) => entries.filter((e) => e.listType === type);
  const entry = (e: Record<string, unknown>) => ({ ...e, measures: (e.measures as string[] | null) ?? [] });
  const data: Record<string, unknown> = {
    subjectCode: r.subject,
    redList: of('RED').filter(current).map(entry),
    blackList: of('BLACK').filter(current).map(entry),
    sanctions: of('SANCTION').map(entry),
    permits: of('PERMIT').map(entry),
    measures: [...new Set([...of('BLACK'), ...of('RED')].filter(current).flatMap((e) => (e.measures as string[] | null) ?? []))],
  };
  const newest = records.reduce((a, b) => (a.recordedAt > b.recordedAt ? a : b));
  return { ...shape(data, fields, r.unmasked, r.sensitive), provenance: () => provenance(newest, r.resourceCode, depts) };
}

type Args<K extends string> = Record<K, string> & { purpose: PurposeInput; asOf?: string | null };

/** A record's provenance, made when the query selects it. */
const provenanceOf = (parent: { provenance: () => unknown }) => parent.provenance();

export const resolvers = {
  Person: { provenance: provenanceOf },
  LegalPerson: { provenance: provenanceOf },
  CreditProfile: { provenance: provenanceOf },
  Query: {
    person: async (_: unknown, a: Args<'idNumber'>, ctx: Ctx, info: GraphQLResolveInfo) => (await single(ctx, info, 'population', 'PERSON_READ', [a.idNumber], a.purpose, a.asOf))[0],
    legalPerson: async (_: unknown, a: Args<'uscc'>, ctx: Ctx, info: GraphQLResolveInfo) => (await single(ctx, info, 'legal_person', 'LEGAL_PERSON_READ', [a.uscc], a.purpose, a.asOf))[0],
    creditProfile: async (_: unknown, a: Args<'subjectCode'>, ctx: Ctx, info: GraphQLResolveInfo) => (await single(ctx, info, 'credit', 'CREDIT_READ', [a.subjectCode], a.purpose))[0],
    persons: (_: unknown, a: { idNumbers: string[]; purpose: PurposeInput; asOf?: string }, ctx: Ctx, info: GraphQLResolveInfo) => single(ctx, info, 'population', 'PERSON_READ', a.idNumbers, a.purpose, a.asOf),
    legalPersons: (_: unknown, a: { usccs: string[]; purpose: PurposeInput; asOf?: string }, ctx: Ctx, info: GraphQLResolveInfo) => single(ctx, info, 'legal_person', 'LEGAL_PERSON_READ', a.usccs, a.purpose, a.asOf),
  },
};
