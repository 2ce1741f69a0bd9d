import crypto from 'node:crypto';
import fs from 'node:fs';
import { calculateJwkThumbprint, importJWK, SignJWT, type JWK } from 'jose';
import { CLIENT_ASSERTION_TYPE } from './oauth.ts';

/** The file a client system keeps: its id and private JWK (API-CONTRACT.md: `hub clients create --key-out`). */
export interface ClientFile {
  client_id: string;
  jwk: JWK & { kid: string; alg: string };
  token_endpoint?: string;
}

export type ClientKeyAlg = 'ES256' | 'EdDSA';

/** A new key pair for a client: the private JWK for its file, the public one for the registry. */
export async function generateClientKey(alg: ClientKeyAlg = 'ES256'): Promise<{ privateJwk: ClientFile['jwk']; publicJwk: JWK }> {
  const { privateKey } =
    alg === 'ES256' ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }) : crypto.generateKeyPairSync('ed25519');
  const full = privateKey.export({ format: 'jwk' }) as JWK;
  const { d: _d, ...pub } = full;
  const kid = await calculateJwkThumbprint(pub);
  return { privateJwk: { ...full, kid, alg }, publicJwk: { ...pub, kid, alg } };
}

export function writeClientFile(file: string, content: ClientFile): void {
  fs.writeFileSync(file, `${JSON.stringify(content, null, 2)}\n`, { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

export function readClientFile(file: string): ClientFile {
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ClientFile>;
  if (typeof parsed.client_id !== 'string' || !parsed.jwk || typeof parsed.jwk !== 'object' || !parsed.jwk.d) {
    throw new Error(`${file} is not a hub client file: it needs client_id and a private jwk`);
  }
  return parsed as ClientFile;
}

/** A private_key_jwt client assertion (RFC 7523) for the token endpoint. */
export async function createClientAssertion(
  file: ClientFile,
  audience: string,
  options: { lifetimeSeconds?: number; jti?: string; now?: number } = {},
): Promise<string> {
  const key = await importJWK(file.jwk, file.jwk.alg);
  const iat = Math.floor((options.now ?? Date.now()) / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: file.jwk.alg, kid: file.jwk.kid, typ: 'JWT' })
    .setIssuer(file.client_id)
    .setSubject(file.client_id)
    .setAudience(audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + (options.lifetimeSeconds ?? 60))
    .setJti(options.jti ?? crypto.randomUUID())
    .sign(key);
}

/**
 * Exchanges a client file for an access token at a running hub. The hub's metadata (RFC 8414) names the issuer,
 * which is the assertion's audience; the request goes to the address given, which may differ behind a proxy.
 */
export async function fetchAccessToken(file: ClientFile, hubUrl: string, scope?: string): Promise<{ access_token: string; expires_in: number; scope: string }> {
  const base = hubUrl.replace(/\/+$/, '');
  const meta = await fetch(`${base}/.well-known/oauth-authorization-server`);
  if (!meta.ok) throw new Error(`${base} does not answer as a hub (metadata: HTTP ${meta.status})`);
  const { issuer } = (await meta.json()) as { issuer: string };
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_assertion_type: CLIENT_ASSERTION_TYPE,
    client_assertion: await createClientAssertion(file, issuer),
    ...(scope ? { scope } : {}),
  });
  const res = await fetch(`${base}/oauth/token`, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`token endpoint refused: ${String(json.error)}: ${String(json.error_description)}`);
  return json as { access_token: string; expires_in: number; scope: string };
}
