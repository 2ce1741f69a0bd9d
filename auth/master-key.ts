import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { eq } from 'drizzle-orm';
import { StartupError } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { hubSettings } from './schema.ts';

/**
 * HUB_MASTER_KEY, or for the embedded default and development a key kept in HUB_DATA_DIR/master.key (mode 0600),
 * made on first use. Production with PostgreSQL must pass it (config.ts refuses to start otherwise).
 */
export function resolveMasterKey(configured: Buffer | undefined, dataDir: string): Buffer {
  if (configured) return configured;
  const file = path.join(dataDir, 'master.key');
  if (fs.existsSync(file)) {
    const key = Buffer.from(fs.readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new StartupError(`HUB_MASTER_KEY: ${file} does not hold 32 bytes of base64`);
    return key;
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, `${key.toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
  return key;
}

/** AES-256-GCM under the master key; `context` is bound as associated data so a blob cannot be moved elsewhere. */
export function seal(masterKey: Buffer, plaintext: string, context: string): string {
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', masterKey, iv);
  cipher.setAAD(Buffer.from(context));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `v1.${Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64')}`;
}

export function unseal(masterKey: Buffer, sealed: string, context: string): string {
  if (!sealed.startsWith('v1.')) throw new Error('unknown sealed format');
  const raw = Buffer.from(sealed.slice(3), 'base64');
  const decipher = crypto.createDecipheriv('aes-256-gcm', masterKey, raw.subarray(0, 12));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(raw.subarray(12, 28));
  return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
}

const CHECK_KEY = 'master_key_check';

function checkValue(masterKey: Buffer): string {
  return crypto.createHmac('sha256', masterKey).update('hub master key check v1').digest('base64url');
}

/**
 * Records which master key this database's secrets are sealed under, the first time; afterwards a process started
 * with another key stops with a clear line instead of failing later on a decryption error.
 */
export async function checkMasterKey(db: Db, masterKey: Buffer): Promise<void> {
  const value = checkValue(masterKey);
  await db.insert(hubSettings).values({ key: CHECK_KEY, value }).onConflictDoNothing();
  const [row] = await db.select().from(hubSettings).where(eq(hubSettings.key, CHECK_KEY));
  if (row?.value !== value) {
    throw new StartupError('HUB_MASTER_KEY: does not match the key this database\'s hub keys were sealed with');
  }
}
