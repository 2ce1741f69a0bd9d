import { and, asc, eq, sql } from 'drizzle-orm';
import { recordAct } from '../audit/acts.ts';
import { seal, unseal } from '../auth/master-key.ts';
import { actorOf, requireOwnDepartment, requireRole, type HubContext } from '../core/context.ts';
import { badInput } from '../core/errors.ts';
import type { Db } from '../db/index.ts';
import { departments } from '../directory/schema.ts';
import { sourceSecrets } from './schema.ts';

/** A secret's name: what a connector's config says in `secret`. */
export const SECRET_NAME = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const MAX_SECRET_BYTES = 8192;

export interface SourceSecretInfo {
  departmentCode: string;
  name: string;
  version: number;
  updatedAt: Date;
}

/** The associated data a secret is sealed with: a sealed value moved to another department, name or version fails. */
const sealContext = (departmentCode: string, name: string, version: number) => `source-secret:${departmentCode}:${name}:${version}`;

/**
 * Stores (or rotates) a source secret of a department, write-only: the value is sealed under the master key and no
 * API ever answers it. The audit entry names the secret and its version, never the value.
 */
export async function setSourceSecret(ctx: HubContext, masterKey: Buffer, departmentCode: string, name: string, value: string): Promise<SourceSecretInfo> {
  const p = requireRole(ctx, 'provider', 'admin');
  requireOwnDepartment(ctx, departmentCode, `the source secrets of department ${departmentCode}`);
  if (typeof name !== 'string' || !SECRET_NAME.test(name)) throw badInput('name', 'a secret name is 1–63 lower-case letters, digits, dots, dashes and underscores');
  if (typeof value !== 'string' || value.length === 0) throw badInput('value', 'the secret is empty');
  if (Buffer.byteLength(value) > MAX_SECRET_BYTES) throw badInput('value', `a secret holds at most ${MAX_SECRET_BYTES} bytes`);
  if (value.includes('\u0000')) throw badInput('value', 'the secret holds a NUL character');
  return ctx.db.transaction(async (tx) => {
    const [dept] = await tx.select({ code: departments.code }).from(departments).where(eq(departments.code, departmentCode));
    if (!dept) throw badInput('department', `department ${departmentCode} is not registered`);
    const [current] = await tx
      .select({ version: sourceSecrets.version })
      .from(sourceSecrets)
      .where(and(eq(sourceSecrets.departmentCode, departmentCode), eq(sourceSecrets.name, name)))
      .for('update');
    const version = (current?.version ?? 0) + 1;
    const valueEnc = seal(masterKey, value, sealContext(departmentCode, name, version));
    const [row] = await tx
      .insert(sourceSecrets)
      .values({ departmentCode, name, version, valueEnc, updatedBy: p.clientId })
      .onConflictDoUpdate({ target: [sourceSecrets.departmentCode, sourceSecrets.name], set: { version, valueEnc, updatedBy: p.clientId, updatedAt: sql`now()` } })
      .returning({ departmentCode: sourceSecrets.departmentCode, name: sourceSecrets.name, version: sourceSecrets.version, updatedAt: sourceSecrets.updatedAt });
    await recordAct(tx, actorOf(ctx), 'SOURCE_SECRET_SET', { details: { departmentCode, name, version, rotated: version > 1 } });
    return row!;
  });
}

/** The names and versions of a department's secrets; never their values. */
export async function listSourceSecrets(ctx: HubContext, departmentCode: string): Promise<SourceSecretInfo[]> {
  requireRole(ctx, 'provider', 'admin', 'auditor');
  if (!ctx.principal.roles.includes('auditor')) requireOwnDepartment(ctx, departmentCode, `the source secrets of department ${departmentCode}`);
  return ctx.db
    .select({ departmentCode: sourceSecrets.departmentCode, name: sourceSecrets.name, version: sourceSecrets.version, updatedAt: sourceSecrets.updatedAt })
    .from(sourceSecrets)
    .where(eq(sourceSecrets.departmentCode, departmentCode))
    .orderBy(asc(sourceSecrets.name));
}

export async function sourceSecretExists(db: Db, departmentCode: string, name: string): Promise<boolean> {
  const [row] = await db
    .select({ name: sourceSecrets.name })
    .from(sourceSecrets)
    .where(and(eq(sourceSecrets.departmentCode, departmentCode), eq(sourceSecrets.name, name)));
  return Boolean(row);
}

/** A failure to find or open a secret: its name only, never a value. */
export class SecretUnavailable extends Error {
  constructor(departmentCode: string, name: string, why: string) {
    super(`SECRET_UNAVAILABLE: source secret "${name}" of department ${departmentCode} ${why}`);
    this.name = 'SecretUnavailable';
  }
}

/**
 * The secrets one department's connector may use, read when a request needs one (so a rotation takes effect at the
 * next page). Bound to the connector's department: another department's secret of the same name is never found.
 */
export class SecretReader {
  constructor(
    private readonly db: Db,
    private readonly masterKey: Buffer,
    readonly departmentCode: string,
  ) {}

  async read(name: string): Promise<string> {
    const [row] = await this.db
      .select({ version: sourceSecrets.version, valueEnc: sourceSecrets.valueEnc })
      .from(sourceSecrets)
      .where(and(eq(sourceSecrets.departmentCode, this.departmentCode), eq(sourceSecrets.name, name)));
    if (!row) throw new SecretUnavailable(this.departmentCode, name, 'is not set');
    try {
      return unseal(this.masterKey, row.valueEnc, sealContext(this.departmentCode, name, row.version));
    } catch {
      throw new SecretUnavailable(this.departmentCode, name, 'cannot be opened with this master key');
    }
  }
}
