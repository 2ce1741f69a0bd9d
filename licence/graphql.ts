import { eq } from 'drizzle-orm';
import type { GraphQLResolveInfo } from 'graphql';
import { maskIdNumbers } from '../core/ids.ts';
import { selectedFieldNames } from '../core/selection.ts';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { HubError } from '../core/errors.ts';
import type { JobQueuePort } from '../connectors/graphql.ts';
import { getDepartment } from '../directory/departments.ts';
import { attachHeader, HOLDER_CODE_TYPE_GBT } from './credentials.ts';
import { licenceNotFound } from './errors.ts';
import {
  authoriseLicenceUse,
  decideLicenceObjection,
  myLicenceAuthorisations,
  myLicences,
  objectionsOf,
  objectToLicence,
  pendingObjections,
  presentLicence,
  revokeLicenceAuthorisation,
  type LicenceAuthorisation,
  type LicenceObjection,
} from './holder.ts';
import {
  changeLicence,
  createLicenceBatch,
  effectiveStatus,
  expiringLicences,
  getLicence,
  getLicenceBatch,
  issueLicence,
  reinstateLicence,
  renewLicence,
  revokeLicence,
  suspendLicence,
  type IssueLicenceInput,
  type LicenceRow,
  type RevocationKind,
} from './issue.ts';
import { rotateDepartmentKey, revokeSigningCertificate, type SignerRow } from './pki.ts';
import { faceFor, holderCodeFor, metadataFor, missingForAllClaims, numberFor, presentationFor, type LicenceView } from './disclosure.ts';
import { licenceItemsOf, listLicenceUses, listMyLicenceUses, listUseNotices, readLicences, type LicenceReadPorts, type PurposeInput } from './query.ts';
import { licences, licenceSigners } from './schema.ts';
import { getLicenceType, listLicenceTypes, registerLicenceType, type LicenceType, type LicenceTypeInput } from './types.ts';
import type { LicenceRuntime } from './runtime.ts';
import type { LicenceVerification, VerifiedLicence } from './verify.ts';

export interface LicenceGraphqlPorts extends LicenceReadPorts {
  licence: LicenceRuntime;
  jobs: JobQueuePort;
}
type Ctx = HubContext & LicenceGraphqlPorts;

export const typeDefs = /* GraphQL */ `
  "有效 暂扣 撤销 注销 吊销 失效, and SUPERSEDED: replaced by a new version"
  enum LicenceStatus { VALID SUSPENDED REVOKED CANCELLED WITHDRAWN EXPIRED SUPERSEDED }
  enum VerificationReason { SIGNATURE CHAIN CERT_NOT_VALID_AT_ISSUANCE REVOKED SUSPENDED SUPERSEDED EXPIRED NOT_YET_VALID CHECK_DIGIT DISCLOSURE MALFORMED }
  "撤销 REVOKED | 注销 CANCELLED | 吊销 WITHDRAWN"
  enum RevocationKind { REVOKED CANCELLED WITHDRAWN }
  enum HolderKind { PERSON LEGAL_PERSON }

  "照面信息: one face field of a licence type"
  type LicenceFaceField { code: String! name: String! dataType: String! length: Int sensitive: Boolean! required: Boolean! }

  "证照目录: a licence type"
  type LicenceType {
    code: String!
    name: String!
    definingDepartment: String!
    holderKind: HolderKind!
    issuers: [String!]!
    faceFields: [LicenceFaceField!]!
    "default validity in years; null = no expiry"
    validityYears: Int
    "证照编号 is a personal identifier (居民身份证): masked, and selectively disclosed in the SD-JWT VC, as the holder's code"
    numberIsPersonalId: Boolean!
  }

  "电子证照: one version of a licence"
  type Licence {
    "证照标识 (GB/T 36904)"
    identifier: String!
    version: Int!
    typeCode: String!
    "证照名称"
    name: String!
    "证照编号"
    number: String!
    "null where the caller may not see it (an SD-JWT VC presented without it disclosed)"
    holderName: String
    holderCode: String
    holderCodeType: SubjectCodeType!
    issuerName: String!
    issuerCode: String!
    issuedAt: String!
    validFrom: String!
    validUntil: String
    status: LicenceStatus!
    statusReason: String
    "W3C VC 2.0 in JOSE form (typ vc+jwt); in a verification, the credential presented if it was this form"
    credential: String
    "SD-JWT VC (typ dc+sd-jwt); in a verification, the presentation presented if it was this form"
    sdJwt: String
    "照面信息"
    face: JSON!
    "GB/T 36903 metadata (ZZMC, ZZBS, ...)"
    metadata: JSON!
    previousIdentifier: String
    supersededBy: String
    signerKid: String!
    "异议: true while an objection to it awaits the issuer's decision"
    underObjection: Boolean!
    objections: [LicenceObjection!]!
  }

  "异议"
  type LicenceObjection { id: ID! identifier: String! field: String! reason: String! status: String! decisionReason: String newIdentifier: String createdAt: String! decidedAt: String }
  "授权用证"
  type LicenceAuthorisation { id: ID! clientId: String! itemCode: String! caseId: String typeCode: String validUntil: String! createdAt: String! revokedAt: String }
  "亮证: a one-time link and its QR code (a PNG data URL)"
  type LicencePresentation { url: String! qr: String! expiresAt: String! }
  input LicenceAuthorisationInput { clientId: String! itemCode: String! caseId: String typeCode: String validUntil: String! }

  type LicenceVerification {
    valid: Boolean!
    status: LicenceStatus
    reasons: [VerificationReason!]!
    licence: Licence
    "vc+jwt or dc+sd-jwt"
    format: String
    "the claims an SD-JWT VC disclosed"
    disclosed: JSON
  }

  input LicenceTypeInput {
    code: String!
    name: String!
    definingDepartment: String!
    holderKind: HolderKind!
    issuers: [String!]!
    faceFields: [ResourceFieldInput!]!
    "default validity in years from validFrom; absent = no expiry"
    validityYears: Int
    "face fields that may be left out (all others are required)"
    optionalFields: [String!]
    "证照编号 is a personal identifier (the 居民身份证's is the 公民身份号码)"
    numberIsPersonalId: Boolean
  }

  input IssueLicenceInput {
    typeCode: String!
    number: String!
    holderName: String!
    holderCode: String!
    validFrom: String
    validUntil: String
    face: JSON!
  }

  type LicenceBatchError { index: Int! code: String! field: String message: String! }
  type LicenceBatch { id: ID! status: String! total: Int! issued: Int! skipped: Int! errors: [LicenceBatchError!]! createdAt: String! finishedAt: String }

  "A department's licence signing key and its certificate from the hub root"
  type LicenceSigningKey { kid: String! departmentCode: String fingerprint: String! notBefore: String! notAfter: String! supersededAt: String revokedAt: String revocationReason: String certificate: String! }

  "A licence this client used that was later suspended or revoked"
  type LicenceUseNotice { id: ID! identifier: String! status: LicenceStatus! reason: String itemCode: String! caseId: String createdAt: String! }

  "用证记录"
  type LicenceUse { id: ID! identifier: String! clientId: String! department: String! itemCode: String! caseId: String operator: String at: String! }

  extend type Query {
    licenceTypes: [LicenceType!]!
    licenceType(code: String!): LicenceType
    "a licence by its identifier, for its issuer (or an admin)"
    licence(identifier: String!): Licence
    "an applicant's licences for an approval system: purpose-bound, audited, recorded as used"
    licences(holderCode: String!, purpose: PurposeInput!, typeCode: String): [Licence!]!
    verifyLicence(credential: String!): LicenceVerification!
    licenceBatch(id: ID!): LicenceBatch
    "the caller's department's licences that expire within the days given"
    expiringLicences(days: Int): [Licence!]!
    licenceUseNotices(first: Int): [LicenceUseNotice!]!
    licenceUses(identifier: String!): [LicenceUse!]!
    "用证记录 of the signed-in holder's licences"
    myLicenceUses(first: Int): [LicenceUse!]!
    licenceSigningKeys(department: String): [LicenceSigningKey!]!
    "the signed-in holder's licences"
    myLicences: [Licence!]!
    myLicenceAuthorisations: [LicenceAuthorisation!]!
    "objections to the caller's department's licences awaiting a decision"
    pendingLicenceObjections: [LicenceObjection!]!
  }

  extend type Mutation {
    registerLicenceType(input: LicenceTypeInput!): LicenceType!
    issueLicence(input: IssueLicenceInput!): Licence!
    "a batch through the job system; idempotent on type + issuer + 证照编号"
    issueLicences(items: [IssueLicenceInput!]!): LicenceBatch!
    changeLicence(identifier: String!, face: JSON!, reason: String!): Licence!
    renewLicence(identifier: String!, validUntil: String!, reason: String!): Licence!
    suspendLicence(identifier: String!, reason: String!): Licence!
    reinstateLicence(identifier: String!, reason: String!): Licence!
    revokeLicence(identifier: String!, reason: String!, kind: RevocationKind!): Licence!
    rotateLicenceSigningKey(reason: String!): LicenceSigningKey!
    "key compromise: from 'at' (default now) whatever the key signed fails with CHAIN"
    revokeLicenceSigningCertificate(kid: String!, reason: String!, at: String): LicenceSigningKey!
    "授权用证 (holder): this client may use my licences for this item (and case) until then"
    authoriseLicenceUse(input: LicenceAuthorisationInput!): LicenceAuthorisation!
    revokeLicenceAuthorisation(id: ID!): LicenceAuthorisation!
    "亮证 (holder): a one-time link to a page showing the licence, for a few minutes"
    presentLicence(identifier: String!, seconds: Int): LicencePresentation!
    "异议 (holder)"
    objectToLicence(identifier: String!, field: String!, reason: String!): LicenceObjection!
    "the issuer corrects (a new version with the face given) or rejects with a reason"
    decideLicenceObjection(id: ID!, accept: Boolean!, reason: String!, face: JSON): LicenceObjection!
  }
`;

/**
 * A licence as a resolver gets it. One read by an approval system carries its `view` (what its grant lets leave, and
 * how) and the licence's `type`: every field is shaped by them. The issuer's and the holder's own reads carry none.
 */
type LicenceLike = Omit<LicenceRow, 'credential' | 'sdJwt'> & { credential?: string; sdJwt?: string; view?: LicenceView; type?: LicenceType | undefined };

/** A verification's licence as the Licence type shows it: what the presented credential says, the record's status. */
type PresentedLicence = Omit<VerifiedLicence, 'claims' | 'disclosed'> & {
  holderName: string | null;
  holderCode: string | null;
  holderCodeType: 'ID_NUMBER' | 'USCC';
  face: Record<string, unknown>;
  metadata: Record<string, unknown>;
  statusReason: null;
  previousIdentifier: null;
  supersededBy: null;
};

/** Claims of a credential that are the holder's data, or the JWT's own. */
const HOLDER_CLAIMS = new Set(['CZZT', 'CZZTDM', 'face']);
const JWT_CLAIMS = new Set(['iss', 'iat', 'nbf', 'exp', 'vct', 'status', '_sd', '_sd_alg', 'cnf']);

/**
 * What the verified credential states (VC-JOSE) or discloses (SD-JWT VC): nothing of the record's holder or face that
 * the credential does not itself carry. Built only when a caller selects the verification's licence.
 */
function presentedLicence(v: VerifiedLicence): PresentedLicence {
  const { claims, disclosed, ...rest } = v;
  const metadata: Record<string, unknown> = {};
  for (const [k, value] of Object.entries(claims)) if (!HOLDER_CLAIMS.has(k) && !JWT_CLAIMS.has(k)) metadata[k] = value;
  const holder = disclosed ?? claims;
  let face: Record<string, unknown> = {};
  if (disclosed) {
    for (const [k, value] of Object.entries(disclosed)) if (k !== 'CZZT' && k !== 'CZZTDM' && k !== 'ZZBH' && k !== 'ZZBS') face[k] = value;
    for (const k of ['ZZBH', 'ZZBS']) if (k in disclosed) metadata[k] = disclosed[k];
  } else if (claims.face && typeof claims.face === 'object') face = claims.face as Record<string, unknown>;
  const holderName = typeof holder.CZZT === 'string' ? holder.CZZT : null;
  const holderCode = typeof holder.CZZTDM === 'string' ? holder.CZZTDM : null;
  if (holderName !== null) metadata.CZZT = holderName;
  if (holderCode !== null) metadata.CZZTDM = holderCode;
  return {
    ...rest,
    number: typeof metadata.ZZBH === 'string' ? metadata.ZZBH : rest.number,
    holderName,
    holderCode,
    holderCodeType: claims.CZZTDMLX === HOLDER_CODE_TYPE_GBT.USCC ? 'USCC' : 'ID_NUMBER',
    face,
    metadata,
    statusReason: null,
    previousIdentifier: null,
    supersededBy: null,
  };
}

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

function batchView(b: Awaited<ReturnType<typeof getLicenceBatch>>) {
  return { ...b, total: b.items.length, createdAt: b.createdAt.toISOString(), finishedAt: iso(b.finishedAt) };
}

/** A signing key as GraphQL shows it: the sealed private key stays behind. */
function signerView({ privateEnc: _sealed, ...s }: SignerRow) {
  return { ...s, notBefore: s.notBefore.toISOString(), notAfter: s.notAfter.toISOString(), supersededAt: iso(s.supersededAt), revokedAt: iso(s.revokedAt) };
}

/** A signed form as issued: the stored text with its protected header put back. */
async function storedText(ctx: Ctx, l: LicenceLike, column: 'credential' | 'sdJwt'): Promise<string> {
  let stored = l[column];
  if (typeof stored !== 'string') {
    const [r] = await ctx.db.select({ v: licences[column] }).from(licences).where(eq(licences.id, l.id));
    stored = r!.v;
  }
  const key = await ctx.licence.pki.chainOf(l.signerKid);
  return attachHeader(key, column === 'credential' ? 'vc+jwt' : 'dc+sd-jwt', stored);
}

export const resolvers = {
  Licence: {
    name: (l: LicenceLike) => String(l.metadata.ZZMC ?? ''),
    number: (l: LicenceLike) => (l.view ? numberFor(l.view, l.type, l.number) : l.number),
    holderName: (l: LicenceLike) => (l.view && !l.view.granted.has('holderName') ? null : l.holderName),
    holderCode: (l: LicenceLike) => (l.view && l.holderCode ? holderCodeFor(l.view, l.holderCode, l.holderCodeType) : l.holderCode),
    face: (l: LicenceLike) => (l.view ? faceFor(l.view, l.type, l.face) : l.face),
    metadata: (l: LicenceLike) => (l.view ? metadataFor(l.view, l.type, l.metadata, l.holderCodeType) : l.metadata),
    issuedAt: (l: LicenceLike) => l.issuedAt.toISOString(),
    status: (l: LicenceLike) => effectiveStatus(l),
    credential: (l: LicenceLike | PresentedLicence, _: unknown, ctx: Ctx) => {
      if ('presented' in l) return l.format === 'vc+jwt' ? l.presented : null;
      // readLicences refused it already unless every 信息项 may leave whole; a view that does not allow it gets none
      if (l.view && missingForAllClaims(l.view, l.type).length) return null;
      return storedText(ctx, l, 'credential');
    },
    sdJwt: async (l: LicenceLike | PresentedLicence, _: unknown, ctx: Ctx) => {
      if ('presented' in l) return l.format === 'dc+sd-jwt' ? l.presented : null;
      const text = await storedText(ctx, l, 'sdJwt');
      // under a grant: a presentation disclosing what it covers, whole; it verifies as the issued one does
      return l.view ? presentationFor(l.view, l.type, text) : text;
    },
    objections: async (l: LicenceLike | PresentedLicence, _: unknown, ctx: Ctx) => {
      if ('presented' in l) return [];
      const found = await objectionsOf(ctx.db, l.identifier);
      // under a grant the holder's and the issuer's words are shown as the face is: ID numbers masked unless it is unmasked
      if (!l.view || l.view.unmasked.has('face')) return found;
      return found.map((o) => ({ ...o, reason: maskIdNumbers(o.reason), decisionReason: o.decisionReason === null ? null : maskIdNumbers(o.decisionReason) }));
    },
    underObjection: async (l: LicenceLike | PresentedLicence, _: unknown, ctx: Ctx) => ('presented' in l ? false : (await objectionsOf(ctx.db, l.identifier)).some((o) => o.status === 'PENDING')),
  },
  LicenceObjection: { createdAt: (o: LicenceObjection) => o.createdAt.toISOString(), decidedAt: (o: LicenceObjection) => iso(o.decidedAt) },
  LicenceAuthorisation: { validUntil: (a: LicenceAuthorisation) => a.validUntil.toISOString(), createdAt: (a: LicenceAuthorisation) => a.createdAt.toISOString(), revokedAt: (a: LicenceAuthorisation) => iso(a.revokedAt) },
  LicenceVerification: {
    // what the presented credential verifiably says, with the record's status: never the record's own face or forms
    licence: (v: LicenceVerification) => (v.licence ? presentedLicence(v.licence) : null),
  },
  LicenceUseNotice: { createdAt: (n: { createdAt: Date }) => n.createdAt.toISOString() },
  LicenceUse: { at: (u: { at: Date }) => u.at.toISOString() },
  Query: {
    licenceTypes: (_: unknown, _a: unknown, ctx: Ctx) => listLicenceTypes(ctx.db),
    licenceType: (_: unknown, a: { code: string }, ctx: Ctx) => getLicenceType(ctx.db, a.code),
    licence: async (_: unknown, a: { identifier: string }, ctx: Ctx) => {
      requireRole(ctx, 'issuer', 'admin');
      const row = await getLicence(ctx.db, a.identifier);
      if (!row) throw licenceNotFound(a.identifier);
      requireOwnDepartment(ctx, row.issuerCode, `licence ${a.identifier}`);
      return row;
    },
    licences: async (_: unknown, a: { holderCode: string; purpose: PurposeInput; typeCode?: string | null }, ctx: Ctx, info: GraphQLResolveInfo) => {
      // what was selected, through fragments and aliases: what the grant must cover, and what the audit entry records
      const selected = selectedFieldNames(info);
      // each licence comes with the view of its own type's grants, and its type
      return (await readLicences(ctx, { holderCode: a.holderCode, purpose: a.purpose, typeCode: a.typeCode ?? null, fields: licenceItemsOf(selected), allClaims: selected.has('credential') })).rows;
    },
    verifyLicence: async (_: unknown, a: { credential: string }, ctx: Ctx) => {
      const v = await ctx.licence.verifier.verify(a.credential);
      // an authenticated verification is a use of the holder's licence: recorded before the answer leaves
      const p = ctx.principal;
      const seq = await ctx.audit.append({
        clientId: p.clientId || null,
        department: p.department || null,
        operation: 'LICENCE_VERIFY',
        resourceCode: v.licence?.typeCode ?? null,
        subject: v.holderOnRecord ?? null,
        outcome: v.licence ? 'RETURNED' : 'NOT_FOUND',
        reason: v.valid ? null : v.reasons.join(','),
        requestId: ctx.requestId,
        details: { identifier: v.licence?.identifier ?? null, format: v.format, valid: v.valid, disclosed: v.disclosed ? Object.keys(v.disclosed) : null },
      });
      ctx.auditIds.push(String(seq));
      return v;
    },
    licenceBatch: async (_: unknown, a: { id: string }, ctx: Ctx) => batchView(await getLicenceBatch(ctx, a.id)),
    expiringLicences: (_: unknown, a: { days?: number | null }, ctx: Ctx) => {
      const p = requireRole(ctx, 'issuer', 'admin');
      const days = a.days ?? 30;
      if (!Number.isInteger(days) || days < 0 || days > 3660) throw new HubError('BAD_USER_INPUT', 'days is 0..3660', { field: 'days' });
      return expiringLicences(ctx.db, p.roles.includes('admin') ? null : p.department, days);
    },
    licenceUseNotices: (_: unknown, a: { first?: number | null }, ctx: Ctx) => listUseNotices(ctx, a.first ?? 100),
    licenceUses: (_: unknown, a: { identifier: string }, ctx: Ctx) => listLicenceUses(ctx, a.identifier),
    myLicenceUses: (_: unknown, a: { first?: number | null }, ctx: Ctx) => listMyLicenceUses(ctx, a.first ?? 100),
    myLicences: (_: unknown, _a: unknown, ctx: Ctx) => myLicences(ctx),
    myLicenceAuthorisations: (_: unknown, _a: unknown, ctx: Ctx) => myLicenceAuthorisations(ctx),
    pendingLicenceObjections: (_: unknown, _a: unknown, ctx: Ctx) => pendingObjections(ctx),
    licenceSigningKeys: async (_: unknown, a: { department?: string | null }, ctx: Ctx) => {
      const p = requireRole(ctx, 'issuer', 'admin', 'auditor');
      const dept = a.department ?? p.department;
      if (!p.roles.includes('admin') && !p.roles.includes('auditor')) requireOwnDepartment(ctx, dept, `the signing keys of ${dept}`);
      return (await ctx.db.select().from(licenceSigners).where(eq(licenceSigners.departmentCode, dept)).orderBy(licenceSigners.createdAt)).map(signerView);
    },
  },
  Mutation: {
    registerLicenceType: (_: unknown, a: { input: LicenceTypeInput }, ctx: Ctx) => registerLicenceType(ctx, a.input),
    issueLicence: (_: unknown, a: { input: IssueLicenceInput }, ctx: Ctx) => issueLicence(ctx, ctx.licence.ports, a.input),
    issueLicences: async (_: unknown, a: { items: IssueLicenceInput[] }, ctx: Ctx) => {
      const batch = await createLicenceBatch(ctx, a.items);
      await ctx.jobs.enqueue('licence.issue-batch', { batchId: batch.id }, `licence-batch-${batch.id}`);
      return batchView(await getLicenceBatch(ctx, batch.id));
    },
    changeLicence: (_: unknown, a: { identifier: string; face: Record<string, unknown>; reason: string }, ctx: Ctx) => changeLicence(ctx, ctx.licence.ports, a.identifier, a.face, a.reason),
    renewLicence: (_: unknown, a: { identifier: string; validUntil: string; reason: string }, ctx: Ctx) => renewLicence(ctx, ctx.licence.ports, a.identifier, a.validUntil, a.reason),
    suspendLicence: (_: unknown, a: { identifier: string; reason: string }, ctx: Ctx) => suspendLicence(ctx, a.identifier, a.reason),
    reinstateLicence: (_: unknown, a: { identifier: string; reason: string }, ctx: Ctx) => reinstateLicence(ctx, a.identifier, a.reason),
    revokeLicence: (_: unknown, a: { identifier: string; reason: string; kind: RevocationKind }, ctx: Ctx) => revokeLicence(ctx, a.identifier, a.reason, a.kind),
    rotateLicenceSigningKey: async (_: unknown, a: { reason: string }, ctx: Ctx) => {
      const p = requireRole(ctx, 'issuer', 'admin');
      const dept = await getDepartment(ctx.db, p.department);
      if (!dept) throw new HubError('FORBIDDEN', `department ${p.department} is not registered`);
      return signerView(await rotateDepartmentKey(ctx, ctx.licence.ports.masterKey, { code: dept.code, name: dept.name }, a.reason));
    },
    authoriseLicenceUse: (_: unknown, a: { input: { clientId: string; itemCode: string; caseId?: string | null; typeCode?: string | null; validUntil: string } }, ctx: Ctx) => authoriseLicenceUse(ctx, a.input),
    revokeLicenceAuthorisation: (_: unknown, a: { id: string }, ctx: Ctx) => revokeLicenceAuthorisation(ctx, a.id),
    presentLicence: async (_: unknown, a: { identifier: string; seconds?: number | null }, ctx: Ctx) => {
      const p = await presentLicence(ctx, ctx.licence.ports.issuer, a.identifier, a.seconds ?? undefined);
      return { ...p, expiresAt: p.expiresAt.toISOString() };
    },
    objectToLicence: (_: unknown, a: { identifier: string; field: string; reason: string }, ctx: Ctx) => objectToLicence(ctx, a.identifier, a.field, a.reason),
    decideLicenceObjection: (_: unknown, a: { id: string; accept: boolean; reason: string; face?: Record<string, unknown> | null }, ctx: Ctx) => decideLicenceObjection(ctx, ctx.licence.ports, a.id, a),
    revokeLicenceSigningCertificate: async (_: unknown, a: { kid: string; reason: string; at?: string | null }, ctx: Ctx) => signerView(await revokeSigningCertificate(ctx, a.kid, a.reason, a.at)),
  },
};
