import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { badInput, type HubError } from '../core/errors.ts';
import type { AdapterKind } from './schema.ts';
import { SECRET_NAME } from './secrets.ts';

/**
 * What a connector's `config` may say, adapter by adapter: every key is known (an unknown one, such as the
 * `tokenEnv` or `urlEnv` of earlier versions, is refused by name), secrets are named source secrets of the
 * connector's department, files are paths under its import folder, tables plain identifiers.
 */
const secret = z.string().regex(SECRET_NAME, 'a source secret name (lower-case letters, digits, . _ -)');
const IDENT = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const ident = z.string().regex(IDENT, 'a plain SQL identifier');
/** request headers a connector may not set: the hub sets them, or they would change the request's framing */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'proxy-authorization', 'expect']);
const header = z
  .string()
  .regex(/^[A-Za-z0-9-]{1,64}$/, 'a header name')
  .refine((h) => !RESERVED_HEADERS.has(h.toLowerCase()), 'a header the hub sets itself');
const common = {
  pageSize: z.number().int().min(1).max(10_000).optional(),
  /** the source field holding a record's id (quarantine and provenance name records by it) */
  idField: z.string().min(1).max(64).optional(),
};

export const HTTP_CONFIG = z.strictObject({
  url: z.string().max(2048),
  auth: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('none') }),
      z.strictObject({ type: z.literal('bearer'), secret }),
      z.strictObject({ type: z.literal('apikey'), header, secret }),
      z.strictObject({ type: z.literal('hmac'), keyId: z.string().regex(/^[A-Za-z0-9._-]{1,128}$/, 'a key id'), secret }),
    ])
    .optional(),
  timeoutMs: z.number().int().min(100).max(120_000).optional(),
  cursorFields: z.strictObject({ updatedAt: z.string().min(1).max(64), id: z.string().min(1).max(64) }).optional(),
  ...common,
});

export const FILE_CONFIG = z.strictObject({
  /** relative to HUB_IMPORT_DIR/<department code>/ */
  path: z.string().min(1).max(255),
  format: z.enum(['csv', 'jsonl']),
  ...common,
});

/** A host as a connector names it: a DNS name or an IP address, nothing that a driver reads as a socket path. */
const host = z
  .string()
  .max(253)
  .refine((h) => net.isIP(h) !== 0 || /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(h), 'a host name or an IP address');

/**
 * Where a SQL source is, in the config (so an approval covers it, and a change returns the connector to draft); only
 * the password is a secret. No other connection parameter is taken: none makes the driver read a file or a process
 * variable of the hub.
 */
export const SQL_CONFIG = z.strictObject({
  host,
  port: z.number().int().min(1).max(65535).optional(),
  database: z.string().regex(/^[A-Za-z0-9_$-]{1,63}$/, 'a database name'),
  user: z.string().regex(/^[A-Za-z0-9_.@-]{1,63}$/, 'a user name'),
  /** disable (the default), require (encrypted), verify-full (encrypted, certificate and host name checked) */
  sslmode: z.enum(['disable', 'require', 'verify-full']).optional(),
  /** the source secret holding the password */
  secret,
  table: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$/, 'a plain (optionally schema-qualified) SQL identifier'),
  idColumn: ident.optional(),
  updatedColumn: ident.optional(),
  ...common,
});

export type HttpConfig = z.infer<typeof HTTP_CONFIG>;
export type FileConfig = z.infer<typeof FILE_CONFIG>;
export type SqlConfig = z.infer<typeof SQL_CONFIG>;

const SCHEMAS = { http: HTTP_CONFIG, file: FILE_CONFIG, sql: SQL_CONFIG } as const;

/** The first problem of a zod parse as BAD_USER_INPUT naming the field (`config.auth.tokenEnv`). */
function problem(prefix: string, error: z.ZodError): HubError {
  // a key that is not a setting says most (a `tokenEnv` of earlier versions): it comes first
  const issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0]!;
  const at = [prefix, ...issue.path.map(String)].join('.');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const hint = /Env$/.test(key) ? ': the hub reads no environment variables for connectors; store the secret with setSourceSecret and name it in `secret`' : '';
    return badInput(`${at}.${key}`, `${at}.${key} is not a setting of this adapter${hint}`);
  }
  return badInput(at, `${at}: ${issue.message}`);
}

/** A file path as a connector may name it: relative, inside its department's import folder, no way out. */
function checkRelativePath(p: string): void {
  if (p.includes('\u0000') || p.includes('\\')) throw badInput('config.path', 'the path holds a NUL or a backslash');
  if (path.isAbsolute(p)) throw badInput('config.path', 'the path is relative to the department\'s import folder (HUB_IMPORT_DIR/<department code>/)');
  if (p.split('/').some((s) => s === '..' || s === '.')) throw badInput('config.path', 'the path may not hold . or .. segments');
}

/** Validates a connector's config for its adapter; the parsed config (unknown keys refused) or BAD_USER_INPUT. */
export function parseConnectorConfig(adapter: AdapterKind, config: unknown): HttpConfig | FileConfig | SqlConfig {
  const result = SCHEMAS[adapter].safeParse(config);
  if (!result.success) throw problem('config', result.error);
  const parsed = result.data;
  if (adapter === 'http') {
    let url: URL;
    try {
      url = new URL((parsed as HttpConfig).url);
    } catch {
      throw badInput('config.url', 'an http connector needs an absolute http(s) url');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badInput('config.url', 'an http connector needs an http(s) url');
    if (url.username || url.password) throw badInput('config.url', 'the url may not carry a user name or password: store it as a source secret');
  }
  if (adapter === 'file') checkRelativePath((parsed as FileConfig).path);
  return parsed;
}

/** The source secret a config names, if any. */
export function secretOf(adapter: AdapterKind, config: Record<string, unknown>): string | null {
  if (adapter === 'sql') return typeof config.secret === 'string' ? config.secret : null;
  if (adapter === 'http') {
    const auth = config.auth as { secret?: unknown } | undefined;
    return typeof auth?.secret === 'string' ? auth.secret : null;
  }
  return null;
}

/** A mapping as JSON may send it, checked in shape (it comes from a provider): 信息项 → source field and transform. */
const FIELD_MAPPING: z.ZodType = z.lazy(() =>
  z.strictObject({
    from: z.string().min(1).max(128).optional(),
    transform: z.enum(['trim', 'date', 'date8', 'number', 'list', 'upper', 'boolean']).optional(),
    values: z.record(z.string().max(128), z.union([z.string().max(1024), z.number(), z.boolean(), z.null()])).optional(),
    fields: z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/), FIELD_MAPPING).optional(),
    required: z.boolean().optional(),
  }),
);
const MAPPING = z.record(z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'a 信息项 code'), FIELD_MAPPING).refine((m) => Object.keys(m).length <= 200, 'at most 200 信息项');

export function checkMapping(mapping: unknown): void {
  const result = MAPPING.safeParse(mapping);
  if (!result.success) throw problem('mapping', result.error);
}
