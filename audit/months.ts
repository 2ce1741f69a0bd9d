import { sql } from 'drizzle-orm';
import { badInput } from '../core/errors.ts';
import { SHANGHAI_OFFSET_MS } from '../core/time.ts';
import { rows, type Db } from '../db/index.ts';


/** A month of the log runs from 00:00 +08:00 on its first day. */
export interface AuditMonth {
  /** YYYY-MM */
  month: string;
  /** the partition of the audit log that holds it */
  partition: string;
  from: Date;
  to: Date;
}

export function auditMonth(month: string): AuditMonth {
  const m = /^(\d{4})-(\d{2})$/.exec(month);
  const mm = m ? Number(m[2]) : 0;
  if (!m || mm < 1 || mm > 12) throw badInput('month', `month must be YYYY-MM, not ${month}`);
  const y = Number(m[1]);
  return {
    month,
    partition: `audit_entries_y${m[1]}m${m[2]}`,
    from: new Date(Date.UTC(y, mm - 1, 1) - SHANGHAI_OFFSET_MS),
    to: new Date(Date.UTC(y, mm, 1) - SHANGHAI_OFFSET_MS),
  };
}

/** The month (Asia/Shanghai) an instant falls in. */
export function monthOf(at: Date): AuditMonth {
  return auditMonth(new Date(at.getTime() + SHANGHAI_OFFSET_MS).toISOString().slice(0, 7));
}

export function monthOfPartition(partition: string): AuditMonth {
  const m = /^audit_entries_y(\d{4})m(\d{2})$/.exec(partition);
  if (!m) throw badInput('partition', `${partition} is not the name of a month of the audit log`);
  return auditMonth(`${m[1]}-${m[2]}`);
}

/**
 * Creates the monthly partitions from the month of `from` through `monthsAhead` months later that do not exist
 * yet; returns the ones created. The SECURITY DEFINER function does it as the owner (the hub's role owns nothing).
 */
export async function ensurePartitions(db: Db, from = new Date(), monthsAhead = 2): Promise<string[]> {
  const to = new Date(from);
  to.setUTCMonth(to.getUTCMonth() + monthsAhead);
  const created = await rows<{ name: string }>(db, sql`select audit_ensure_partitions(${from.toISOString()}::timestamptz, ${to.toISOString()}::timestamptz) as name`);
  return created.map((r) => r.name);
}

/** The months the log is partitioned into now, oldest first. */
export async function attachedPartitions(db: Db): Promise<AuditMonth[]> {
  const parts = await rows<{ name: string }>(
    db,
    sql`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'audit_entries'::regclass order by c.relname`,
  );
  return parts.map((p) => monthOfPartition(p.name));
}
