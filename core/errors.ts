import { GraphQLError } from 'graphql';

/**
 * The stable error codes outside systems switch on (API-CONTRACT.md), in the order they are checked.
 * Anything that is not a HubError reaches callers as INTERNAL_SERVER_ERROR without detail.
 */
export type HubErrorCode =
  | 'UNAUTHENTICATED'
  | 'INVALID_ID_NUMBER'
  | 'INVALID_USCC'
  | 'FORBIDDEN'
  | 'PURPOSE_REQUIRED'
  | 'GRANT_MISSING'
  | 'RATE_LIMITED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'BAD_USER_INPUT';

/**
 * A domain error with a code. It is a GraphQLError so graphql-yoga passes it to callers unmasked; the CLI and
 * HTTP routes read `code` and `extensions` the same way.
 */
export class HubError extends GraphQLError {
  readonly code: HubErrorCode;

  constructor(code: HubErrorCode, message: string, extra: Record<string, unknown> = {}, options: { cause?: unknown } = {}) {
    super(message, { extensions: { ...extra, code } });
    this.code = code;
    this.name = 'HubError';
    if (options.cause !== undefined) Object.defineProperty(this, 'cause', { value: options.cause, enumerable: false });
  }
}

export function badInput(field: string, message: string): HubError {
  return new HubError('BAD_USER_INPUT', message, { field });
}

export function notFound(what: string): HubError {
  return new HubError('NOT_FOUND', `${what} not found`);
}

/** The SQLSTATE of a driver error, or of the first error in its `cause` chain that has one. */
export function sqlState(error: unknown): string | undefined {
  for (let e: unknown = error; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return undefined;
}

/** PostgreSQL unique_violation, from either driver. */
export function isUniqueViolation(error: unknown): boolean {
  return sqlState(error) === '23505';
}

/**
 * A configuration or start-up problem: printed as one line naming the setting, then the process exits.
 */
export class StartupError extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = 'StartupError';
  }
}
