import { ClientCache } from '../auth/clients.ts';
import { KeyRing, ensureHubKeys } from '../auth/keys.ts';
import { checkMasterKey, resolveMasterKey } from '../auth/master-key.ts';
import { OidcVerifier } from '../auth/holders.ts';
import { OAuthServer } from '../auth/oauth.ts';
import { ensurePartitions } from '../audit/months.ts';
import { AuditWriter } from '../audit/writer.ts';
import { GrantChecker } from '../directory/access.ts';
import { openLicenceRuntime, type LicenceRuntime } from '../licence/runtime.ts';
import type { HubConfig } from '../core/config.ts';
import { EgressPolicy } from '../core/egress.ts';
import type { Logger } from '../core/logger.ts';
import { openDatabase, type Database } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';

/** Everything a gateway or worker process shares, built once at start. */
export interface HubServices {
  config: HubConfig;
  logger: Logger;
  database: Database;
  masterKey: Buffer;
  /** what the hub may call on anyone's behalf (HUB_EGRESS_ALLOW); the embedded demo adds its simulators */
  egress: EgressPolicy;
  keys: KeyRing;
  clients: ClientCache;
  oauth: OAuthServer;
  grants: GrantChecker;
  audit: AuditWriter;
  /** the licence room: root CA and signing keys, verifier, status lists */
  licence: LicenceRuntime;
  close(): Promise<void>;
}

export interface OpenHubOptions {
  /** Apply migrations first (the embedded default always does; PostgreSQL deployments may run `hub migrate`). */
  migrate?: boolean;
  /** An already open database (tests hand in one per test file). */
  database?: Database;
  now?: () => number;
}

/**
 * Opens the database, checks the master key, makes sure the hub's signing keys exist, and loads the key ring and
 * client cache. On the embedded driver the migrations run every time (they are cheap when nothing is new).
 */
export async function openHub(config: HubConfig, logger: Logger, options: OpenHubOptions = {}): Promise<HubServices> {
  const database =
    options.database ??
    (await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.dbPoolSize, logger, appRole: true }));
  try {
    if (options.migrate || database.driver === 'pglite') await migrateDatabase(database);
    const masterKey = resolveMasterKey(config.masterKey, config.dataDir);
    await checkMasterKey(database.db, masterKey);
    const created = await ensureHubKeys(database.db, masterKey);
    if (created.length) logger.info({ kids: created }, 'created hub signing keys');
    const partitions = await ensurePartitions(database.db);
    if (partitions.length) logger.info({ partitions }, 'created monthly partitions of the audit log');
    const keys = await KeyRing.open(database, masterKey, logger);
    const clients = await ClientCache.open(database, logger);
    const grants = await GrantChecker.open(database, logger);
    const audit = new AuditWriter(database.db);
    const licence = await openLicenceRuntime(database, masterKey, config.issuer, logger);
    const egress = EgressPolicy.fromConfig(config.egressAllow, { ports: [config.port], issuer: config.issuer });
    const oauth = new OAuthServer({
      db: database.db,
      keys,
      clients,
      issuer: config.issuer,
      ...(options.now ? { now: options.now } : {}),
      ...(config.oidc ? { oidc: new OidcVerifier(config.oidc) } : {}),
    });
    return {
      config,
      logger,
      database,
      masterKey,
      egress,
      keys,
      clients,
      oauth,
      grants,
      audit,
      licence,
      async close() {
        await audit.drain();
        await licence.close();
        await grants.close();
        await keys.close();
        await clients.close();
        egress.close();
        if (!options.database) await database.close();
      },
    };
  } catch (error) {
    if (!options.database) await database.close();
    throw error;
  }
}
