import { sql } from 'drizzle-orm';
import { badInput } from '../core/errors.ts';
import { rows, type Db } from '../db/index.ts';

export interface ReformPoint {
  /** the first day of the period (Asia/Shanghai), YYYY-MM-DD */
  period: string;
  resolutions: number;
  materials: number;
  byLicence: number;
  byData: number;
  byCommitment: number;
  deferred: number;
  mustSubmit: number;
  /** materials no longer submitted (a licence, shared data or a commitment replaced them), of all materials */
  share: number;
}

/**
 * 减证便民 as a number: per item (its resolutions alone or inside bundles) or per bundle (its distinct materials), the
 * share of materials the applicant no longer submitted, by day or month.
 */
export async function reformStats(db: Db, q: { itemCode?: string | null; bundleCode?: string | null; from: Date; to: Date; period: 'DAY' | 'MONTH' }): Promise<ReformPoint[]> {
  if (!q.itemCode === !q.bundleCode) throw badInput('itemCode', 'name one item (itemCode) or one bundle (bundleCode)');
  if (!(q.from < q.to)) throw badInput('from', 'from must be before to');
  const unit = q.period === 'MONTH' ? 'month' : 'day';
  const scope = q.itemCode ? sql`item_code = ${q.itemCode}` : sql`bundle_code = ${q.bundleCode} and item_code is null`;
  const points = await rows<Omit<ReformPoint, 'share'>>(
    db,
    sql`select to_char(date_trunc(${unit}, created_at at time zone 'Asia/Shanghai'), 'YYYY-MM-DD') as period, count(*)::int8 as resolutions,
               sum(materials)::int8 as materials, sum(by_licence)::int8 as "byLicence", sum(by_data)::int8 as "byData",
               sum(by_commitment)::int8 as "byCommitment", sum(deferred)::int8 as deferred, sum(must_submit)::int8 as "mustSubmit"
        from material_resolutions where ${scope} and created_at >= ${q.from.toISOString()}::timestamptz and created_at < ${q.to.toISOString()}::timestamptz
        group by 1 order by 1`,
  );
  return points.map((p) => ({ ...p, share: p.materials ? (p.byLicence + p.byData + p.byCommitment) / p.materials : 0 }));
}
