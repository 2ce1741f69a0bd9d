import crypto from 'node:crypto';
import { actEntry } from '../audit/acts.ts';
import { asc, eq, sql } from 'drizzle-orm';
import { CronExpressionParser } from 'cron-parser';
import { appendInTransaction } from '../audit/writer.ts';
import { canonicalJson } from '../basedata/store.ts';
import { actorOf, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { EgressRefused, type EgressPolicy } from '../core/egress.ts';
import { badInput, HubError, isUniqueViolation, notFound } from '../core/errors.ts';
import { notify, type Db } from '../db/index.ts';
import { BASE_RECORD_KINDS, type BaseRecordKind } from '../basedata/schema.ts';
import { requireAuthoritative } from './authority.ts';
import { checkMapping, parseConnectorConfig, secretOf } from './config.ts';
import { PRESET_MAPPINGS, type Mapping } from './records.ts';
import { ADAPTERS, connectors, connectorState, type AdapterKind } from './schema.ts';
import { sourceSecretExists } from './secrets.ts';

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

/** What checking a connector's source needs beyond its text: the egress policy (absent: checked when it runs). */
export interface ConnectorChecks {
  egress?: EgressPolicy | undefined;
}

/** The settings an approval covers: everything that decides what the connector reads, from where, and how. */
const APPROVED_COLUMNS = ['name', 'departmentCode', 'kind', 'adapter', 'config', 'mapping', 'schedule', 'authoritative', 'enabled'] as const;
type Settings = Pick<Connector, (typeof APPROVED_COLUMNS)[number]>;

/** SHA-256 of a connector's settings in canonical JSON: what an admin approved, checked again before each run. */
export function configurationDigest(c: Settings): string {
  const settings: Record<string, unknown> = {};
  for (const k of APPROVED_COLUMNS) settings[k] = c[k] ?? null;
  return crypto.createHash('sha256').update(canonicalJson(settings)).digest('hex');
}

/** Whether a connector may run: approved, and still in the configuration that was approved. */
export function isApproved(c: Connector): boolean {
  return c.status === 'APPROVED' && c.approvedDigest === configurationDigest(c);
}

/** The columns a connector's input sets, validated: the same for creating and updating. */
function validate(input: ConnectorInput) {
  if (!/^[a-z0-9][a-z0-9-]{2,62}$/.test(input.id ?? '')) throw badInput('id', 'a connector id is 3–63 lower-case letters, digits and dashes');
  if (typeof input.name !== 'string' || !input.name.trim() || input.name.length > 200) throw badInput('name', 'a connector needs a name (at most 200 characters)');
  if (!(BASE_RECORD_KINDS as readonly string[]).includes(input.kind)) throw badInput('kind', `kind is one of ${BASE_RECORD_KINDS.join(', ')}`);
  if (!(ADAPTERS as readonly string[]).includes(input.adapter)) throw badInput('adapter', `adapter is one of ${ADAPTERS.join(', ')}`);
  if (!input.config || typeof input.config !== 'object' || Array.isArray(input.config)) throw badInput('config', 'config must be an object');
  const adapter = input.adapter as AdapterKind;
  const config = parseConnectorConfig(adapter, input.config) as Record<string, unknown>;
  if (input.mapping !== undefined && input.mapping !== null) checkMapping(input.mapping);
  if (input.schedule) {
    try {
      CronExpressionParser.parse(input.schedule, { tz: 'Asia/Shanghai' });
    } catch {
      throw badInput('schedule', `"${input.schedule}" is not a cron expression`);
    }
  }
  const kind = input.kind as BaseRecordKind;
  return {
    name: input.name.trim(),
    kind,
    adapter,
    config,
    mapping: (input.mapping ?? PRESET_MAPPINGS[kind]) as Record<string, unknown>,
    schedule: input.schedule ?? null,
    authoritative: Boolean(input.authoritative),
    enabled: input.enabled ?? true,
  };
}

/** The egress check of a connector's source (an http URL, a SQL host), as BAD_USER_INPUT on the field. */
async function checkSource(checks: ConnectorChecks | undefined, adapter: AdapterKind, config: Record<string, unknown>): Promise<void> {
  if (!checks?.egress || adapter === 'file') return;
  const field = adapter === 'http' ? 'config.url' : 'config.host';
  try {
    if (adapter === 'http') await checks.egress.check(String(config.url));
    else await checks.egress.checkHost(String(config.host), typeof config.port === 'number' ? config.port : 5432);
  } catch (error) {
    if (error instanceof EgressRefused) throw badInput(field, `the egress policy refuses this source (${error.reason}): ${error.message}`);
    throw error;
  }
}

/** What changed between two settings, for the audit entry: each changed column, from and to (no secret is in them). */
function diffOf(before: Settings | null, after: Settings): Record<string, { from: unknown; to: unknown }> {
  const changed: Record<string, { from: unknown; to: unknown }> = {};
  for (const k of APPROVED_COLUMNS) {
    const from = before ? (before[k] ?? null) : null;
    const to = after[k] ?? null;
    if (canonicalJson(from) !== canonicalJson(to)) changed[k] = { from, to };
  }
  return changed;
}

/** The audit entry of an act on a connector by the acting principal. */
function act(ctx: HubContext, operation: string, connector: Pick<Connector, 'id' | 'departmentCode'>, details: Record<string, unknown>) {
  return actEntry(actorOf(ctx), operation, { details: { connector: connector.id, departmentCode: connector.departmentCode, ...details } });
}

/**
 * Creates a connector for the caller's department (providers) or any (admins), as a DRAFT: it runs once an admin
 * approved it. A department may only create connectors of the base kinds it is the authoritative source of.
 */
export async function createConnector(ctx: HubContext, input: ConnectorInput, checks?: ConnectorChecks): Promise<Connector> {
  const p = requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, input.departmentCode, `a connector of department ${input.departmentCode}`);
  const v = validate(input);
  await checkSource(checks, v.adapter, v.config);
  try {
    return await ctx.db.transaction(async (tx) => {
      await requireAuthoritative(tx, v.kind, input.departmentCode);
      const [row] = await tx
        .insert(connectors)
        .values({ id: input.id, departmentCode: input.departmentCode, ...v, status: 'DRAFT', draftedBy: [p.clientId] })
        .returning();
      await tx.insert(connectorState).values({ connectorId: input.id });
      await appendInTransaction(tx, [act(ctx, 'CONNECTOR_CREATE', row!, { status: 'DRAFT', changed: diffOf(null, row!) })]);
      await notify(tx, CONNECTORS_CHANNEL, input.id);
      return row!;
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new HubError('CONFLICT', `connector ${input.id} already exists`, {}, { cause: error });
    if ((error as { code?: string })?.code === '23503') throw badInput('departmentCode', `department ${input.departmentCode} is not registered`);
    throw error;
  }
}

/** Changes a connector's settings. A change returns it to DRAFT, to run again once an admin approved the new ones. */
export async function updateConnector(ctx: HubContext, id: string, input: Omit<ConnectorInput, 'id' | 'departmentCode'>, checks?: ConnectorChecks): Promise<Connector> {
  const p = requireRole(ctx, 'provider', 'admin');
  const current = await getConnector(ctx.db, id);
  if (!current) throw notFound(`connector ${id}`);
  requireOwnDepartment(ctx, current.departmentCode, `connector ${id}`);
  const v = validate({ ...input, id, departmentCode: current.departmentCode });
  await checkSource(checks, v.adapter, v.config);
  return ctx.db.transaction(async (tx) => {
    await requireAuthoritative(tx, v.kind, current.departmentCode);
    const [before] = await tx.select().from(connectors).where(eq(connectors.id, id)).for('update');
    const changed = diffOf(before!, { ...v, departmentCode: current.departmentCode });
    if (Object.keys(changed).length === 0) return before!; // nothing changed: the approval stands
    const [row] = await tx
      .update(connectors)
      .set({ ...v, status: 'DRAFT', draftedBy: before!.status === 'APPROVED' ? [p.clientId] : [...new Set([...before!.draftedBy, p.clientId])], approvedBy: null, approvedAt: null, approvedDigest: null, updatedAt: sql`now()` })
      .where(eq(connectors.id, id))
      .returning();
    await appendInTransaction(tx, [act(ctx, 'CONNECTOR_UPDATE', row!, { status: 'DRAFT', previousStatus: before!.status, changed })]);
    await notify(tx, CONNECTORS_CHANNEL, id);
    return row!;
  });
}

/**
 * 前置机登记 approved: the hub operator (admin) approves a connector's configuration as it is now, or as the digest
 * given says it is (what the admin reviewed: a change since is refused); no client that changed it since its last
 * approval may (four eyes). The department must be the kind's authoritative source, the secret it names must be set,
 * and its source must pass the egress policy.
 */
export async function approveConnector(ctx: HubContext, id: string, checks?: ConnectorChecks, reviewedDigest?: string | null): Promise<Connector> {
  const p = requireRole(ctx, 'admin');
  const current = await getConnector(ctx.db, id);
  if (!current) throw notFound(`connector ${id}`);
  const checked = configurationDigest(current);
  if (reviewedDigest && reviewedDigest !== checked) throw new HubError('CONFLICT', `connector ${id} changed since the configuration you reviewed (its digest is ${checked})`);
  await checkSource(checks, current.adapter, current.config);
  return ctx.db.transaction(async (tx) => {
    const [c] = await tx.select().from(connectors).where(eq(connectors.id, id)).for('update');
    if (!c) throw notFound(`connector ${id}`);
    const digest = configurationDigest(c);
    // what was checked above is what is approved: a change in between is refused, not approved unseen
    if (digest !== checked) throw new HubError('CONFLICT', `connector ${id} changed while it was being approved; review it again`);
    if (c.draftedBy.includes(p.clientId)) throw new HubError('FORBIDDEN', `connector ${id} was changed by this client (${p.clientId}) since its last approval; another admin approves it (four eyes)`, { reason: 'FOUR_EYES' });
    if (c.status === 'APPROVED' && c.approvedDigest === digest) throw new HubError('CONFLICT', `connector ${id} is approved in this configuration already`);
    // what the connector would run with is checked again, as it is now
    parseConnectorConfig(c.adapter, c.config);
    checkMapping(c.mapping);
    await requireAuthoritative(tx, c.kind, c.departmentCode);
    const secret = secretOf(c.adapter, c.config);
    if (secret && !(await sourceSecretExists(tx, c.departmentCode, secret))) {
      throw badInput(c.adapter === 'sql' ? 'config.secret' : 'config.auth.secret', `source secret "${secret}" of department ${c.departmentCode} is not set (setSourceSecret)`);
    }
    const [row] = await tx
      .update(connectors)
      .set({ status: 'APPROVED', approvedBy: p.clientId, approvedAt: sql`now()`, approvedDigest: digest, draftedBy: [] })
      .where(eq(connectors.id, id))
      .returning();
    await appendInTransaction(tx, [act(ctx, 'CONNECTOR_APPROVE', row!, { digest, draftedBy: c.draftedBy, adapter: c.adapter, kind: c.kind, config: c.config })]);
    await notify(tx, CONNECTORS_CHANNEL, id);
    return row!;
  });
}

/** Records who asked for a run of a connector (runConnector, `hub sync`), in the audit log. */
export async function recordRunRequest(ctx: HubContext, c: Connector, full: boolean): Promise<void> {
  await ctx.db.transaction((tx) => appendInTransaction(tx, [act(ctx, 'CONNECTOR_RUN', c, { full })]));
}

export async function getConnector(db: Db, id: string): Promise<Connector | undefined> {
  const [c] = await db.select().from(connectors).where(eq(connectors.id, id));
  return c;
}

export async function listConnectors(db: Db, department?: string | null): Promise<Connector[]> {
  return db.select().from(connectors).where(department ? eq(connectors.departmentCode, department) : undefined).orderBy(asc(connectors.id));
}
