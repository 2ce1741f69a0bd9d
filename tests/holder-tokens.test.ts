import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { and, asc, eq, gt, sql } from 'drizzle-orm';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueHolderToken } from '../auth/holders.ts';
import { auditEntries } from '../audit/schema.ts';
import { openDatabase, rows } from '../db/index.ts';
import { asOwner, createPgDatabase, createTestDatabase, drivers, pgAvailable, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, TEST_MASTER_KEY, type TestHub } from './helpers/hub.ts';
import { runCli } from './helpers/cli.ts';

const ME = '11010519491231002X';
const MY_LOG = '{ myAccessLog { edges { node { caseId } } } }';
const MINT = `mutation($c: String!) { issueHolderToken(code: $c) { token expiresIn } }`;

const maxSeq = async (tdb: TestDatabase) => (await rows<{ n: number }>(tdb.database.db, sql`select coalesce(max(seq), 0)::int8 as n from audit_entries`))[0]!.n;
const minted = (tdb: TestDatabase, after: number) =>
  tdb.database.db
    .select()
    .from(auditEntries)
    .where(and(eq(auditEntries.operation, 'HOLDER_TOKEN_ISSUE'), gt(auditEntries.seq, after)))
    .orderBy(asc(auditEntries.seq));

describe.each(drivers())('holder tokens the hub mints (%s)', (driver) => {
  describe('in the demo (no identity provider)', () => {
    let tdb: TestDatabase;
    let hub: TestHub;
    let admin: string;
    let adminId: string;
    let auditor: string;
    beforeAll(async () => {
      tdb = await createTestDatabase(driver);
      hub = await startTestHub(tdb.database);
      const a = await hub.newClient(['admin']);
      adminId = a.client_id;
      admin = await hub.token(a);
      auditor = await hub.token(await hub.newClient(['auditor']));
    });
    afterAll(async () => {
      await hub?.close();
      await tdb?.drop();
    });

    it('records each token minted, naming the admin who minted it, before the token is returned', async () => {
      const start = await maxSeq(tdb);
      const r = await hub.graphql(MINT, admin, { c: ME });
      const { token } = r.body.data!.issueHolderToken as { token: string };
      const claims = decodeJwt(token);
      expect((await hub.graphql(MY_LOG, token)).status).toBe(200);
      const [entry] = await minted(tdb, start);
      expect(entry).toMatchObject({ clientId: adminId, subject: ME, outcome: 'DONE', details: { jti: claims.jti, expiresAt: new Date(claims.exp! * 1000).toISOString() } });
      expect(JSON.stringify(entry)).not.toContain(token.split('.')[2]);
      // the auditor sees it, with the admin
      const seen = await hub.graphql(`{ accessLog(filter: { operation: "HOLDER_TOKEN_ISSUE" }) { edges { node { clientId subject outcome } } } }`, auditor);
      expect((seen.body.data!.accessLog as { edges: { node: unknown }[] }).edges.map((e) => e.node)).toEqual([{ clientId: adminId, subject: ME, outcome: 'DONE' }]);
      // the citizen's own view shows reads, not administrative acts
      expect((await hub.graphql(MY_LOG, token)).body.data?.myAccessLog).toEqual({ edges: [] });
    });

    it('names hub-cli when minted outside a request', async () => {
      const start = await maxSeq(tdb);
      const { token } = await issueHolderToken({ db: tdb.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, ME);
      expect(await minted(tdb, start)).toEqual([expect.objectContaining({ clientId: 'hub-cli', department: null, subject: ME, details: { jti: decodeJwt(token).jti, expiresAt: expect.any(String) } })]);
    });

    it('mints no token when the entry cannot be written', async () => {
      const start = await maxSeq(tdb);
      await asOwner(tdb, 'revoke insert on audit_entries from hub_app');
      try {
        const r = await hub.graphql(MINT, admin, { c: ME });
        expect(r.body.data?.issueHolderToken ?? null).toBeNull();
        expect(r.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
        await expect(issueHolderToken({ db: tdb.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, ME)).rejects.toThrow();
      } finally {
        await asOwner(tdb, 'grant insert on audit_entries to hub_app');
      }
      expect(await minted(tdb, start)).toEqual([]);
    });

    it('refuses a client without the admin role, and a bad code, recording nothing', async () => {
      const start = await maxSeq(tdb);
      const consumer = await hub.token(await hub.newClient(['consumer']));
      expect((await hub.graphql(MINT, consumer, { c: ME })).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect((await hub.graphql(MINT, admin, { c: '110101199003077777' })).body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(await minted(tdb, start)).toEqual([]);
    });
  });

  describe('with an identity provider configured (HUB_OIDC_ISSUER)', () => {
    let tdb: TestDatabase;
    let hub: TestHub;
    let admin: string;
    beforeAll(async () => {
      tdb = await createTestDatabase(driver);
      hub = await startTestHub(tdb.database, { env: { HUB_OIDC_ISSUER: 'https://idp.example.gov.cn', HUB_OIDC_AUDIENCE: 'hub' } });
      admin = await hub.token(await hub.newClient(['admin']));
    });
    afterAll(async () => {
      await hub?.close();
      await tdb?.drop();
    });

    it('mints none: FORBIDDEN through GraphQL and from the function, and records nothing', async () => {
      const start = await maxSeq(tdb);
      const r = await hub.graphql(MINT, admin, { c: ME });
      expect(r.body.errors?.[0]).toMatchObject({ message: expect.stringMatching(/holder tokens come from the identity provider/), extensions: { code: 'FORBIDDEN' } });
      expect(r.body.data?.issueHolderToken ?? null).toBeNull();
      await expect(issueHolderToken({ db: tdb.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: 'https://idp.example.gov.cn' }, ME)).rejects.toMatchObject({ code: 'FORBIDDEN' });
      expect(await minted(tdb, start)).toEqual([]);
    });

    it('accepts no holder token signed by the hub itself (made by a process unaware of the identity provider)', async () => {
      const { token } = await issueHolderToken({ db: tdb.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, ME);
      const r = await hub.graphql(MY_LOG, token);
      expect(r.status).toBe(401);
      expect(r.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    });
  });
});

const cli = runCli;

describe.runIf(pgAvailable())('hub holders token (command line)', () => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    tdb = await createPgDatabase();
    hub = await startTestHub(await openDatabase({ databaseUrl: tdb.url!, poolSize: 4, appRole: true }));
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-holders-cli-'));
    env = { DATABASE_URL: tdb.url!, HUB_MASTER_KEY: TEST_MASTER_KEY, HUB_DATA_DIR: dir, HUB_ISSUER: TEST_ISSUER };
  });
  afterAll(async () => {
    await hub?.close();
    await hub?.services.database.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('prints a token and records it as minted by hub-cli', async () => {
    const start = await maxSeq(tdb);
    const r = await cli(['holders', 'token', '--code', ME], env);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const jti = decodeJwt(r.stdout.trim()).jti;
    expect(await minted(tdb, start)).toEqual([expect.objectContaining({ clientId: 'hub-cli', subject: ME, details: { jti, expiresAt: expect.any(String) } })]);
  });

  it('refuses with HUB_OIDC_ISSUER set: a clear line on stderr, nothing on stdout, exit 1, nothing recorded', async () => {
    const start = await maxSeq(tdb);
    const r = await cli(['holders', 'token', '--code', ME], { ...env, HUB_OIDC_ISSUER: 'https://idp.example.gov.cn' });
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim()).toMatch(/^hub: FORBIDDEN: holder tokens come from the identity provider/);
    expect(await minted(tdb, start)).toEqual([]);
  });
});
