import crypto from 'node:crypto';
import { recordAct } from '../audit/acts.ts';
import { and, asc, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import { actorOf, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { EgressRefused, type EgressPolicy } from '../core/egress.ts';
import { badInput, HubError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';
import type { Db } from '../db/index.ts';
import { seal, unseal } from '../auth/master-key.ts';
import { departmentWebhooks, departments, notifications } from './schema.ts';

export type Notification = typeof notifications.$inferSelect;
export type NotificationKind = 'ACCESS_REQUEST_NEW' | 'ACCESS_REQUEST_OVERDUE' | 'LICENCE_STATUS_CHANGED' | 'LICENCE_EXPIRING';

/**
 * Records a notice for a department inside the caller's transaction. (kind, subject) is unique, so a notice is
 * made once however often the work that makes it runs.
 */
export async function addNotification(tx: Db, departmentCode: string, kind: NotificationKind, subjectId: string, payload: Record<string, unknown>): Promise<boolean> {
  const r = await tx.insert(notifications).values({ departmentCode, kind, subjectId, payload }).onConflictDoNothing().returning({ id: notifications.id });
  return r.length > 0;
}

export async function listNotifications(ctx: HubContext, departmentCode: string | null, first: number): Promise<Notification[]> {
  requireRole(ctx, 'provider', 'admin');
  const dept = departmentCode ?? ctx.principal.department;
  requireOwnDepartment(ctx, dept, `notifications of department ${dept}`);
  return ctx.db.select().from(notifications).where(eq(notifications.departmentCode, dept)).orderBy(desc(notifications.createdAt)).limit(first);
}

/** What setWebhook needs of the egress policy: its check of a target, which throws EgressRefused. */
export type WebhookEgress = Pick<EgressPolicy, 'check'>;

const MAX_WEBHOOK_URL = 2048;

/**
 * A webhook address as the hub accepts it: absolute http(s), and no userinfo (a password in a URL ends up in logs
 * and audit entries; the hub signs each delivery instead).
 */
function parseWebhookUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(typeof url === 'string' ? url.trim() : '');
  } catch {
    throw badInput('url', 'the webhook must be an absolute http(s) URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw badInput('url', 'the webhook must be an http(s) URL');
  if (parsed.username || parsed.password) throw badInput('url', 'the webhook URL must not carry a user name or password; the hub signs each delivery instead');
  if (parsed.href.length > MAX_WEBHOOK_URL) throw badInput('url', `the webhook URL is longer than ${MAX_WEBHOOK_URL} characters`);
  return parsed;
}

/**
 * The egress policy's word on a webhook address, so a department cannot point the hub at its own listeners, the
 * metadata service or another internal address (SSRF). Deliveries go through the policy as well (a name may resolve
 * elsewhere later); this refuses at once, with the field named.
 */
async function allowedByEgress(egress: WebhookEgress | undefined, url: URL): Promise<void> {
  // fail closed: a process wired without a policy calls nowhere
  if (!egress) throw new Error('setWebhook: no egress policy was given');
  try {
    await egress.check(url);
  } catch (error) {
    if (error instanceof EgressRefused) throw new HubError('BAD_USER_INPUT', `the hub does not call this webhook: ${error.message}`, { field: 'url', reason: error.reason }, { cause: error });
    throw error;
  }
}

/**
 * Sets a department's webhook. The hub signs each delivery with HMAC-SHA256 over `timestamp.body` using the secret
 * returned here once (sealed at rest), in the header `x-hub-signature: t=…,v1=…`. The change is an audit entry
 * (WEBHOOK_SET) naming the address, never the secret.
 */
export async function setWebhook(ctx: HubContext, masterKey: Buffer, egress: WebhookEgress | undefined, departmentCode: string, url: string): Promise<{ url: string; secret: string }> {
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, departmentCode, `the webhook of department ${departmentCode}`);
  const parsed = parseWebhookUrl(url);
  const [dept] = await ctx.db.select({ code: departments.code }).from(departments).where(eq(departments.code, departmentCode));
  if (!dept) throw badInput('departmentCode', `department ${departmentCode} is not registered`);
  await allowedByEgress(egress, parsed);
  const target = parsed.href;
  const secret = crypto.randomBytes(32).toString('base64url');
  const secretEnc = seal(masterKey, secret, `webhook:${departmentCode}`);
  await ctx.db.transaction(async (tx) => {
    await tx
      .insert(departmentWebhooks)
      .values({ departmentCode, url: target, secretEnc })
      .onConflictDoUpdate({ target: departmentWebhooks.departmentCode, set: { url: target, secretEnc, updatedAt: sql`now()` } });
    await recordAct(tx, actorOf(ctx), 'WEBHOOK_SET', { details: { department: departmentCode, url: target } });
  });
  return { url: target, secret };
}

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

const MAX_ATTEMPTS = 10;

/**
 * Sends undelivered notices to departments with a webhook (a job runs this). Each notice is claimed with SKIP
 * LOCKED, so several workers share the work without sending one twice; a failure is retried on the next run.
 */
export async function deliverNotifications(db: Db, masterKey: Buffer, egress: EgressPolicy, logger: Logger, options: { limit?: number; timeoutMs?: number } = {}): Promise<{ delivered: number; failed: number }> {
  let delivered = 0;
  let failed = 0;
  const hooks = await db.select().from(departmentWebhooks);
  for (const hook of hooks) {
    const secret = unseal(masterKey, hook.secretEnc, `webhook:${hook.departmentCode}`);
    for (;;) {
      const done = await db.transaction(async (tx) => {
        const [n] = await tx
          .select()
          .from(notifications)
          .where(and(eq(notifications.departmentCode, hook.departmentCode), isNull(notifications.deliveredAt), lt(notifications.attempts, MAX_ATTEMPTS)))
          .orderBy(asc(notifications.createdAt))
          .limit(1)
          .for('update', { skipLocked: true });
        if (!n) return true;
        const body = JSON.stringify({ id: n.id, kind: n.kind, department: n.departmentCode, createdAt: n.createdAt.toISOString(), ...n.payload });
        const timestamp = Math.floor(Date.now() / 1000);
        try {
          // through the egress policy, as when it was set: a name may resolve elsewhere since; no redirect is followed
          const res = await egress.request(hook.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-hub-signature': signWebhook(secret, timestamp, body), 'x-hub-notification-id': n.id },
            body,
            timeoutMs: options.timeoutMs ?? 5000,
            maxBytes: 64 * 1024,
            maxRedirects: 0,
          });
          if (res.status < 200 || res.status >= 300) throw new Error(`HTTP ${res.status}`);
          await tx.update(notifications).set({ deliveredAt: sql`now()`, attempts: n.attempts + 1, lastError: null }).where(eq(notifications.id, n.id));
          delivered++;
        } catch (error) {
          // what the department may see of a failed delivery: the status it answered, or a code; never the network's
          // own words (connection refused here, timed out there would map the hosts behind the allow list)
          const message = error instanceof EgressRefused ? `EGRESS_REFUSED (${error.reason})` : error instanceof Error && /^HTTP \d+$/.test(error.message) ? error.message : 'UNREACHABLE';
          await tx.update(notifications).set({ attempts: n.attempts + 1, lastError: message.slice(0, 500) }).where(eq(notifications.id, n.id));
          logger.warn({ department: hook.departmentCode, notification: n.id, error: message }, 'webhook delivery failed');
          failed++;
          return true; // this hook is failing: try the others, and this one on the next run
        }
        return delivered + failed >= (options.limit ?? 500);
      });
      if (done) break;
    }
  }
  return { delivered, failed };
}
