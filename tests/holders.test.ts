import crypto from 'node:crypto';
import http from 'node:http';
import { SignJWT, exportJWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditWriter } from '../audit/writer.ts';
import { issueHolderToken } from '../auth/holders.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub } from './helpers/hub.ts';

const ME = '11010519491231002X';
const OTHER = '360426199101010071';
const COMPANY = '91350100M000100Y43';

/** A local OpenID Connect provider: discovery, JWKS, and ID tokens it signs. */
async function localIdp() {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'idp-1', alg: 'ES256', use: 'sig' };
  let issuer = '';
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    else if (req.url === '/jwks') res.end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const idToken = (claims: Record<string, unknown>, options: { aud?: string; exp?: number } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: 'idp-1' })
      .setIssuer(issuer)
      .setAudience(options.aud ?? 'hub-demo')
      .setIssuedAt()
      .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300)
      .setSubject(crypto.randomUUID())
      .sign(privateKey);
  return { issuer, idToken, close: () => new Promise((r) => server.close(r)) };
}

describe.each(drivers())('holders: their own view of who read their data (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let idp: Awaited<ReturnType<typeof localIdp>>;
  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    idp = await localIdp();
    hub = await startTestHub(tdb.database, { env: { HUB_OIDC_ISSUER: idp.issuer, HUB_OIDC_AUDIENCE: 'hub-demo', HUB_OIDC_SUBJECT_CLAIM: 'id_number' } });
    const writer = new AuditWriter(tdb.database.db);
    const read = (subject: string, caseId: string, extra: Record<string, unknown> = {}) => ({
      clientId: 'approval-1',
      department: '11350100003500043N',
      operation: 'PERSON_READ',
      itemCode: '350100-DJ-0001',
      caseId,
      resourceCode: '1-01-001/000001',
      subject,
      fields: ['name'],
      outcome: 'RETURNED' as const,
      ...extra,
    });
    await writer.appendMany([
      read(ME, 'CASE-A'),
      read(OTHER, 'CASE-B'),
      read(ME, 'CASE-C', { withholdBasis: '《刑事诉讼法》第一百五十二条：侦查需要，暂不告知' }),
      read(ME, 'CASE-D', { outcome: 'NOT_FOUND' }),
      read(COMPANY, 'CASE-E', { operation: 'LEGAL_PERSON_READ' }),
      { operation: 'ACCESS_DECISION', outcome: 'DONE' as const, subject: ME, clientId: 'p' },
    ]);
  });
  afterAll(async () => {
    await hub?.close();
    await idp?.close();
    await tdb?.drop();
  });

  const MY_LOG = '{ myAccessLog { edges { node { caseId itemCode clientId operation outcome subject withholdBasis } } } }';

  it('shows a citizen signed in at the identity provider exactly its own reads, minus the withheld ones', async () => {
    const token = await idp.idToken({ id_number: ME });
    const viewer = await hub.graphql('{ viewer { roles name } }', token);
    expect(viewer.body.data?.viewer).toEqual({ roles: ['holder'], name: '110105********002X' });
    const log = await hub.graphql(MY_LOG, token);
    const cases = (log.body.data!.myAccessLog as { edges: { node: { caseId: string; withholdBasis: string | null } }[] }).edges.map((e) => e.node.caseId);
    expect(cases).toEqual(['CASE-D', 'CASE-A']);
    // and nothing else a client could do
    expect((await hub.graphql('{ accessLog { edges { node { id } } } }', token)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    expect((await hub.graphql('{ allowedResources { fields } }', token)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('shows a company its own reads', async () => {
    const token = await idp.idToken({ id_number: COMPANY });
    const log = await hub.graphql(MY_LOG, token);
    expect((log.body.data!.myAccessLog as { edges: { node: { caseId: string } }[] }).edges.map((e) => e.node.caseId)).toEqual(['CASE-E']);
  });

  it('accepts ID tokens from the configured identity provider, and refuses the wrong audience, an expired one, or a client asking', async () => {
    const idToken = await idp.idToken({ id_number: OTHER, name: '张三' });
    const log = await hub.graphql(MY_LOG, idToken);
    expect((log.body.data!.myAccessLog as { edges: { node: { caseId: string } }[] }).edges.map((e) => e.node.caseId)).toEqual(['CASE-B']);
    const wrongAud = await hub.graphql(MY_LOG, await idp.idToken({ id_number: OTHER }, { aud: 'another-app' }));
    expect(wrongAud.status).toBe(401);
    const expired = await hub.graphql(MY_LOG, await idp.idToken({ id_number: OTHER }, { exp: Math.floor(Date.now() / 1000) - 120 }));
    expect(expired.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const badCode = await hub.graphql(MY_LOG, await idp.idToken({ id_number: '110101199003077777' }));
    expect(badCode.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const client = await hub.token(await hub.newClient(['consumer', 'auditor']));
    expect((await hub.graphql(MY_LOG, client)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it('mints no holder token with the identity provider configured, and accepts none the hub signed (holder-tokens.test.ts has the demo\'s)', async () => {
    const admin = await hub.token(await hub.newClient(['admin']));
    const r = await hub.graphql(`mutation { issueHolderToken(code: "${ME}") { token expiresIn } }`, admin);
    expect(r.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const consumer = await hub.token(await hub.newClient(['consumer']));
    expect((await hub.graphql(`mutation { issueHolderToken(code: "${ME}") { token } }`, consumer)).body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    // one signed with the hub's key by a process started without HUB_OIDC_ISSUER
    const { token } = await issueHolderToken({ db: tdb.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, ME);
    expect((await hub.graphql(MY_LOG, token)).status).toBe(401);
  });
});
