import crypto from 'node:crypto';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../db/index.ts';
import { migrateDatabase } from '../../db/migrate.ts';

import { TEMPLATE_DB } from './template.ts';

export const pgAvailable = (): boolean => inject('pgAdminUrl') !== '';
export const redisUrl = (): string => inject('redisUrl');

export interface TestDatabase {
  database: Database;
  /** The database URL (pg only), for a second process or app on the same database. */
  url?: string;
  drop(): Promise<void>;
}

/** A fresh PostgreSQL database cloned from the migrated template; dropped by `drop()`. */
export async function createPgDatabase(): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  if (!adminUrl) throw new Error('PostgreSQL is not available');
  const name = `hub_t_${crypto.randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  // CREATE DATABASE … TEMPLATE refuses while another session uses the template; parallel files may collide.
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`create database ${name} template ${TEMPLATE_DB}`);
      break;
    } catch (error) {
      if (attempt >= 20 || (error as { code?: string }).code !== '55006') throw error;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 10, appRole: true });
  return {
    database,
    url: url.toString(),
    async drop() {
      await database.close();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}

/** A throw-away embedded database, migrated. */
export async function createPgliteDatabase(): Promise<TestDatabase> {
  const database = await openDatabase({ dataDir: 'memory://', appRole: true });
  await migrateDatabase(database);
  return { database, drop: () => database.close() };
}

export type DriverName = 'pg' | 'pglite';

/** The drivers every driver-level test runs on: PGlite always, PostgreSQL when reachable (required in CI). */
export function drivers(): DriverName[] {
  return pgAvailable() ? ['pglite', 'pg'] : ['pglite'];
}

export function createTestDatabase(driver: DriverName): Promise<TestDatabase> {
  return driver === 'pg' ? createPgDatabase() : createPgliteDatabase();
}

/**
 * Runs SQL as the database's owner (a superuser), behind the hub's back: what an administrator could do. On
 * PostgreSQL a connection of its own (the hub's pool works as hub_app from the start); on PGlite, out of the role.
 */
export async function asOwner(t: TestDatabase, query: string): Promise<void> {
  if (t.url) {
    const c = new pg.Client({ connectionString: t.url });
    await c.connect();
    try {
      await c.query(query);
    } finally {
      await c.end();
    }
    return;
  }
  await t.database.db.execute(sql`reset role`);
  try {
    await t.database.db.execute(sql.raw(query));
  } finally {
    await t.database.db.execute(sql`set role hub_app`);
  }
}
