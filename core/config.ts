import path from 'node:path';
import { z } from 'zod';
import { EgressPolicy } from './egress.ts';
import { StartupError } from './errors.ts';

/**
 * Node flags every hub process runs with (package.json's start, worker and bench scripts; the benchmarks start hub
 * processes with them). A 64 MiB young generation: a batch's short-lived texts (signed credentials, audit entries,
 * array literals) die young instead of being copied into the old generation; batch reads went 19,300 → 24,300
 * subjects/s with it, in the same benchmark.
 */
export const HUB_NODE_FLAGS = ['--max-semi-space-size=64'] as const;

/** Turns '' into undefined: an empty variable counts as absent (API-CONTRACT.md). */
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? undefined : v), schema.optional());

const url = (protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

const envSchema = z.object({
  NODE_ENV: optional(z.enum(['development', 'production', 'test'])),
  DATABASE_URL: optional(url(['postgres:', 'postgresql:'])),
  REDIS_URL: optional(url(['redis:', 'rediss:'])),
  PORT: optional(z.coerce.number().int().min(0).max(65535)),
  HUB_HOST: optional(z.string()),
  HUB_ISSUER: optional(url(['http:', 'https:'])),
  HUB_DATA_DIR: optional(z.string()),
  HUB_MASTER_KEY: optional(
    z.string().refine((v) => decodeMasterKey(v) !== null, 'must be 32 bytes as 64 hex characters or base64'),
  ),
  HUB_LOG_LEVEL: optional(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])),
  HUB_DB_POOL_SIZE: optional(z.coerce.number().int().min(1).max(500)),
  HUB_REQUIRE_SERVICES: optional(z.enum(['0', '1'])),
  HUB_OIDC_ISSUER: optional(url(['http:', 'https:'])),
  HUB_OIDC_AUDIENCE: optional(z.string()),
  HUB_OIDC_SUBJECT_CLAIM: optional(z.string()),
  HUB_READ_RATE: optional(z.coerce.number().int().min(1).max(1_000_000)),
  HUB_VERIFY_RATE: optional(z.coerce.number().int().min(1).max(1_000_000)),
  HUB_EGRESS_ALLOW: optional(
    z.string().superRefine((v, ctx) => {
      const problem = EgressPolicy.problemOf(v);
      if (problem) ctx.addIssue({ code: 'custom', message: `has a bad entry: ${problem}` });
    }),
  ),
  HUB_IMPORT_DIR: optional(z.string().refine((v) => path.isAbsolute(v) && !v.includes('\u0000'), 'must be an absolute path')),
  HUB_QUEUE: optional(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 letters, digits, _ or -')),
});

export interface HubConfig {
  env: 'development' | 'production' | 'test';
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  port: number;
  host: string;
  /** Public base URL; the OAuth issuer and the audience of client assertions. */
  issuer: string;
  dataDir: string;
  /** 32 bytes, or undefined: then the embedded default keeps one in dataDir. */
  masterKey: Buffer | undefined;
  logLevel: string;
  dbPoolSize: number;
  /** the BullMQ queue name (one per deployment) */
  queue: string;
  /** subjects a client may read per second (shared through Redis when configured) */
  readRate: number;
  /** POST /verify requests per second per client address (shared through Redis when configured) */
  verifyRate: number;
  /** HUB_EGRESS_ALLOW as given: hosts, addresses and CIDRs the hub may call although they are not public */
  egressAllow: string | undefined;
  /** HUB_IMPORT_DIR: file sources only from its <department code>/ folders */
  importDir: string | undefined;
  /** holders' identity provider (OpenID Connect): ID tokens from it are accepted for the holders' own views */
  oidc: { issuer: string; audience: string; subjectClaim: string } | undefined;
}

export function decodeMasterKey(value: string): Buffer | null {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(value)) {
    const b = Buffer.from(value, 'base64');
    if (b.length === 32) return b;
  }
  return null;
}

/**
 * Reads and validates the environment once. A wrong value throws a StartupError whose message is one line naming
 * the variable, e.g. `PORT: must be a number from 0 to 65535 (got "abc")`.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    const raw = env[name];
    const shown = name === 'HUB_MASTER_KEY' || name === 'DATABASE_URL' || name === 'REDIS_URL' ? '' : ` (got ${JSON.stringify(raw)})`;
    throw new StartupError(`${name}: ${describeIssue(issue)}${shown}`);
  }
  const e = parsed.data;
  const nodeEnv = e.NODE_ENV ?? 'development';
  if (nodeEnv === 'production' && e.DATABASE_URL && !e.HUB_MASTER_KEY) {
    throw new StartupError('HUB_MASTER_KEY: required when DATABASE_URL is set and NODE_ENV=production');
  }
  const port = e.PORT ?? 4000;
  return {
    env: nodeEnv,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port,
    host: e.HUB_HOST ?? '0.0.0.0',
    issuer: (e.HUB_ISSUER ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    dataDir: path.resolve(e.HUB_DATA_DIR ?? '.hub'),
    masterKey: e.HUB_MASTER_KEY ? decodeMasterKey(e.HUB_MASTER_KEY)! : undefined,
    logLevel: e.HUB_LOG_LEVEL ?? (nodeEnv === 'test' ? 'silent' : 'info'),
    dbPoolSize: e.HUB_DB_POOL_SIZE ?? 20,
    queue: e.HUB_QUEUE ?? 'hub',
    readRate: e.HUB_READ_RATE ?? 5000,
    verifyRate: e.HUB_VERIFY_RATE ?? 100,
    egressAllow: e.HUB_EGRESS_ALLOW,
    importDir: e.HUB_IMPORT_DIR,
    oidc: e.HUB_OIDC_ISSUER ? { issuer: e.HUB_OIDC_ISSUER, audience: e.HUB_OIDC_AUDIENCE ?? 'hub', subjectClaim: e.HUB_OIDC_SUBJECT_CLAIM ?? 'id_number' } : undefined,
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'too_small':
    case 'too_big':
    case 'invalid_type':
      return issue.path[0] === 'PORT' ? 'must be a number from 0 to 65535' : issue.message;
    default:
      return issue.message;
  }
}
