import { purgeExpiredAssertions } from '../auth/oauth.ts';
import { markOverdueRequests } from '../directory/access.ts';
import { deliverNotifications } from '../directory/notifications.ts';
import type { Logger } from '../core/logger.ts';
import type { Db } from '../db/index.ts';

/** What a job handler may use. Never secrets in job data: handlers read keys from the database themselves. */
export interface JobDeps {
  db: Db;
  logger: Logger;
  /** unseals webhook secrets; it lives in the process, never in a job's data */
  masterKey: Buffer;
}

export interface JobDefinition {
  /** Recurring jobs: every N ms (a BullMQ job scheduler, or a timer in the inline runner). */
  everyMs?: number;
  handler(deps: JobDeps, data: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** The one registry JobName → handler; the worker refuses to start on a job it does not know. */
const definitions = {
  'maintenance.purge-assertions': {
    everyMs: 10 * 60 * 1000,
    async handler({ db }) {
      return { purged: await purgeExpiredAssertions(db) };
    },
  },
  /** 有条件共享 requests past their 10-working-day due date: listed overdue, the provider notified once. */
  'directory.mark-overdue': {
    everyMs: 15 * 60 * 1000,
    async handler({ db }) {
      return { overdue: await markOverdueRequests(db) };
    },
  },
  /** Notices to departments' webhooks; failures are retried on the next run. */
  'notifications.deliver': {
    everyMs: 30 * 1000,
    async handler({ db, masterKey, logger }) {
      return deliverNotifications(db, masterKey, logger);
    },
  },
} satisfies Record<string, JobDefinition>;

export type JobName = keyof typeof definitions;
export const JOBS: Record<JobName, JobDefinition> = definitions;

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}
