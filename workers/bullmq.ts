import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { isJobName, JOBS, type JobDeps, type JobName } from './jobs.ts';

export interface QueueRuntime {
  queue: Queue;
  worker: Worker;
  close(): Promise<void>;
}

/** A Redis connection as BullMQ workers need it (blocking commands must not time out). */
export function redisConnection(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true });
}

/**
 * The queue and a worker for every job in the registry. Recurring jobs are registered with upsertJobScheduler, so
 * N worker processes share one schedule instead of each adding its own.
 */
export async function startQueueWorker(
  deps: JobDeps,
  options: { redisUrl: string; queueName?: string; concurrency?: number },
): Promise<QueueRuntime> {
  const queueName = options.queueName ?? 'hub';
  const connection = redisConnection(options.redisUrl);
  const queue = new Queue(queueName, { connection, defaultJobOptions: { attempts: 5, backoff: { type: 'exponential', delay: 2000 }, removeOnComplete: 1000, removeOnFail: 5000 } });
  for (const name of Object.keys(JOBS) as JobName[]) {
    const every = JOBS[name].everyMs;
    if (every) await queue.upsertJobScheduler(`schedule.${name}`, { every }, { name, data: {} });
  }
  const workerConnection = redisConnection(options.redisUrl);
  const worker = new Worker(
    queueName,
    async (job) => {
      if (!isJobName(job.name)) throw new Error(`unknown job ${job.name}`);
      return JOBS[job.name].handler(deps, (job.data ?? {}) as Record<string, unknown>);
    },
    { connection: workerConnection, concurrency: options.concurrency ?? 4 },
  );
  worker.on('failed', (job, err) => deps.logger.error({ err, job: job?.name, jobId: job?.id }, 'job failed'));
  return {
    queue,
    worker,
    async close() {
      await worker.close();
      await queue.close();
      connection.disconnect();
      workerConnection.disconnect();
    },
  };
}
