import { CronExpressionParser } from 'cron-parser';
import { isApproved, listConnectors, type Connector } from '../connectors/registry.ts';
import type { Db } from '../db/index.ts';

export const SCHEDULE_TZ = 'Asia/Shanghai';

/** The connectors that run on a schedule, with their cron: enabled and approved as they are (a draft waits). */
export async function connectorSchedules(db: Db): Promise<Pick<Connector, 'id' | 'schedule'>[]> {
  return (await listConnectors(db)).filter((c) => c.enabled && c.schedule && isApproved(c)).map((c) => ({ id: c.id, schedule: c.schedule }));
}

export function nextRun(cron: string, from = new Date()): Date {
  return CronExpressionParser.parse(cron, { currentDate: from, tz: SCHEDULE_TZ }).next().toDate();
}
