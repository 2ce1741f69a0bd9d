import { actorOf, requireRole, type HubContext } from '../core/context.ts';
import { maskIdNumber } from '../core/ids.ts';
import { issueHolderToken } from './holders.ts';
import type { KeyRing } from './keys.ts';

export const typeDefs = /* GraphQL */ `
  "The caller, as the hub authenticated it."
  type Viewer {
    clientId: String!
    name: String!
    "The department's 统一社会信用代码"
    department: String!
    roles: [String!]!
    "When the access token in use expires"
    tokenExpiresAt: String!
  }

  extend type Query {
    viewer: Viewer!
  }

  enum SubjectCodeType { ID_NUMBER USCC }
  type HolderToken { token: String! expiresIn: Int! }

  extend type Mutation {
    "the demo's stand-in for an identity provider: a holder token for a citizen or company (admins only; recorded in the audit log; FORBIDDEN when HUB_OIDC_ISSUER is set)"
    issueHolderToken(code: String!, codeType: SubjectCodeType): HolderToken!
  }
`;

export const resolvers = {
  Query: {
    viewer: (_: unknown, __: unknown, ctx: HubContext) => {
      const p = ctx.principal;
      return {
        clientId: p.clientId,
        name: p.kind === 'holder' ? p.name || maskIdNumber(p.subject) : p.name,
        department: p.department,
        roles: p.kind === 'holder' ? ['holder'] : p.roles,
        tokenExpiresAt: new Date(p.expiresAt).toISOString(),
      };
    },
  },
  Mutation: {
    issueHolderToken: async (_: unknown, a: { code: string; codeType?: 'ID_NUMBER' | 'USCC' }, ctx: HubContext & AuthPorts) => {
      requireRole(ctx, 'admin');
      const { token, expiresIn } = await issueHolderToken({ db: ctx.db, keys: ctx.keys, issuer: ctx.issuer, oidcIssuer: ctx.oidcIssuer }, a.code.trim().toUpperCase(), {
        codeType: a.codeType ?? null,
        actor: actorOf(ctx),
      });
      return { token, expiresIn };
    },
  },
};

/** What the auth room's resolvers need beyond the common context. */
export interface AuthPorts {
  keys: KeyRing;
  issuer: string;
  /** the holders' identity provider (config.oidc.issuer), when configured: the hub then mints no holder tokens */
  oidcIssuer: string | undefined;
}
