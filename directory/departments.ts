import { asc, eq } from 'drizzle-orm';
import { recordAct } from '../audit/acts.ts';
import { CLI_ACTOR, type Actor } from '../core/context.ts';
import { badInput, HubError } from '../core/errors.ts';
import { usccProblem } from '../core/ids.ts';
import type { Db } from '../db/index.ts';
import { departments } from './schema.ts';

export type DepartmentLevel = 'PROVINCE' | 'CITY' | 'COUNTY';
export type Department = typeof departments.$inferSelect;

export interface DepartmentInput {
  code: string;
  name: string;
  region: string;
  level: string;
}

/** Registers a department (部门), named by its 统一社会信用代码; the act is an audit entry (the command line by default). */
export async function createDepartment(db: Db, input: DepartmentInput, actor: Actor = CLI_ACTOR): Promise<Department> {
  const code = input.code.trim().toUpperCase();
  const problem = usccProblem(code);
  if (problem) throw new HubError('INVALID_USCC', `department code ${code} is not a valid 统一社会信用代码 (${problem})`, { field: 'code' });
  const name = input.name.trim();
  if (!name) throw badInput('name', 'a department needs a name');
  if (!/^\d{6}$/.test(input.region)) throw badInput('region', 'region is a 6-digit 行政区划代码');
  const level = input.level.toUpperCase();
  if (level !== 'PROVINCE' && level !== 'CITY' && level !== 'COUNTY') throw badInput('level', 'level is PROVINCE, CITY or COUNTY');
  return db.transaction(async (tx) => {
    const inserted = await tx.insert(departments).values({ code, name, region: input.region, level }).onConflictDoNothing().returning();
    if (inserted.length === 0) throw new HubError('CONFLICT', `department ${code} already exists`);
    await recordAct(tx, actor, 'DEPARTMENT_CREATE', { details: { code, name, region: input.region, level } });
    return inserted[0]!;
  });
}

export async function getDepartment(db: Db, code: string): Promise<Department | undefined> {
  const [d] = await db.select().from(departments).where(eq(departments.code, code));
  return d;
}

export async function listDepartments(db: Db): Promise<Department[]> {
  return db.select().from(departments).orderBy(asc(departments.code));
}
