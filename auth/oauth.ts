import crypto from 'node:crypto';
import { lt, sql } from 'drizzle-orm';
import { decodeJwt, decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import type { ClientPrincipal, HolderPrincipal } from '../core/context.ts';
import { holderPrincipal, type OidcVerifier } from './holders.ts';
import { HubError } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { CLIENT_KEY_ALGS, type CachedClient, type ClientCache } from './clients.ts';
import type { KeyRing } from './keys.ts';
import { oauthAssertions, type ClientRole } from './schema.ts';

export const ACCESS_TOKEN_SECONDS = 600;
/** The most a client's clock may differ from the hub's. */
export const CLOCK_SKEW_SECONDS = 60;
/** The longest lifetime of a client assertion. */
export const MAX_ASSERTION_SECONDS = 300;
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope';

/** An RFC 6749 §5.2 error: the token endpoint answers `{ error, error_description }` with this status. */
export class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    readonly description: string,
    readonly status = error === 'invalid_client' ? 401 : 400,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
}

export interface OAuthServerOptions {
  db: Db;
  keys: KeyRing;
  clients: ClientCache;
  issuer: string;
  now?: () => number;
  /** holders' ID tokens from an OpenID Connect provider, when one is configured */
  oidc?: OidcVerifier;
}

/**
 * OAuth 2.0 client credentials with private_key_jwt (RFC 7523) and the hub's own access tokens.
 * Access tokens are ES256 JWTs (`typ: at+jwt`, RFC 9068) signed by the hub's current token key.
 */
export class OAuthServer {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  private readonly now: () => number;

  constructor(private readonly options: OAuthServerOptions) {
    this.issuer = options.issuer;
    this.tokenEndpoint = `${options.issuer}/oauth/token`;
    this.now = options.now ?? Date.now;
  }

  metadata(): Record<string, unknown> {
    return {
      issuer: this.issuer,
      token_endpoint: this.tokenEndpoint,
      jwks_uri: `${this.issuer}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: [...CLIENT_KEY_ALGS],
      scopes_supported: ['consumer', 'provider', 'issuer', 'auditor', 'admin'],
      response_types_supported: [],
      service_documentation: `${this.issuer}/`,
    };
  }

  /** POST /oauth/token with its form parameters. */
  async exchange(params: Record<string, string | undefined>): Promise<TokenResponse> {
    if (!params.grant_type) throw new OAuthError('invalid_request', 'grant_type is required');
    if (params.grant_type !== 'client_credentials') {
      throw new OAuthError('unsupported_grant_type', 'only grant_type=client_credentials is supported');
    }
    if (params.client_assertion_type !== CLIENT_ASSERTION_TYPE) {
      throw new OAuthError('invalid_request', `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);
    }
    if (!params.client_assertion) throw new OAuthError('invalid_request', 'client_assertion is required');
    const client = await this.authenticateClient(params.client_assertion, params.client_id);
    const roles = this.grantedRoles(client, params.scope);
    return this.issueAccessToken(client, roles);
  }

  private async authenticateClient(assertion: string, clientIdParam: string | undefined): Promise<CachedClient> {
    let header: ReturnType<typeof decodeProtectedHeader>;
    let claims: ReturnType<typeof decodeJwt>;
    try {
      header = decodeProtectedHeader(assertion);
      claims = decodeJwt(assertion);
    } catch {
      throw new OAuthError('invalid_client', 'client_assertion is not a JWT');
    }
    if (!header.alg || !(CLIENT_KEY_ALGS as readonly string[]).includes(header.alg)) {
      throw new OAuthError('invalid_client', `assertion alg must be one of ${CLIENT_KEY_ALGS.join(', ')}`);
    }
    const clientId = claims.iss;
    if (typeof clientId !== 'string' || claims.sub !== clientId) {
      throw new OAuthError('invalid_client', 'assertion iss and sub must both be the client_id');
    }
    if (clientIdParam !== undefined && clientIdParam !== clientId) {
      throw new OAuthError('invalid_client', 'client_id does not match the assertion');
    }
    const client = await this.options.clients.get(clientId);
    if (!client) throw new OAuthError('invalid_client', 'unknown client');
    if (!client.active) throw new OAuthError('invalid_client', 'client is disabled');
    const candidates = client.keys.filter((k) => (header.kid ? k.kid === header.kid : true));
    if (candidates.length === 0) throw new OAuthError('invalid_client', 'no registered key matches the assertion kid');

    const nowSec = Math.floor(this.now() / 1000);
    let verified: Awaited<ReturnType<typeof jwtVerify>> | undefined;
    let lastError: unknown;
    for (const candidate of candidates) {
      try {
        verified = await jwtVerify(assertion, candidate.key, {
          algorithms: [...CLIENT_KEY_ALGS],
          issuer: clientId,
          subject: clientId,
          audience: [this.issuer, this.tokenEndpoint],
          clockTolerance: CLOCK_SKEW_SECONDS,
          currentDate: new Date(nowSec * 1000),
          requiredClaims: ['exp', 'jti', 'aud'],
        });
        break;
      } catch (error) {
        lastError = error;
      }
    }
    if (!verified) throw new OAuthError('invalid_client', assertionFailure(lastError));
    const { exp, jti } = verified.payload as { exp: number; jti: string };
    if (exp > nowSec + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS) {
      throw new OAuthError('invalid_client', `assertion exp must be at most ${MAX_ASSERTION_SECONDS} s ahead`);
    }
    if (typeof jti !== 'string' || jti.length < 8 || jti.length > 200) {
      throw new OAuthError('invalid_client', 'assertion jti must be a string of 8–200 characters');
    }
    // Single use across every process on this database: the primary key decides the race.
    const fresh = await this.options.db
      .insert(oauthAssertions)
      .values({ clientId, jti, expiresAt: new Date((exp + CLOCK_SKEW_SECONDS) * 1000) })
      .onConflictDoNothing()
      .returning({ jti: oauthAssertions.jti });
    if (fresh.length === 0) throw new OAuthError('invalid_client', 'assertion jti was already used');
    return client;
  }

  private grantedRoles(client: CachedClient, scope: string | undefined): ClientRole[] {
    if (!scope || !scope.trim()) return client.roles;
    const asked = [...new Set(scope.trim().split(/\s+/))];
    const refused = asked.filter((r) => !(client.roles as string[]).includes(r));
    if (refused.length) throw new OAuthError('invalid_scope', `client may not have scope ${refused.join(' ')}`);
    return asked as ClientRole[];
  }

  private async issueAccessToken(client: CachedClient, roles: ClientRole[]): Promise<TokenResponse> {
    const signer = this.options.keys.signer('token');
    const iat = Math.floor(this.now() / 1000);
    const token = await new SignJWT({ client_id: client.clientId, roles, dept: client.department, scope: roles.join(' ') })
      .setProtectedHeader({ alg: signer.alg, typ: 'at+jwt', kid: signer.kid })
      .setIssuer(this.issuer)
      .setSubject(client.clientId)
      .setAudience(this.issuer)
      .setIssuedAt(iat)
      .setExpirationTime(iat + ACCESS_TOKEN_SECONDS)
      .setJti(crypto.randomUUID())
      .sign(signer.privateKey);
    return { access_token: token, token_type: 'Bearer', expires_in: ACCESS_TOKEN_SECONDS, scope: roles.join(' ') };
  }

  /**
   * Signatures already checked, by the whole token string (signature included, so nothing unverified can hit).
   * A client reuses its token for up to 10 minutes; an ECDSA verification costs far more than the rest of a
   * lookup. Key retirement and client state are still checked on every request.
   */
  private readonly verified = new Map<string, { kid: string; payload: Record<string, unknown> }>();
  private static readonly VERIFIED_MAX = 20_000;

  /**
   * Verifies a Bearer access token on the hot path: one `crypto.verify` with a cached key object the first time a
   * token is seen (jose would re-parse and await, at about half the speed), then the claims and the client's
   * current state every time.
   */
  async verifyAccessToken(token: string): Promise<ClientPrincipal | HolderPrincipal> {
    const hit = this.verified.get(token);
    if (!hit && this.options.oidc && unverifiedIssuer(token) === this.options.oidc.options.issuer) return this.options.oidc.verify(token);
    const { kid, payload } = hit ?? (await this.verifySignature(token));
    if (!this.options.keys.verificationKey(kid, 'token')) {
      this.verified.delete(token);
      throw unauthenticated('the Bearer token was signed by a key the hub does not accept');
    }
    const nowSec = this.now() / 1000;
    if (typeof payload.exp !== 'number' || payload.exp <= nowSec) {
      this.verified.delete(token);
      throw unauthenticated('the Bearer token has expired');
    }
    if (!hit) {
      if (this.verified.size >= OAuthServer.VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!);
      this.verified.set(token, { kid, payload });
    }
    if (payload.holder === true) {
      // with an identity provider configured it is the only source of holders: a token the hub signed (before, or by a
      // process started without HUB_OIDC_ISSUER) would let whoever minted it act as any citizen
      if (this.options.oidc) throw unauthenticated('holder tokens come from the identity provider; sign in there');
      return holderPrincipal(payload, String(payload.sub));
    }
    const clientId = payload.client_id as string;
    const client = await this.options.clients.get(clientId);
    if (!client || !client.active) throw unauthenticated('the client is unknown or disabled');
    const tokenRoles = payload.roles as string[];
    return {
      kind: 'client',
      clientId,
      name: client.name,
      department: client.department,
      // A role taken from the client since the token was issued is gone at once.
      roles: client.roles.filter((r) => tokenRoles.includes(r)),
      permissions: client.permissions,
      tokenId: String(payload.jti ?? ''),
      expiresAt: payload.exp * 1000,
    };
  }

  private async verifySignature(token: string): Promise<{ kid: string; payload: Record<string, unknown> }> {
    const parts = token.split('.');
    if (parts.length !== 3) throw unauthenticated('the Bearer token is not a JWT');
    let header: { alg?: unknown; typ?: unknown; kid?: unknown };
    let payload: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      throw unauthenticated('the Bearer token is not a JWT');
    }
    if (header.alg !== 'ES256' || header.typ !== 'at+jwt' || typeof header.kid !== 'string') {
      throw unauthenticated('the Bearer token is not a hub access token');
    }
    const key = this.options.keys.verificationKey(header.kid, 'token') ?? (await this.options.keys.verificationKeyFresh(header.kid, 'token'));
    if (!key) throw unauthenticated('the Bearer token was signed by a key the hub does not accept');
    const ok = crypto.verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      { key, dsaEncoding: 'ieee-p1363' },
      Buffer.from(parts[2]!, 'base64url'),
    );
    if (!ok) throw unauthenticated('the Bearer token signature is invalid');
    const nowSec = this.now() / 1000;
    if (payload.iss !== this.issuer || payload.aud !== this.issuer) throw unauthenticated('the Bearer token is for another issuer');
    if (typeof payload.iat === 'number' && payload.iat > nowSec + CLOCK_SKEW_SECONDS) throw unauthenticated('the Bearer token is not yet valid');
    if (payload.holder === true) {
      if (typeof payload.sub !== 'string') throw unauthenticated('the holder token names no holder');
    } else if (typeof payload.client_id !== 'string' || !Array.isArray(payload.roles)) {
      throw unauthenticated('the Bearer token names no client');
    }
    return { kid: header.kid, payload };
  }
}

function unverifiedIssuer(token: string): unknown {
  try {
    return (JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { iss?: unknown }).iss;
  } catch {
    return undefined;
  }
}

function unauthenticated(message: string): HubError {
  return new HubError('UNAUTHENTICATED', message);
}

function assertionFailure(error: unknown): string {
  if (error instanceof joseErrors.JWTExpired) return 'assertion has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `assertion claim ${error.claim} is invalid (${error.reason})`;
  if (error instanceof joseErrors.JWSSignatureVerificationFailed) return 'assertion signature is invalid';
  if (error instanceof joseErrors.JOSEAlgNotAllowed) return 'assertion alg is not allowed';
  return 'assertion could not be verified';
}

/** Removes used-assertion ids whose assertions have expired: a replay of those fails on exp anyway. */
export async function purgeExpiredAssertions(db: Db): Promise<number> {
  const r = await db.delete(oauthAssertions).where(lt(oauthAssertions.expiresAt, sql`now()`)).returning({ jti: oauthAssertions.jti });
  return r.length;
}
