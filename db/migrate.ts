import { sql } from 'drizzle-orm';
import { MIGRATIONS_DIR, switchToAppRole, type Database } from './index.ts';

/**
 * Applies the committed migrations (db/migrations). Several processes may start at once against one PostgreSQL:
 * a session advisory lock, held on the migrating connection itself, lets one migrate while the others wait and
 * then find nothing left to do.
 */
export async function migrateDatabase(database: Database, migrationsFolder = MIGRATIONS_DIR): Promise<void> {
  if (database.driver === 'pglite') {
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    // PGlite's single session steps out of hub_app to migrate as the owner, and back.
    if (database.appRole) await database.db.execute(sql`reset role`);
    await migrate(database.db as never, { migrationsFolder });
    if (database.appRole) await switchToAppRole(database);
    return;
  }
  const pg = (await import('pg')).default;
  const { drizzle } = await import('drizzle-orm/node-postgres');
  const { migrate } = await import('drizzle-orm/node-postgres/migrator');
  const client = new pg.Client({ connectionString: database.url, application_name: 'hub-migrate' });
  await client.connect();
  try {
    await client.query(`select pg_advisory_lock(hashtext('hub:migrate'))`);
    await client.query(`set client_min_messages = warning`);
    await migrate(drizzle(client), { migrationsFolder });
  } finally {
    await client.end(); // ends the session, which releases the lock
  }
}
