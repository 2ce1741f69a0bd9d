import crypto, { type KeyObject } from 'node:crypto';
import { signerPool } from './signer-pool.ts';

/** \u escapes of UTF-16 units from 0x80 up, made on first use */
const ESCAPES: (string | undefined)[] = new Array<string | undefined>(0x10000).fill(undefined);

/** A run of characters past ASCII as \u escapes (one call per run: a name or an address is one). */
function escapeRun(run: string): string {
  let out = '';
  for (let i = 0; i < run.length; i++) {
    const c = run.charCodeAt(i);
    out += ESCAPES[c] ?? (ESCAPES[c] = `\\u${c.toString(16).padStart(4, '0')}`);
  }
  return out;
}

/**
 * JSON text with every character past ASCII written as a \u escape (surrogate pairs as two): the same value, one
 * byte per character, so a verifier's base64url and UTF-8 decoding and JSON.parse read a one-byte string. A licence
 * payload's Chinese names and addresses cost a verification 1.7 µs more when sent as UTF-8 (6.6 → 4.9 µs to decode).
 * Escaped run by run: 5.2 µs a payload against 6.3 µs character by character.
 */
export function asciiJson(v: unknown): string {
  return JSON.stringify(v).replace(/[\u0080-\uffff]+/g, escapeRun);
}

export const enc = (v: unknown) => Buffer.from(asciiJson(v), 'latin1').toString('base64url');

/** ES256 compact JWS with node:crypto (jose would re-import the key on every call). */
const signingInput = (header: Record<string, unknown> | string, payload: unknown) => `${typeof header === 'string' ? header : enc(header)}.${enc(payload)}`;

export function signCompactJws(header: Record<string, unknown> | string, payload: unknown, privateKey: KeyObject): string {
  const input = signingInput(header, payload);
  const sig = crypto.sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${sig.toString('base64url')}`;
}

/**
 * The stored form of an ES256 compact JWS, `payload.signature`: its protected header (the signing key's, the same on
 * every licence it signs) is signed over but kept once, with the key. Signed in the signer pool's worker threads, so a
 * batch's signatures run on every core while the main thread builds the next credentials.
 */
export function signDetachedJwsAsync(header: string, payload: unknown, key: { kid: string; privateKey: KeyObject }): Promise<string> {
  const body = enc(payload);
  return signerPool.sign(key.kid, key.privateKey, header, body).then((sig) => `${body}.${sig}`);
}

export interface DecodedJws {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

/** Splits and parses a compact JWS; null when it is not one. */
export function decodeCompactJws(jws: string, knownHeader?: Record<string, unknown>): DecodedJws | null {
  const a = jws.indexOf('.');
  const b = jws.indexOf('.', a + 1);
  if (a < 1 || b < 0 || jws.indexOf('.', b + 1) >= 0) return null;
  try {
    const header = knownHeader ?? (JSON.parse(Buffer.from(jws.slice(0, a), 'base64url').toString('utf8')) as unknown);
    const payload = JSON.parse(Buffer.from(jws.slice(a + 1, b), 'base64url').toString('utf8')) as unknown;
    if (!header || typeof header !== 'object' || Array.isArray(header) || !payload || typeof payload !== 'object' || Array.isArray(payload)) return null;
    return { header: header as Record<string, unknown>, payload: payload as Record<string, unknown>, signingInput: jws.slice(0, b), signature: Buffer.from(jws.slice(b + 1), 'base64url') };
  } catch {
    return null;
  }
}

export function verifyEs256(signingInput: Buffer, signature: Buffer, publicKey: KeyObject): boolean {
  if (signature.length !== 64) return false;
  return crypto.verify('sha256', signingInput, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature);
}

let scratch = Buffer.allocUnsafe(16 * 1024);
let held: Buffer | undefined;

/**
 * The bytes of a signing input whose start (a protected header and its dot) is known as bytes already: the rest is
 * written after it in one scratch buffer, as UTF-8 like Buffer.from would, so a verification neither encodes the
 * header's few kilobytes of x5c again nor allocates. The bytes are good until the next call: pass them straight
 * to a synchronous check.
 */
export function signingBytes(prefix: Buffer, rest: string): Buffer {
  const need = prefix.length + rest.length * 3;
  if (scratch.length < need) {
    scratch = Buffer.allocUnsafe(need);
    held = undefined;
  }
  if (held !== prefix) {
    prefix.copy(scratch, 0);
    held = prefix;
  }
  return scratch.subarray(0, prefix.length + scratch.write(rest, prefix.length, 'utf8'));
}
