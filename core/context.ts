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
  tokenId: string;
  expiresAt: number;
}

export type Principal = ClientPrincipal;

/** The GraphQL context every room's resolvers receive; built once per request by the gateway. */
export interface HubContext {
  principal: Principal;
  requestId: string;
  log: Logger;
  db: Db;
}

/** FORBIDDEN unless the caller holds one of the roles. */
export function requireRole(ctx: { principal: Principal }, ...roles: Role[]): ClientPrincipal {
  const p = ctx.principal;
  if (!roles.some((r) => p.roles.includes(r))) {
    throw new HubError('FORBIDDEN', `this needs the role ${roles.join(' or ')}`, { requiredRoles: roles });
  }
  return p;
}

/** FORBIDDEN unless the caller is an admin or acts for the department that owns the object. */
export function requireOwnDepartment(ctx: { principal: Principal }, departmentCode: string, what: string): void {
  const p = ctx.principal;
  if (p.roles.includes('admin') || p.department === departmentCode) return;
  throw new HubError('FORBIDDEN', `${what} belongs to department ${departmentCode}, not to yours (${p.department})`);
}

/**
 * The hub acting for itself (seeds, imports, jobs): an admin principal with no token. Never built from a request.
 */
export function systemContext(db: Db, log: Logger, department: string, clientId = 'hub-system'): HubContext {
  return {
    principal: { kind: 'client', clientId, name: 'the hub', department, roles: ['admin'], tokenId: '', expiresAt: 0 },
    requestId: clientId,
    log,
    db,
  };
}
