import { CONNECTORS_CHANNEL } from '../connectors/registry.ts';
import { JOBS, type JobDeps, type JobName } from './jobs.ts';
import { connectorSchedules, nextRun } from './schedules.ts';

export interface InlineRunner {
  /** Runs a job now in this process (what `runConnector` does without Redis). */
  enqueue(name: JobName, data: Record<string, unknown>): void;
  stop(): Promise<void>;
}

/**
 * Runs the jobs inside the hub process when there is no Redis (the embedded default): the recurring ones on
 * timers, each connector on its cron, one run of a job (or connector) at a time. A failure is logged and tried
 * again at the next tick. SIGTERM aborts running syncs at their next checkpoint.
 */
export async function startInlineRunner(deps: Omit<JobDeps, 'signal'>): Promise<InlineRunner> {
  const controller = new AbortController();
  const full: JobDeps = { ...deps, signal: controller.signal };
  const timers: NodeJS.Timeout[] = [];
  const connectorTimers = new Map<string, NodeJS.Timeout>();
  const running = new Map<string, Promise<void>>();
  const run = (name: JobName, data: Record<string, unknown> = {}) => {
    const key = name === 'connectors.sync' ? `${name}:${String(data.connectorId)}` : name;
    if (running.has(key) || controller.signal.aborted) return;
    const p = JOBS[name]
      .handler(full, data)
      .then((result) => deps.logger.debug({ job: name, result }, 'job done'))
      .catch((err: unknown) => deps.logger.error({ err, job: name }, 'job failed'))
      .finally(() => running.delete(key));
    running.set(key, p);
  };
  for (const name of Object.keys(JOBS) as JobName[]) {
    const every = JOBS[name].everyMs;
    if (!every) continue;
    timers.push(setTimeout(() => run(name), 1000).unref()); // once soon after start, as a BullMQ scheduler does
    timers.push(setInterval(() => run(name), every).unref());
  }
  const scheduleConnectors = async () => {
    for (const t of connectorTimers.values()) clearTimeout(t);
    connectorTimers.clear();
    for (const c of await connectorSchedules(deps.db)) {
      const arm = () => {
        const delay = Math.max(1000, nextRun(c.schedule!).getTime() - Date.now());
        connectorTimers.set(
          c.id,
          setTimeout(() => {
            run('connectors.sync', { connectorId: c.id, trigger: 'schedule' });
            arm();
          }, Math.min(delay, 2 ** 31 - 1)).unref(),
        );
      };
      arm();
    }
  };
  await scheduleConnectors();
  const unlisten = await deps.database.listen(CONNECTORS_CHANNEL, () => {
    scheduleConnectors().catch((err: unknown) => deps.logger.error({ err }, 'rescheduling connectors failed'));
  });
  return {
    enqueue: (name, data) => run(name, data),
    async stop() {
      controller.abort();
      for (const t of timers) clearTimeout(t);
      for (const t of connectorTimers.values()) clearTimeout(t);
      await unlisten();
      await Promise.all(running.values());
    },
  };
}
