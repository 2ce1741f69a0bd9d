import type { Db } from '../db/index.ts';
import { HubError } from './errors.ts';
import type { Logger } from './logger.ts';

export type Role = 'consumer' | 'provider' | 'issuer' | 'auditor' | 'admin';

/** A client system, authenticated by a hub access token. */
export interface ClientPrincipal {
  kind: 'client';
  clientId: string;
  name: string;
  /** The department's 统一社会信用代码 */
  department: string;
  roles: Role[];
  /** permissions beyond the roles, e.g. 'withhold' */
  permissions: string[];
  tokenId: string;
  expiresAt: number;
}

/**
 * A citizen or company (持证主体) signed in through an identity provider (OIDC ID token) or, in the demo, a hub
 * holder token. It holds no client role; `clientId` and `department` stay empty so no client check can pass.
 */
export interface HolderPrincipal {
  kind: 'holder';
  /** 公民身份号码 or 统一社会信用代码 */
  subject: string;
  codeType: 'ID_NUMBER' | 'USCC';
  clientId: '';
  name: string;
  department: '';
  roles: Role[];
  tokenId: string;
  expiresAt: number;
}

export type Principal = ClientPrincipal | HolderPrincipal;

/** The GraphQL context every room's resolvers receive; built once per request by the gateway. */
export interface HubContext {
  principal: Principal;
  requestId: string;
  log: Logger;
  db: Db;
}

/**
 * Who an administrative act's audit entry names as acting: the client of a request, or the command line, which
 * works on the database with no principal.
 */
export interface Actor {
  clientId: string;
  department: string | null;
  requestId?: string | null;
}

/** The command line (`npx hub …`) as the actor of the acts it does straight on the database. */
export const CLI_ACTOR: Actor = Object.freeze({ clientId: 'hub-cli', department: null });

/** The acting principal of a request, for its audit entries. */
export function actorOf(ctx: { principal: Principal; requestId: string }): Actor {
  return { clientId: ctx.principal.clientId, department: ctx.principal.department, requestId: ctx.requestId };
}

/** FORBIDDEN unless the caller holds one of the roles. */
export function requireRole(ctx: { principal: Principal }, ...roles: Role[]): ClientPrincipal {
  const p = ctx.principal;
  if (p.kind !== 'client' || !roles.some((r) => p.roles.includes(r))) {
    throw new HubError('FORBIDDEN', `this needs the role ${roles.join(' or ')}`, { requiredRoles: roles });
  }
  return p;
}

/** FORBIDDEN unless the caller is an admin or acts for the department that owns the object. */
export function requireOwnDepartment(ctx: { principal: Principal }, departmentCode: string, what: string): void {
  const p = ctx.principal;
  if (p.kind === 'client' && (p.roles.includes('admin') || p.department === departmentCode)) return;
  throw new HubError('FORBIDDEN', `${what} belongs to department ${departmentCode}, not to yours (${p.department})`);
}

/**
 * The hub acting for itself (seeds, imports, jobs): an admin principal with no token. Never built from a request.
 */
export function systemContext(db: Db, log: Logger, department: string, clientId = 'hub-system'): HubContext & { principal: ClientPrincipal } {
  return {
    principal: { kind: 'client', clientId, name: 'the hub', department, roles: ['admin'], permissions: [], tokenId: '', expiresAt: 0 },
    requestId: clientId,
    log,
    db,
  };
}

/** FORBIDDEN unless the caller is a holder (citizen or company) signed in. */
export function requireHolder(ctx: { principal: Principal }): HolderPrincipal {
  if (ctx.principal.kind !== 'holder') throw new HubError('FORBIDDEN', 'this needs a holder token (a citizen or company signed in)');
  return ctx.principal;
}
