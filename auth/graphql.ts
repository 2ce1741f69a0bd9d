import type { HubContext } from '../core/context.ts';

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
`;

export const resolvers = {
  Query: {
    viewer: (_: unknown, __: unknown, ctx: HubContext) => ({
      clientId: ctx.principal.clientId,
      name: ctx.principal.name,
      department: ctx.principal.department,
      roles: ctx.principal.roles,
      tokenExpiresAt: new Date(ctx.principal.expiresAt).toISOString(),
    }),
  },
};
