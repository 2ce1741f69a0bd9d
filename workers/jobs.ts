import { createCheckpoint } from '../audit/checkpoints.ts';
import { ensurePartitions } from '../audit/months.ts';
import type { KeyRing } from '../auth/keys.ts';
import { purgeExpiredAssertions } from '../auth/oauth.ts';
import { FINAL_RUN_ERRORS, runSync } from '../connectors/sync.ts';
import { EgressPolicy } from '../core/egress.ts';
import type { Logger } from '../core/logger.ts';
import type { Database, Db } from '../db/index.ts';
import { markOverdueRequests } from '../directory/access.ts';
import { deliverNotifications } from '../directory/notifications.ts';
import { expireLicences, notifyExpiringLicences, runPendingBatches, type LicencePorts } from '../licence/issue.ts';
import { LicencePki } from '../licence/pki.ts';

/** What a job handler may use. Never secrets in job data: handlers read keys from the database themselves. */
export interface JobDeps {
  database: Database;
  db: Db;
  logger: Logger;
  /** unseals webhook and source secrets; it lives in the process, never in a job's data */
  masterKey: Buffer;
  /** what connectors and webhooks may call (HUB_EGRESS_ALLOW); absent, public addresses only */
  egress?: EgressPolicy;
  /** HUB_IMPORT_DIR: where file connectors read */
  importDir?: string | undefined;
  /** aborted on SIGTERM: long jobs stop at their next checkpoint */
  signal?: AbortSignal;
  /** the hub's keys (audit checkpoints are signed with the audit key) and its issuer name */
  keys?: KeyRing;
  issuer?: string;
}

export interface JobDefinition {
  /** Recurring jobs: every N ms (a BullMQ job scheduler, or a timer in the inline runner). */
  everyMs?: number;
  handler(deps: JobDeps, data: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** The licence keys of a worker process, opened on its first licence job (they reload on NOTIFY). */
const licencePorts = new WeakMap<object, Promise<LicencePorts>>();

export function licencePortsFor(deps: JobDeps): Promise<LicencePorts> {
  let ports = licencePorts.get(deps.database);
  if (!ports) {
    if (!deps.issuer) throw new Error('licence jobs need the hub issuer');
    const issuer = deps.issuer;
    ports = LicencePki.open(deps.database, deps.masterKey, deps.logger).then((pki) => ({ pki, masterKey: deps.masterKey, issuer }));
    licencePorts.set(deps.database, ports);
    ports.catch(() => licencePorts.delete(deps.database));
  }
  return ports;
}

/** The policy of a process that was given none: public addresses only, nothing listed. */
let publicOnly: EgressPolicy | undefined;
const egressOf = (egress: EgressPolicy | undefined): EgressPolicy => egress ?? (publicOnly ??= EgressPolicy.fromConfig('', { ports: [] }));

/** A job whose failure should be retried by the queue (with its exponential backoff). */
export class RetryableJobError extends Error {}

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
    async handler({ db, masterKey, egress, logger }) {
      return deliverNotifications(db, masterKey, egressOf(egress), logger);
    },
  },
  /** 审计封存: seals the entries written since the last checkpoint into a signed tree head. */
  'audit.checkpoint': {
    everyMs: 60 * 1000,
    async handler({ db, keys, issuer }) {
      if (!keys || !issuer) throw new Error('audit.checkpoint needs the hub keys');
      const c = await createCheckpoint(db, keys, issuer);
      return c ? { treeSize: c.treeSize, rootHash: c.rootHash } : { treeSize: null };
    },
  },
  /** The audit log's monthly partitions, two months ahead (the writer also makes a missing one on the spot). */
  'audit.partitions': {
    everyMs: 24 * 60 * 60 * 1000,
    async handler({ db }) {
      return { created: await ensurePartitions(db) };
    },
  },
  /**
   * Licence batches (issueLicences): the job names a batch (or none: every pending one), never its items. Also
   * recurring, so a batch whose enqueue was lost or whose run failed is picked up again.
   */
  'licence.issue-batch': {
    everyMs: 10 * 1000,
    async handler(deps, data) {
      const ports = await licencePortsFor(deps);
      return runPendingBatches(deps.db, ports, typeof data.batchId === 'string' ? data.batchId : undefined);
    },
  },
  /** 失效 and the issuers' daily notice of licences expiring within 30 days. */
  'licence.expiry': {
    everyMs: 24 * 60 * 60 * 1000,
    async handler({ db }) {
      let expired = 0;
      for (let n = await expireLicences(db); n > 0; n = await expireLicences(db)) expired += n;
      return { expired, notified: await notifyExpiringLicences(db, 30) };
    },
  },
  /** One connector's sync; scheduled per connector (its cron), or enqueued by `runConnector` / `hub sync`. */
  'connectors.sync': {
    async handler({ database, logger, signal, masterKey, egress, importDir }, data) {
      const connectorId = String(data.connectorId ?? '');
      const report = await runSync(database, connectorId, { masterKey, egress: egressOf(egress), importDir }, {
        full: data.full === true,
        trigger: typeof data.trigger === 'string' ? data.trigger : 'schedule',
        logger,
        ...(signal ? { signal } : {}),
      });
      if (report.status === 'FAILED' && !FINAL_RUN_ERRORS.test(report.error ?? '')) throw new RetryableJobError(report.error ?? 'sync failed');
      return { ...report };
    },
  },
} satisfies Record<string, JobDefinition>;

export type JobName = keyof typeof definitions;
export const JOBS: Record<JobName, JobDefinition> = definitions;

export function isJobName(name: string): name is JobName {
  return Object.hasOwn(JOBS, name);
}
