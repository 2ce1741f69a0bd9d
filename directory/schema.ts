import { check, pgTable, text } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { createdAt, updatedAt } from '../db/columns.ts';

/** 部门: a department, named everywhere by its 统一社会信用代码. */
export const departments = pgTable(
  'departments',
  {
    code: text('code').primaryKey(),
    name: text('name').notNull(),
    /** 6-digit 行政区划代码 */
    region: text('region').notNull(),
    /** 省 / 市 / 县 */
    level: text('level', { enum: ['PROVINCE', 'CITY', 'COUNTY'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('departments_region_ck', sql`${t.region} ~ '^[0-9]{6}$'`),
    check('departments_level_ck', sql`${t.level} in ('PROVINCE', 'CITY', 'COUNTY')`),
  ],
);
