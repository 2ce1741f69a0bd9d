import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { CONNECTORS_CHANNEL } from '../connectors/registry.ts';
import { isJobName, JOBS, type JobDeps, type JobName } from './jobs.ts';
import { connectorSchedules, SCHEDULE_TZ } from './schedules.ts';

export interface QueueRuntime {
  queue: Queue;
  worker: Worker;
  /** Adds a job now; a `jobId` makes it idempotent (BullMQ ids: no ':' and not all digits). */
  enqueue(name: JobName, data: Record<string, unknown>, jobId?: string): Promise<string | undefined>;
  close(): Promise<void>;
}

/** A Redis connection as BullMQ workers need it (blocking commands must not time out). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

export const DEFAULT_JOB_OPTIONS = { attempts: 5, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: 1000, removeOnFail: 5000 } as const;

/** Job schedulers for every connector with a cron, and none for the others; N workers converge on one set. */
export async function syncConnectorSchedulers(queue: Queue, deps: Pick<JobDeps, 'db'>): Promise<void> {
  const wanted = await connectorSchedules(deps.db);
  const ids = new Set(wanted.map((c) => `sync.${c.id}`));
  for (const c of wanted) {
    await queue.upsertJobScheduler(`sync.${c.id}`, { pattern: c.schedule!, tz: SCHEDULE_TZ }, { name: 'connectors.sync', data: { connectorId: c.id, trigger: 'schedule' } });
  }
  for (const s of await queue.getJobSchedulers()) {
    if (s.key.startsWith('sync.') && !ids.has(s.key)) await queue.removeJobScheduler(s.key);
  }
}

/**
 * The queue and a worker for every job in the registry. Recurring jobs and connector crons are job schedulers
 * (upsertJobScheduler), so N worker processes share one schedule instead of each adding its own; a connector's runs
 * are also serialised by the database lock in runSync, whatever the queue does.
 */
export async function startQueueWorker(deps: Omit<JobDeps, 'signal'>, options: { redisUrl: string; queueName?: string; concurrency?: number }): Promise<QueueRuntime> {
  const queueName = options.queueName ?? 'hub';
  const controller = new AbortController();
  const full: JobDeps = { ...deps, signal: controller.signal };
  const connection = redisConnection(options.redisUrl);
  const queue = new Queue(queueName, { connection, defaultJobOptions: DEFAULT_JOB_OPTIONS });
  for (const name of Object.keys(JOBS) as JobName[]) {
    const every = JOBS[name].everyMs;
    if (every) await queue.upsertJobScheduler(`schedule.${name}`, { every }, { name, data: {} });
  }
  await syncConnectorSchedulers(queue, deps);
  const unlisten = await deps.database.listen(CONNECTORS_CHANNEL, () => {
    syncConnectorSchedulers(queue, deps).catch((err: unknown) => deps.logger.error({ err }, 'updating connector schedules failed'));
  });
  const workerConnection = redisConnection(options.redisUrl);
  const worker = new Worker(
    queueName,
    async (job) => {
      if (!isJobName(job.name)) throw new UnrecoverableError(`unknown job ${job.name}`);
      return JOBS[job.name].handler(full, (job.data ?? {}) as Record<string, unknown>);
    },
    { connection: workerConnection, concurrency: options.concurrency ?? 4 },
  );
  worker.on('failed', (job, err) => deps.logger.error({ err, job: job?.name, jobId: job?.id, attempts: job?.attemptsMade }, 'job failed'));
  return {
    queue,
    worker,
    async enqueue(name, data, jobId) {
      const job = await queue.add(name, data, jobId ? { jobId } : {});
      return job.id;
    },
    async close() {
      controller.abort(); // running syncs stop after their current batch commits
      await worker.close();
      await unlisten();
      await queue.close();
      connection.disconnect();
      workerConnection.disconnect();
    },
  };
}
