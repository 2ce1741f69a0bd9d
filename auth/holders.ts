import crypto from 'node:crypto';
import { recordAct } from '../audit/acts.ts';
import { createRemoteJWKSet, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import { CLI_ACTOR, type Actor, type HolderPrincipal } from '../core/context.ts';
import { badInput, HubError } from '../core/errors.ts';
import { isValidIdNumber, isValidUscc } from '../core/ids.ts';
import type { Db } from '../db/index.ts';
import type { KeyRing } from './keys.ts';

export const HOLDER_TOKEN_SECONDS = 600;

/** Which kind of code a holder code is; a code that passes both checks needs the caller to say. */
export function holderCodeType(code: string, declared?: 'ID_NUMBER' | 'USCC' | null): 'ID_NUMBER' | 'USCC' {
  const id = isValidIdNumber(code);
  const uscc = isValidUscc(code);
  if (declared) {
    if ((declared === 'ID_NUMBER' && !id) || (declared === 'USCC' && !uscc)) {
      throw new HubError(declared === 'ID_NUMBER' ? 'INVALID_ID_NUMBER' : 'INVALID_USCC', `${code} is not a valid ${declared === 'ID_NUMBER' ? '公民身份号码' : '统一社会信用代码'}`);
    }
    return declared;
  }
  if (id && uscc) throw badInput('codeType', 'the code passes both the ID number and the USCC checks: say which it is');
  if (id) return 'ID_NUMBER';
  if (uscc) return 'USCC';
  throw badInput('code', 'the code is neither a valid 公民身份号码 nor 统一社会信用代码');
}

/** What minting a holder token needs: the database (for its audit entry), the token key, and the configuration. */
export interface HolderTokenPorts {
  db: Db;
  keys: KeyRing;
  issuer: string;
  /** the holders' identity provider (HUB_OIDC_ISSUER), when one is configured: then it is the only source of holder tokens */
  oidcIssuer: string | undefined;
}

/** FORBIDDEN when an identity provider is configured: a token the hub minted would let an admin act as any citizen. */
export function refuseWithIdentityProvider(oidcIssuer: string | undefined): void {
  if (oidcIssuer) throw new HubError('FORBIDDEN', `holder tokens come from the identity provider (${oidcIssuer}); this hub mints none`);
}

/**
 * A holder token: the demo's stand-in for a real identity provider (`hub holders token --code`). Signed by the hub's
 * token key, typ at+jwt, with `holder: true`; it grants nothing but the holder's own views. Each one is an audit
 * entry (HOLDER_TOKEN_ISSUE: the holder as subject, its jti and expiry) naming who minted it, committed before the
 * token is signed and returned: no entry, no token. With an identity provider configured the hub mints none.
 */
export async function issueHolderToken(
  ports: HolderTokenPorts,
  code: string,
  options: { codeType?: 'ID_NUMBER' | 'USCC' | null; name?: string; actor?: Actor } = {},
): Promise<{ token: string; expiresIn: number }> {
  refuseWithIdentityProvider(ports.oidcIssuer);
  const codeType = holderCodeType(code, options.codeType);
  const signer = ports.keys.signer('token');
  const actor = options.actor ?? CLI_ACTOR;
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + HOLDER_TOKEN_SECONDS;
  const jti = crypto.randomUUID();
  await ports.db.transaction(async (tx) => {
    await recordAct(tx, actor, 'HOLDER_TOKEN_ISSUE', { subject: code, details: { jti, expiresAt: new Date(exp * 1000).toISOString() } });
  });
  const token = await new SignJWT({ holder: true, code_type: codeType, ...(options.name ? { name: options.name } : {}) })
    .setProtectedHeader({ alg: signer.alg, typ: 'at+jwt', kid: signer.kid })
    .setIssuer(ports.issuer)
    .setAudience(ports.issuer)
    .setSubject(code)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(signer.privateKey);
  return { token, expiresIn: HOLDER_TOKEN_SECONDS };
}

export function holderPrincipal(payload: JWTPayload & Record<string, unknown>, code: string): HolderPrincipal {
  return {
    kind: 'holder',
    subject: code,
    codeType: payload.code_type === 'USCC' ? 'USCC' : 'ID_NUMBER',
    clientId: '',
    name: typeof payload.name === 'string' ? payload.name : '',
    department: '',
    roles: [],
    tokenId: String(payload.jti ?? ''),
    expiresAt: (payload.exp ?? 0) * 1000,
  };
}

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** the ID token claim holding the 公民身份号码 or USCC */
  subjectClaim: string;
}

/**
 * ID tokens from a configured OpenID Connect provider (the province's 统一身份认证), verified against its JWKS
 * (found through its discovery document) with issuer, audience and expiry checked.
 */
export class OidcVerifier {
  private jwks: ReturnType<typeof createRemoteJWKSet> | undefined;

  constructor(readonly options: OidcOptions) {}

  private async keys(): Promise<ReturnType<typeof createRemoteJWKSet>> {
    if (!this.jwks) {
      const res = await fetch(`${this.options.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`);
      if (!res.ok) throw new HubError('UNAUTHENTICATED', 'the identity provider cannot be reached');
      const { jwks_uri } = (await res.json()) as { jwks_uri: string };
      this.jwks = createRemoteJWKSet(new URL(jwks_uri));
    }
    return this.jwks;
  }

  async verify(token: string): Promise<HolderPrincipal> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.keys(), { issuer: this.options.issuer, audience: this.options.audience, algorithms: ['RS256', 'ES256', 'EdDSA', 'Ed25519'], clockTolerance: 60 }));
    } catch (error) {
      if (error instanceof HubError) throw error;
      throw new HubError('UNAUTHENTICATED', `the ID token does not verify: ${(error as Error).message}`);
    }
    const code = payload[this.options.subjectClaim];
    if (typeof code !== 'string') throw new HubError('UNAUTHENTICATED', `the ID token has no ${this.options.subjectClaim} claim`);
    let codeType: 'ID_NUMBER' | 'USCC';
    try {
      codeType = holderCodeType(code.toUpperCase(), isValidIdNumber(code.toUpperCase()) ? 'ID_NUMBER' : null);
    } catch {
      throw new HubError('UNAUTHENTICATED', `the ID token's ${this.options.subjectClaim} is not a valid code`);
    }
    return holderPrincipal({ ...payload, code_type: codeType }, code.toUpperCase());
  }
}
