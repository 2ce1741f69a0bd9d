import crypto from 'node:crypto';
import { eq } from 'drizzle-orm';
import { createConnector, getConnector, updateConnector, type ConnectorInput } from '../../connectors/registry.ts';
import { connectorState } from '../../connectors/schema.ts';
import { startSimulator, type Simulator } from '../../connectors/simulators/index.ts';
import { systemContext } from '../../core/context.ts';
import type { Logger } from '../../core/logger.ts';
import type { Db } from '../index.ts';
import { DEMO_DEPARTMENTS } from './demo.ts';

export const DEMO_SOURCE_RECORDS = 100_000;

export interface DemoSources {
  simulators: Simulator[];
  /** connectors that have never completed a pass: the caller starts their first sync */
  neverSynced: string[];
  close(): Promise<void>;
}

/**
 * The embedded demo's department systems: the 公安, 市场监管 and 信用平台 simulators in this process, each with a
 * secret made for this start and handed over through an environment variable (as a real deployment would), and
 * the hub's connectors pointed at them, pulling every 15 minutes.
 */
export async function startDemoSources(db: Db, log: Logger, records = DEMO_SOURCE_RECORDS): Promise<DemoSources> {
  const secret = () => crypto.randomBytes(18).toString('base64url');
  process.env.HUB_DEMO_POPULATION_TOKEN = secret();
  process.env.HUB_DEMO_MARKET_KEY = secret();
  process.env.HUB_DEMO_CREDIT_SECRET = secret();
  const link = { linkPeople: records, linkOrgs: records };
  const population = await startSimulator({ kind: 'population', records, ...link, auth: { type: 'bearer', token: process.env.HUB_DEMO_POPULATION_TOKEN } });
  const market = await startSimulator({ kind: 'legal_person', records, ...link, auth: { type: 'apikey', header: 'x-api-key', key: process.env.HUB_DEMO_MARKET_KEY } });
  const credit = await startSimulator({ kind: 'credit', records, ...link, auth: { type: 'hmac', keyId: 'hub-demo', secret: process.env.HUB_DEMO_CREDIT_SECRET } });
  const [police, samr, xy] = [DEMO_DEPARTMENTS[0].code, DEMO_DEPARTMENTS[1].code, DEMO_DEPARTMENTS[2].code];
  const inputs: ConnectorInput[] = [
    { id: 'demo-population', name: '公安人口库（模拟）', departmentCode: police, kind: 'population', adapter: 'http', config: { url: population.url, auth: { type: 'bearer', tokenEnv: 'HUB_DEMO_POPULATION_TOKEN' } }, schedule: '*/15 * * * *' },
    { id: 'demo-legal-person', name: '市场主体登记库（模拟）', departmentCode: samr, kind: 'legal_person', adapter: 'http', config: { url: market.url, auth: { type: 'apikey', header: 'x-api-key', keyEnv: 'HUB_DEMO_MARKET_KEY' } }, schedule: '*/15 * * * *' },
    { id: 'demo-credit', name: '公共信用信息平台（模拟）', departmentCode: xy, kind: 'credit', adapter: 'http', config: { url: credit.url, auth: { type: 'hmac', keyId: 'hub-demo', secretEnv: 'HUB_DEMO_CREDIT_SECRET' } }, schedule: '*/15 * * * *' },
  ];
  const neverSynced: string[] = [];
  for (const input of inputs) {
    const ctx = systemContext(db, log, input.departmentCode, 'hub-demo');
    // the simulators listen on a new port each start: the connectors follow them
    if (await getConnector(db, input.id)) await updateConnector(ctx, input.id, input);
    else await createConnector(ctx, input);
    const [state] = await db.select().from(connectorState).where(eq(connectorState.connectorId, input.id));
    if (!state?.lastCompletedAt) neverSynced.push(input.id);
  }
  const simulators = [population, market, credit];
  return { simulators, neverSynced, close: async () => void (await Promise.all(simulators.map((s) => s.close()))) };
}
