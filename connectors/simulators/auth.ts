/**
 * How a simulator authenticates the hub's connectors: a bearer token, an API key in a header of its choosing, or an
 * HMAC-SHA256 request signature (`x-key-id`, `x-timestamp` in unix seconds, `x-signature` = hex HMAC-SHA256 of
 * `${METHOD}\n${path with query}\n${timestamp}`), refused beyond ±300 s.
 */
import crypto from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

export type SimulatorAuth =
  | { type: 'bearer'; token: string }
  | { type: 'apikey'; header: string; key: string }
  | { type: 'hmac'; keyId: string; secret: string };

export const HMAC_WINDOW_SECONDS = 300;

/** The hex HMAC-SHA256 signature of a request (path with its query string, exactly as sent). */
export function signRequest(secret: string, method: string, pathWithQuery: string, timestamp: number | string): string {
  return crypto.createHmac('sha256', secret).update(`${method.toUpperCase()}\n${pathWithQuery}\n${timestamp}`).digest('hex');
}

/** The headers a client sends to pass `auth` (for tests and tools). */
export function authHeaders(auth: SimulatorAuth, method: string, pathWithQuery: string, nowSeconds = Math.floor(Date.now() / 1000)): Record<string, string> {
  switch (auth.type) {
    case 'bearer':
      return { authorization: `Bearer ${auth.token}` };
    case 'apikey':
      return { [auth.header.toLowerCase()]: auth.key };
    case 'hmac':
      return { 'x-key-id': auth.keyId, 'x-timestamp': String(nowSeconds), 'x-signature': signRequest(auth.secret, method, pathWithQuery, nowSeconds) };
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Why a request does not pass `auth`, or null when it does. */
export function checkAuth(auth: SimulatorAuth, method: string, pathWithQuery: string, headers: IncomingHttpHeaders, nowSeconds = Math.floor(Date.now() / 1000)): string | null {
  switch (auth.type) {
    case 'bearer': {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header(headers, 'authorization') ?? '');
      if (!m) return 'a bearer token is required';
      return same(m[1]!, auth.token) ? null : 'the bearer token is not valid';
    }
    case 'apikey': {
      const key = header(headers, auth.header);
      if (!key) return `the ${auth.header} header is required`;
      return same(key, auth.key) ? null : 'the API key is not valid';
    }
    case 'hmac': {
      const keyId = header(headers, 'x-key-id');
      const ts = header(headers, 'x-timestamp');
      const sig = header(headers, 'x-signature');
      if (!keyId || !ts || !sig) return 'x-key-id, x-timestamp and x-signature are required';
      if (!same(keyId, auth.keyId)) return 'unknown key id';
      if (!/^\d{1,12}$/.test(ts) || Math.abs(nowSeconds - Number(ts)) > HMAC_WINDOW_SECONDS) return `x-timestamp is not within ${HMAC_WINDOW_SECONDS} s of the server clock`;
      return same(sig.toLowerCase(), signRequest(auth.secret, method, pathWithQuery, ts)) ? null : 'the signature does not match';
    }
  }
}
