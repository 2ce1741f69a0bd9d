import { asc, eq, sql } from 'drizzle-orm';
import { CronExpressionParser } from 'cron-parser';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, isUniqueViolation, notFound } from '../core/errors.ts';
import { notify, type Db } from '../db/index.ts';
import { BASE_RECORD_KINDS, type BaseRecordKind } from '../basedata/schema.ts';
import { fileAdapter, httpAdapter, sqlAdapter, type SourceAdapter } from './adapters.ts';
import { PRESET_MAPPINGS, type Mapping } from './records.ts';
import { ADAPTERS, connectors, connectorState, type AdapterKind } from './schema.ts';

export type Connector = typeof connectors.$inferSelect;
export const CONNECTORS_CHANNEL = 'hub_connectors';

export interface ConnectorInput {
  id: string;
  name: string;
  departmentCode: string;
  kind: string;
  adapter: string;
  config: Record<string, unknown>;
  /** omitted: the preset mapping of the kind (the simulators' source format) */
  mapping?: Mapping | null;
  schedule?: string | null;
  authoritative?: boolean | null;
  enabled?: boolean | null;
}

/** Config keys that would hold a secret in clear: refused, the config names an environment variable instead. */
const SECRET_KEYS = /^(token|password|secret|key|apiKey|api_key|connectionString|dsn)$/i;

function findSecret(value: unknown, path: string): string | null {
  if (!value || typeof value !== 'object') return null;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEYS.test(k)) return `${path}.${k}`;
    if (typeof v === 'string' && /^postgres(ql)?:\/\/[^@/]*:[^@/]*@/.test(v)) return `${path}.${k}`;
    const nested = findSecret(v, `${path}.${k}`);
    if (nested) return nested;
  }
  return null;
}

/** The columns a connector's input sets, validated: the same for creating and updating. */
function validate(input: ConnectorInput) {
  const v = check(input);
  return {
    name: input.name.trim(),
    kind: v.kind,
    adapter: v.adapter,
    config: input.config,
    mapping: v.mapping as Record<string, unknown>,
    schedule: input.schedule ?? null,
    authoritative: Boolean(input.authoritative),
    enabled: input.enabled ?? true,
  };
}

function check(input: ConnectorInput): { kind: BaseRecordKind; adapter: AdapterKind; mapping: Mapping } {
  if (!/^[a-z0-9][a-z0-9-]{2,62}$/.test(input.id ?? '')) throw badInput('id', 'a connector id is 3–63 lower-case letters, digits and dashes');
  if (!input.name?.trim()) throw badInput('name', 'a connector needs a name');
  if (!(BASE_RECORD_KINDS as readonly string[]).includes(input.kind)) throw badInput('kind', `kind is one of ${BASE_RECORD_KINDS.join(', ')}`);
  if (!(ADAPTERS as readonly string[]).includes(input.adapter)) throw badInput('adapter', `adapter is one of ${ADAPTERS.join(', ')}`);
  if (!input.config || typeof input.config !== 'object') throw badInput('config', 'config must be an object');
  const secret = findSecret(input.config, 'config');
  if (secret) throw badInput(secret, 'secrets are never stored: name the environment variable that holds it (tokenEnv, keyEnv, secretEnv, urlEnv)');
  const c = input.config;
  if (input.adapter === 'http' && !(typeof c.url === 'string' && /^https?:\/\//.test(c.url))) throw badInput('config.url', 'an http connector needs an http(s) url');
  if (input.adapter === 'file' && !(typeof c.path === 'string' && (c.format === 'csv' || c.format === 'jsonl'))) throw badInput('config', 'a file connector needs a path and a format (csv or jsonl)');
  if (input.adapter === 'sql' && !(typeof c.urlEnv === 'string' && typeof c.table === 'string')) throw badInput('config', 'a sql connector needs urlEnv and table');
  if (input.schedule) {
    try {
      CronExpressionParser.parse(input.schedule, { tz: 'Asia/Shanghai' });
    } catch {
      throw badInput('schedule', `"${input.schedule}" is not a cron expression`);
    }
  }
  const kind = input.kind as BaseRecordKind;
  return { kind, adapter: input.adapter as AdapterKind, mapping: input.mapping ?? PRESET_MAPPINGS[kind] };
}

/** Creates a connector for the caller's department (providers) or any (admins). */
export async function createConnector(ctx: HubContext, input: ConnectorInput): Promise<Connector> {
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, input.departmentCode, `a connector of department ${input.departmentCode}`);
  const v = validate(input);
  try {
    return await ctx.db.transaction(async (tx) => {
      const [row] = await tx
        .insert(connectors)
        .values({ id: input.id, departmentCode: input.departmentCode, ...v })
        .returning();
      await tx.insert(connectorState).values({ connectorId: input.id });
      await notify(tx, CONNECTORS_CHANNEL, input.id);
      return row!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new HubError('CONFLICT', `connector ${input.id} already exists`, {}, { cause: error });
    if ((error as { code?: string })?.code === '23503') throw badInput('departmentCode', `department ${input.departmentCode} is not registered`);
    throw error;
  }
}

export async function updateConnector(ctx: HubContext, id: string, input: Omit<ConnectorInput, 'id' | 'departmentCode'>): Promise<Connector> {
  const current = await getConnector(ctx.db, id);
  if (!current) throw notFound(`connector ${id}`);
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, current.departmentCode, `connector ${id}`);
  const v = validate({ ...input, id, departmentCode: current.departmentCode });
  return ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(connectors)
      .set({ ...v, updatedAt: sql`now()` })
      .where(eq(connectors.id, id))
      .returning();
    await notify(tx, CONNECTORS_CHANNEL, id);
    return row!;
  });
}

export async function getConnector(db: Db, id: string): Promise<Connector | undefined> {
  const [c] = await db.select().from(connectors).where(eq(connectors.id, id));
  return c;
}

export async function listConnectors(db: Db, department?: string | null): Promise<Connector[]> {
  return db.select().from(connectors).where(department ? eq(connectors.departmentCode, department) : undefined).orderBy(asc(connectors.id));
}

export function adapterFor(connector: Connector, env: NodeJS.ProcessEnv = process.env): SourceAdapter {
  const c = connector.config as never;
  switch (connector.adapter) {
    case 'http':
      return httpAdapter(c, env);
    case 'file':
      return fileAdapter(c);
    case 'sql':
      return sqlAdapter(c, env);
  }
}
