import type { Actor } from '../core/context.ts';
import type { Db } from '../db/index.ts';
import { appendInTransaction, type AuditRecord } from './writer.ts';

/** What an administrative act records beside who did it: what it was about, why, and its facts (never a secret). */
export interface ActFields {
  resourceCode?: string | null;
  subject?: string | null;
  reason?: string | null;
  details?: Record<string, unknown> | null;
}

/** The audit entry of an administrative act (outcome DONE) by an actor: a client in a request, or the command line. */
export function actEntry(actor: Actor, operation: string, fields: ActFields = {}): AuditRecord {
  return {
    clientId: actor.clientId || null,
    department: actor.department || null,
    operation,
    outcome: 'DONE',
    resourceCode: fields.resourceCode ?? null,
    subject: fields.subject ?? null,
    reason: fields.reason ?? null,
    requestId: actor.requestId ?? null,
    details: fields.details ?? null,
  };
}

/** Records an administrative act in the act's own transaction: the act and its entry commit together, or neither. */
export async function recordAct(tx: Db, actor: Actor, operation: string, fields?: ActFields): Promise<void> {
  await appendInTransaction(tx, [actEntry(actor, operation, fields)]);
}
