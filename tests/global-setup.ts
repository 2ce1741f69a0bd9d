import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { openDatabase } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { Redis } from 'ioredis';

import { TEMPLATE_DB } from './helpers/template.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Admin URL of the test PostgreSQL server, or '' when there is none (tests then skip, unless required). */
    pgAdminUrl: string;
    redisUrl: string;
  }
}

const required = process.env.HUB_REQUIRE_SERVICES === '1';

async function reachable(check: () => Promise<void>): Promise<boolean> {
  try {
    await check();
    return true;
  } catch {
    return false;
  }
}

/**
 * Once per run: finds PostgreSQL and Redis, and builds a migrated template database that each test file clones
 * (CREATE DATABASE … TEMPLATE), so files run in parallel on databases of their own.
 * With HUB_REQUIRE_SERVICES=1 a missing service fails the run instead of skipping its tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pgAdminUrl = process.env.HUB_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const redisUrl = process.env.HUB_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const pgOk = await reachable(async () => {
    const c = new pg.Client({ connectionString: pgAdminUrl, connectionTimeoutMillis: 3000 });
    await c.connect();
    await c.end();
  });
  const redisOk = await reachable(async () => {
    const r = new Redis(redisUrl, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      await r.ping();
    } finally {
      r.disconnect();
    }
  });
  if (required && !pgOk) throw new Error(`HUB_REQUIRE_SERVICES=1 but PostgreSQL is not reachable at ${pgAdminUrl}`);
  if (required && !redisOk) throw new Error(`HUB_REQUIRE_SERVICES=1 but Redis is not reachable at ${redisUrl}`);

  if (pgOk) {
    const admin = new pg.Client({ connectionString: pgAdminUrl });
    await admin.connect();
    await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()`, [TEMPLATE_DB]);
    await admin.query(`drop database if exists ${TEMPLATE_DB}`);
    await admin.query(`create database ${TEMPLATE_DB}`);
    await admin.end();
    const url = new URL(pgAdminUrl);
    url.pathname = `/${TEMPLATE_DB}`;
    const database = await openDatabase({ databaseUrl: url.toString(), poolSize: 1 });
    await migrateDatabase(database);
    await database.close();
  }
  project.provide('pgAdminUrl', pgOk ? pgAdminUrl : '');
  project.provide('redisUrl', redisOk ? redisUrl : '');
  return async () => undefined;
}
