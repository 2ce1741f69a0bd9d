import type { Logger } from '../core/logger.ts';
import { JOBS, type JobDeps, type JobName } from './jobs.ts';

/**
 * Runs the recurring jobs inside the hub process when there is no Redis (the embedded default). One run of a job
 * at a time; a failure is logged and retried at the next tick.
 */
export function startInlineRunner(deps: JobDeps & { logger: Logger }): { stop(): Promise<void> } {
  const timers: NodeJS.Timeout[] = [];
  const running = new Map<JobName, Promise<void>>();
  const run = (name: JobName) => {
    if (running.has(name)) return;
    const p = JOBS[name]
      .handler(deps, {})
      .then((result) => deps.logger.debug({ job: name, result }, 'job done'))
      .catch((err: unknown) => deps.logger.error({ err, job: name }, 'job failed'))
      .finally(() => running.delete(name));
    running.set(name, p);
  };
  for (const name of Object.keys(JOBS) as JobName[]) {
    const every = JOBS[name].everyMs;
    if (!every) continue;
    timers.push(setTimeout(() => run(name), 1000).unref()); // once soon after start, as a BullMQ scheduler does
    timers.push(setInterval(() => run(name), every).unref());
  }
  return {
    async stop() {
      for (const t of timers) clearTimeout(t);
      await Promise.all(running.values());
    },
  };
}
