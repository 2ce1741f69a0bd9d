import crypto from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauthAssertions } from '../auth/schema.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { startQueueWorker } from '../workers/bullmq.ts';
import { startInlineRunner } from '../workers/inline.ts';
import { isJobName, JOBS } from '../workers/jobs.ts';
import { createTestDatabase, drivers, redisUrl, type TestDatabase } from './helpers/db.ts';

const logger = createLogger({ level: 'silent' });

async function seedAssertions(tdb: TestDatabase) {
  await tdb.database.db.insert(oauthAssertions).values([
    { clientId: 'c', jti: `old-${crypto.randomUUID()}`, expiresAt: new Date(Date.now() - 60_000) },
    { clientId: 'c', jti: `live-${crypto.randomUUID()}`, expiresAt: new Date(Date.now() + 60_000) },
  ]);
}
const remaining = async (tdb: TestDatabase) =>
  (await rows<{ jti: string }>(tdb.database.db, sql`select jti from oauth_assertions where client_id = 'c'`)).map((r) => r.jti.split('-')[0]);

describe('the job registry', () => {
  it('knows its jobs by name and nothing else', () => {
    expect(isJobName('maintenance.purge-assertions')).toBe(true);
    expect(isJobName('toString')).toBe(false);
    expect(Object.keys(JOBS).every((n) => !n.includes(':'))).toBe(true); // BullMQ ids may not contain ':'
  });
});

describe.each(drivers())('jobs without Redis: the inline runner (%s)', (driver) => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
  });
  afterAll(async () => tdb?.drop());

  it('purges used assertion ids once their assertions expired, keeping live ones', async () => {
    await seedAssertions(tdb);
    const runner = await startInlineRunner({ database: tdb.database, db: tdb.database.db, logger, masterKey: Buffer.alloc(32, 1) });
    try {
      await expect.poll(() => remaining(tdb), { timeout: 5000 }).toEqual(['live']);
    } finally {
      await runner.stop();
    }
  });
});

describe.runIf(redisUrl() !== '' && drivers().includes('pg'))('jobs on BullMQ with Redis', () => {
  let tdb: TestDatabase;
  beforeAll(async () => {
    tdb = await createTestDatabase('pg');
  });
  afterAll(async () => tdb?.drop());

  it('registers the schedules once and runs them on a worker', async () => {
    await seedAssertions(tdb);
    const queueName = `hub-test-${crypto.randomBytes(6).toString('hex')}`;
    const a = await startQueueWorker({ database: tdb.database, db: tdb.database.db, logger, masterKey: Buffer.alloc(32, 1) }, { redisUrl: redisUrl(), queueName });
    const b = await startQueueWorker({ database: tdb.database, db: tdb.database.db, logger, masterKey: Buffer.alloc(32, 1) }, { redisUrl: redisUrl(), queueName });
    try {
      await expect.poll(() => remaining(tdb), { timeout: 10_000 }).toEqual(['live']);
      const schedulers = await a.queue.getJobSchedulers();
      expect(schedulers.map((s) => s.key).sort()).toEqual(Object.entries(JOBS).filter(([, j]) => j.everyMs).map(([n]) => `schedule.${n}`).sort()); // two workers, one schedule each
    } finally {
      await a.queue.obliterate({ force: true });
      await b.close();
      await a.close();
    }
  });
});
