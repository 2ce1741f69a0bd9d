import crypto from 'node:crypto';
import { eq } from 'drizzle-orm';
import { approveConnector, createConnector, getConnector, isApproved, updateConnector, type Connector, type ConnectorInput } from '../../connectors/registry.ts';
import { connectorState } from '../../connectors/schema.ts';
import { setSourceSecret } from '../../connectors/secrets.ts';
import { startSimulator, type Simulator } from '../../connectors/simulators/index.ts';
import { systemContext } from '../../core/context.ts';
import type { EgressPolicy } from '../../core/egress.ts';
import type { Logger } from '../../core/logger.ts';
import type { Db } from '../index.ts';
import { DEMO_ADMIN, DEMO_DEPARTMENTS } from './demo.ts';

export const DEMO_SOURCE_RECORDS = 100_000;

export interface DemoSources {
  simulators: Simulator[];
  /** connectors that have never completed a pass: the caller starts their first sync */
  neverSynced: string[];
  close(): Promise<void>;
}

/**
 * A source as a department and the operator register one (README, "Registering a source"): the department stores its
 * secret and drafts the connector (`drafter`, acting for the department), the operator (`operator`, an admin client of
 * the 数据管理局) approves it. Used by the demo and the benchmarks; the same three acts as through GraphQL or the CLI.
 */
export async function registerSource(
  db: Db,
  log: Logger,
  masterKey: Buffer,
  input: ConnectorInput,
  options: { secret?: { name: string; value: string }; drafter?: string; operator?: { clientId: string; department: string } } = {},
): Promise<Connector> {
  const department = systemContext(db, log, input.departmentCode, options.drafter ?? 'hub-demo');
  department.principal.roles = ['provider'];
  if (options.secret) await setSourceSecret(department, masterKey, input.departmentCode, options.secret.name, options.secret.value);
  const connector = (await getConnector(db, input.id)) ? await updateConnector(department, input.id, input) : await createConnector(department, input);
  if (isApproved(connector)) return connector;
  const operator = options.operator ?? { clientId: DEMO_ADMIN.clientId, department: DEMO_ADMIN.department };
  return approveConnector(systemContext(db, log, operator.department, operator.clientId), input.id);
}

/**
 * The embedded demo's department systems: the 公安, 市场监管 and 信用平台 simulators in this process, each with a
 * secret made for this start and stored as its department's source secret (as a real department would), the hub's
 * connectors pointed at them and approved by the demo's operator client, pulling every 15 minutes. The simulators
 * listen on loopback, which the egress policy refuses: the demo lists exactly their addresses.
 */
export async function startDemoSources(db: Db, log: Logger, masterKey: Buffer, egress: EgressPolicy, records = DEMO_SOURCE_RECORDS): Promise<DemoSources> {
  const secret = () => crypto.randomBytes(18).toString('base64url');
  const [populationToken, marketKey, creditSecret] = [secret(), secret(), secret()];
  const link = { linkPeople: records, linkOrgs: records };
  const population = await startSimulator({ kind: 'population', records, ...link, auth: { type: 'bearer', token: populationToken } });
  const market = await startSimulator({ kind: 'legal_person', records, ...link, auth: { type: 'apikey', header: 'x-api-key', key: marketKey } });
  const credit = await startSimulator({ kind: 'credit', records, ...link, auth: { type: 'hmac', keyId: 'hub-demo', secret: creditSecret } });
  const simulators = [population, market, credit];
  egress.allow(...simulators.map((s) => new URL(s.url).host));
  const [police, samr, xy] = [DEMO_DEPARTMENTS[0].code, DEMO_DEPARTMENTS[1].code, DEMO_DEPARTMENTS[2].code];
  const sources: { input: ConnectorInput; secret: { name: string; value: string } }[] = [
    {
      input: { id: 'demo-population', name: '公安人口库（模拟）', departmentCode: police, kind: 'population', adapter: 'http', config: { url: population.url, auth: { type: 'bearer', secret: 'demo-population-token' } }, schedule: '*/15 * * * *' },
      secret: { name: 'demo-population-token', value: populationToken },
    },
    {
      input: { id: 'demo-legal-person', name: '市场主体登记库（模拟）', departmentCode: samr, kind: 'legal_person', adapter: 'http', config: { url: market.url, auth: { type: 'apikey', header: 'x-api-key', secret: 'demo-market-key' } }, schedule: '*/15 * * * *' },
      secret: { name: 'demo-market-key', value: marketKey },
    },
    {
      input: { id: 'demo-credit', name: '公共信用信息平台（模拟）', departmentCode: xy, kind: 'credit', adapter: 'http', config: { url: credit.url, auth: { type: 'hmac', keyId: 'hub-demo', secret: 'demo-credit-secret' } }, schedule: '*/15 * * * *' },
      secret: { name: 'demo-credit-secret', value: creditSecret },
    },
  ];
  const neverSynced: string[] = [];
  for (const { input, secret: s } of sources) {
    // the simulators listen on a new port each start: the connectors follow them, and the operator approves again
    await registerSource(db, log, masterKey, input, { secret: s });
    const [state] = await db.select().from(connectorState).where(eq(connectorState.connectorId, input.id));
    if (!state?.lastCompletedAt) neverSynced.push(input.id);
  }
  return { simulators, neverSynced, close: async () => void (await Promise.all(simulators.map((s) => s.close()))) };
}
