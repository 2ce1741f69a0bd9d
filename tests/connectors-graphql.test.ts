import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../connectors/simulators/index.ts';
import { createLogger } from '../core/logger.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { startInlineRunner, type InlineRunner } from '../workers/inline.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';

const [POLICE, MARKET] = DEMO_DEPARTMENTS.map((d) => d.code);

describe.each(drivers())('connectors in GraphQL (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let runner: InlineRunner;
  let sim: Simulator;
  let police: string;
  let market: string;
  let admin: string;
  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    sim = await startSimulator({ kind: 'population', records: 800, auth: { type: 'bearer', token: 'gql-token' } });
    hub = await startTestHub(tdb.database, { jobs: { enqueue: (name, data) => runner.enqueue(name, data) }, env: { HUB_EGRESS_ALLOW: new URL(sim.url).host } });
    runner = await startInlineRunner({ database: tdb.database, db: tdb.database.db, logger: createLogger({ level: 'silent' }), masterKey: Buffer.from(TEST_MASTER_KEY, 'hex'), egress: hub.services.egress });
    police = await hub.token(await hub.newClient(['provider'], { department: POLICE! }));
    market = await hub.token(await hub.newClient(['provider'], { department: MARKET! }));
    admin = await hub.token(await hub.newClient(['admin'], { department: DEMO_DEPARTMENTS[4].code }));
    await hub.graphql(`mutation { designateBaseSource(kind: population, department: "${POLICE}", reason: "人口") { kind } }`, admin);
    await hub.graphql(`mutation { setSourceSecret(department: "${POLICE}", name: "gql-token", value: "gql-token") { version } }`, police);
  });
  afterAll(async () => {
    await runner?.stop();
    await sim?.close();
    await hub?.close();
    await tdb?.drop();
  });

  const CREATE = `mutation($input: ConnectorInput!) { createConnector(input: $input) { id kind adapter schedule state { circuit } } }`;
  const input = (over: Record<string, unknown> = {}) => ({
    id: `pop-gql-${driver}`,
    name: '公安人口',
    departmentCode: POLICE,
    kind: 'population',
    adapter: 'http',
    config: { url: sim.url, auth: { type: 'bearer', secret: 'gql-token' }, pageSize: 300 },
    schedule: '0 */6 * * *',
    ...over,
  });

  it('lets a provider create its own department\'s connector, not another\'s, and runs it on request', async () => {
    const other = await hub.graphql(CREATE, market, { input: input() });
    expect(other.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const badCron = await hub.graphql(CREATE, police, { input: input({ schedule: 'every day' }) });
    expect(badCron.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'schedule' });
    const created = await hub.graphql(CREATE, police, { input: input() });
    expect(created.body.data?.createConnector).toEqual({ id: `pop-gql-${driver}`, kind: 'population', adapter: 'http', schedule: '0 */6 * * *', state: { circuit: 'CLOSED' } });

    expect((await hub.graphql(`mutation { approveConnector(id: "pop-gql-${driver}") { status } }`, admin)).body.data?.approveConnector).toEqual({ status: 'APPROVED' });
    const run = await hub.graphql(`mutation { runConnector(id: "pop-gql-${driver}") { connectorId full } }`, police);
    expect(run.body.data?.runConnector).toEqual({ connectorId: `pop-gql-${driver}`, full: false });
    const runs = async () =>
      ((await hub.graphql(`{ syncRuns(connectorId: "pop-gql-${driver}") { status fetched inserted quarantined batches } }`, police)).body.data?.syncRuns ?? []) as { status: string; fetched: number }[];
    await expect.poll(async () => (await runs())[0]?.status, { timeout: 20_000 }).toBe('SUCCEEDED');
    expect((await runs())[0]).toMatchObject({ fetched: 800, batches: 3 });
    const q = await hub.graphql(`{ quarantine(connectorId: "pop-gql-${driver}") { sourceId reason } }`, police);
    expect((q.body.data?.quarantine as unknown[]).length).toBe(800 - ((await runs())[0] as unknown as { inserted: number }).inserted);
    expect((await hub.graphql(`{ quarantine(connectorId: "pop-gql-${driver}") { sourceId } }`, market)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });
});
