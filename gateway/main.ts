import http from 'node:http';
import path from 'node:path';
import { loadConfig } from '../core/config.ts';
import { StartupError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { seedDemo } from '../db/seeds/demo.ts';
import { startDemoSources } from '../db/seeds/demo-sources.ts';
import { startInlineRunner } from '../workers/inline.ts';
import { Queue } from 'bullmq';
import type { JobQueuePort } from '../connectors/graphql.ts';
import { DEFAULT_JOB_OPTIONS, redisConnection } from '../workers/bullmq.ts';
import { buildApp, type ReadinessProbe } from './app.ts';
import { openHub } from './services.ts';

/**
 * `npm start`: one gateway process. With no environment it runs the embedded default: PGlite in .hub/, migrations,
 * hub keys, the demo, and the recurring jobs in-process.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger({ level: config.logLevel }, undefined);
  const embedded = !config.databaseUrl;
  const services = await openHub(config, logger, { migrate: embedded });
  let demo: Awaited<ReturnType<typeof seedDemo>> | undefined;
  if (embedded) demo = await seedDemo(services.database.db, { clientDir: config.dataDir, tokenEndpoint: services.oauth.tokenEndpoint, logger, licence: { masterKey: services.masterKey, issuer: config.issuer } });

  const probes: ReadinessProbe[] = [];
  const redis = config.redisUrl ? redisConnection(config.redisUrl) : undefined;
  if (redis) probes.push({ name: 'redis', check: async () => void (await redis.ping()) });
  const runner = redis ? undefined : await startInlineRunner({ database: services.database, db: services.database.db, logger, masterKey: services.masterKey, egress: services.egress, importDir: config.importDir, keys: services.keys, issuer: config.issuer });

  const producer = redis ? new Queue(config.queue, { connection: redis, defaultJobOptions: DEFAULT_JOB_OPTIONS }) : undefined;
  const jobs: JobQueuePort = producer
    ? { enqueue: async (name, data) => (await producer.add(name, data)).id }
    : { enqueue: (name, data) => runner!.enqueue(name, data) };
  const app = buildApp(services, { probes, graphiql: config.env !== 'production', defaultMetrics: true, jobs, ...(redis ? { redis } : {}) });
  // The embedded demo pulls from department simulators running in this process.
  const sources = embedded ? await startDemoSources(services.database.db, logger, services.masterKey, services.egress) : undefined;
  for (const id of sources?.neverSynced ?? []) await jobs.enqueue('connectors.sync', { connectorId: id, trigger: 'demo-start' });
  const server = http.createServer({ keepAliveTimeout: 65_000 }, app.listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, resolve);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  services.egress.addOwnPort(port); // PORT=0 listens where the system chose: refused as a target all the same
  logger.info({ port, driver: services.database.driver, redis: Boolean(redis) }, 'hub listening');
  if (demo) printWelcome(config.issuer, port, path.relative(process.cwd(), path.join(config.dataDir, 'demo-client.json')));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping');
    server.close();
    server.closeIdleConnections();
    await runner?.stop();
    await sources?.close();
    await producer?.close();
    redis?.disconnect();
    await services.close();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function printWelcome(issuer: string, port: number, clientFile: string): void {
  const url = issuer || `http://localhost:${port}`;
  process.stdout.write(`
  The hub is running at ${url}  (embedded PostgreSQL in .hub/, demo data loaded)

  Get a token for the demo approval system and ask who you are:

    TOKEN=$(npx hub token --key ${clientFile})
    curl -s ${url}/graphql -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
      -d '{"query":"{ viewer { clientId name department roles } }"}'

  免提交 at once: which materials of 二手房转移登记 莫萱兰 need not bring (her demo licences), with a signed receipt:
    {"query":"{ resolveMaterials(itemCode: \\"350100-DJ-0006\\", applicantCode: \\"350203195207237981\\", purpose: { itemCode: \\"350100-DJ-0006\\", caseId: \\"FZ-1\\" }) { materials { name outcome rejected } receipt } }"}

  The demo's department simulators are being pulled now (about a minute); then, with the same token:
    {"query":"{ person(idNumber: \\"350203195207237981\\", purpose: { itemCode: \\"350100-DJ-0001\\", caseId: \\"FZ-1\\" }) { name maritalStatus } }"}
  More in README.md. GraphiQL: ${url}/graphql    OAuth metadata: ${url}/.well-known/oauth-authorization-server

`);
}

main().catch((error: unknown) => {
  if (error instanceof StartupError) {
    process.stderr.write(`hub: ${error.message}\n`);
  } else {
    process.stderr.write(`hub: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exit(1);
});
