import { loadConfig } from '../core/config.ts';
import { StartupError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { openHub } from '../gateway/services.ts';
import { startQueueWorker } from './bullmq.ts';

/**
 * `npm run worker`: a BullMQ worker process for every job in the registry. Run N of them against one PostgreSQL
 * and one Redis; SIGTERM lets running jobs finish before the process exits.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  if (!config.redisUrl) {
    throw new StartupError('REDIS_URL: required by npm run worker; without Redis the jobs run inside the hub process (npm start)');
  }
  if (!config.databaseUrl) {
    throw new StartupError('DATABASE_URL: required by npm run worker; the embedded database serves only the hub process that opened it');
  }
  const logger = createLogger({ level: config.logLevel, name: 'hub-worker' });
  const services = await openHub(config, logger);
  const runtime = await startQueueWorker({ database: services.database, db: services.database.db, logger, masterKey: services.masterKey, egress: services.egress, importDir: config.importDir, keys: services.keys, issuer: config.issuer }, { redisUrl: config.redisUrl, queueName: config.queue });
  logger.info({ queue: runtime.queue.name }, 'worker started');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'worker stopping');
    await runtime.close();
    await services.close();
    logger.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    error instanceof StartupError ? `hub-worker: ${error.message}\n` : `hub-worker: failed to start: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
