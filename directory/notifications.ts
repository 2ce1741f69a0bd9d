import crypto from 'node:crypto';
import { and, asc, desc, eq, isNull, lt, sql } from 'drizzle-orm';
import { requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
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

/**
 * Sets a department's webhook. The hub signs each delivery with HMAC-SHA256 over `timestamp.body` using the secret
 * returned here once (sealed at rest), in the header `x-hub-signature: t=…,v1=…`.
 */
export async function setWebhook(ctx: HubContext, masterKey: Buffer, departmentCode: string, url: string): Promise<{ url: string; secret: string }> {
  requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, departmentCode, `the webhook of department ${departmentCode}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw badInput('url', 'the webhook must be an absolute http(s) URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw badInput('url', 'the webhook must be an http(s) URL');
  const [dept] = await ctx.db.select({ code: departments.code }).from(departments).where(eq(departments.code, departmentCode));
  if (!dept) throw badInput('departmentCode', `department ${departmentCode} is not registered`);
  const secret = crypto.randomBytes(32).toString('base64url');
  const secretEnc = seal(masterKey, secret, `webhook:${departmentCode}`);
  await ctx.db
    .insert(departmentWebhooks)
    .values({ departmentCode, url, secretEnc })
    .onConflictDoUpdate({ target: departmentWebhooks.departmentCode, set: { url, secretEnc, updatedAt: sql`now()` } });
  return { url, secret };
}

export function signWebhook(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

const MAX_ATTEMPTS = 10;

/**
 * Sends undelivered notices to departments with a webhook (a job runs this). Each notice is claimed with SKIP
 * LOCKED, so several workers share the work without sending one twice; a failure is retried on the next run.
 */
export async function deliverNotifications(db: Db, masterKey: Buffer, logger: Logger, options: { limit?: number; timeoutMs?: number } = {}): Promise<{ delivered: number; failed: number }> {
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
          const res = await fetch(hook.url, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-hub-signature': signWebhook(secret, timestamp, body), 'x-hub-notification-id': n.id },
            body,
            signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
          });
          if (!res.ok) throw new Error(`HTTP ${res.status}`);
          await tx.update(notifications).set({ deliveredAt: sql`now()`, attempts: n.attempts + 1, lastError: null }).where(eq(notifications.id, n.id));
          delivered++;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
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
