import crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importJWK, SignJWT, createRemoteJWKSet, jwtVerify } from 'jose';
import { createClientAssertion, type ClientFile } from '../auth/client-file.ts';
import { addClientKey, disableClient } from '../auth/clients.ts';
import { retireHubKey, rotateHubKey } from '../auth/keys.ts';
import { CLIENT_ASSERTION_TYPE } from '../auth/oauth.ts';
import { openDatabase } from '../db/index.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub } from './helpers/hub.ts';

const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

function assertionParams(assertion: string, extra: Record<string, string> = {}): Record<string, string> {
  return { grant_type: 'client_credentials', client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: assertion, ...extra };
}

async function signAssertion(file: ClientFile, claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
  const key = await importJWK(file.jwk, file.jwk.alg);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: file.client_id, sub: file.client_id, aud: TEST_ISSUER, iat: now, exp: now + 60, jti: crypto.randomUUID(), ...claims })
    .setProtectedHeader({ alg: file.jwk.alg, kid: file.jwk.kid, ...header })
    .sign(key);
}

const VIEWER = '{ viewer { clientId name department roles } }';

describe.each(drivers())('client authentication and access tokens (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let consumer: ClientFile;

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    consumer = await hub.newClient(['consumer']);
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('exchanges a signed assertion for a token, then answers viewer over HTTP', async () => {
    const r = await hub.tokenRequest(assertionParams(await createClientAssertion(consumer, TEST_ISSUER)));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ token_type: 'Bearer', expires_in: 600, scope: 'consumer' });
    const token = String(r.body.access_token);
    const { status, body } = await hub.graphql(VIEWER, token);
    expect(status).toBe(200);
    expect(body.data?.viewer).toEqual({ clientId: consumer.client_id, name: 'test client', department: expect.any(String), roles: ['consumer'] });

    // The token verifies against the published JWKS with an ordinary library.
    const jwks = createRemoteJWKSet(new URL(`${hub.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: TEST_ISSUER, audience: TEST_ISSUER, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ client_id: consumer.client_id, roles: ['consumer'], sub: consumer.client_id });
    expect(payload.exp! - payload.iat!).toBe(600);
  });

  it('accepts EdDSA and Ed25519 client keys, and the token endpoint as audience', async () => {
    const ed = await hub.newClient(['provider'], { alg: 'EdDSA' });
    expect((await hub.tokenRequest(assertionParams(await signAssertion(ed, {}, { alg: 'EdDSA' })))).status).toBe(200);
    expect((await hub.tokenRequest(assertionParams(await signAssertion(ed, {}, { alg: 'Ed25519' })))).status).toBe(200);
    const toEndpoint = await signAssertion(consumer, { aud: `${TEST_ISSUER}/oauth/token` });
    expect((await hub.tokenRequest(assertionParams(toEndpoint))).status).toBe(200);
  });

  it('publishes RFC 8414 metadata', async () => {
    const m = (await (await fetch(`${hub.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(m).toMatchObject({
      issuer: TEST_ISSUER,
      token_endpoint: `${TEST_ISSUER}/oauth/token`,
      jwks_uri: `${TEST_ISSUER}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
    });
    expect(m.token_endpoint_auth_signing_alg_values_supported).toEqual(['ES256', 'EdDSA', 'Ed25519']);
  });

  describe('the token endpoint refuses', () => {
    const refused = async (params: Record<string, string>, error = 'invalid_client') => {
      const r = await hub.tokenRequest(params);
      expect(r.body.error).toBe(error);
      expect(r.status).toBe(error === 'invalid_client' ? 401 : 400);
      expect(r.body.access_token).toBeUndefined();
      return String(r.body.error_description);
    };

    it('a bad signature', async () => {
      const other = await hub.newClient(['consumer']);
      // signed with another client's key, but claiming to be `consumer`
      const forged = await signAssertion({ ...other, client_id: consumer.client_id, jwk: { ...other.jwk, kid: consumer.jwk.kid } }, {});
      expect(await refused(assertionParams(forged))).toMatch(/signature/);
    });
    it('an unknown client', async () => {
      expect(await refused(assertionParams(await signAssertion({ ...consumer, client_id: 'no-such-client' }, {})))).toMatch(/unknown client/);
    });
    it('a disabled client', async () => {
      const c = await hub.newClient(['consumer']);
      await disableClient(tdb.database.db, c.client_id, 'test');
      expect(await refused(assertionParams(await createClientAssertion(c, TEST_ISSUER)))).toMatch(/disabled/);
    });
    it('an expired assertion, beyond the 60 s skew', async () => {
      const now = Math.floor(Date.now() / 1000);
      expect(await refused(assertionParams(await signAssertion(consumer, { iat: now - 300, exp: now - 61 })))).toMatch(/expired/);
      // within the skew it still passes
      expect((await hub.tokenRequest(assertionParams(await signAssertion(consumer, { iat: now - 100, exp: now - 30 })))).status).toBe(200);
    });
    it('an assertion that lives longer than 5 minutes', async () => {
      const now = Math.floor(Date.now() / 1000);
      expect(await refused(assertionParams(await signAssertion(consumer, { exp: now + 3600 })))).toMatch(/at most 300/);
    });
    it('a reused jti', async () => {
      const a = await createClientAssertion(consumer, TEST_ISSUER);
      expect((await hub.tokenRequest(assertionParams(a))).status).toBe(200);
      expect(await refused(assertionParams(a))).toMatch(/already used/);
    });
    it('a jti replayed to a second app instance on the same database', async () => {
      const second = await startTestHub(tdb.url ? await openDatabase({ databaseUrl: tdb.url, poolSize: 2, appRole: true }) : tdb.database);
      try {
        const a = await createClientAssertion(consumer, TEST_ISSUER);
        expect((await hub.tokenRequest(assertionParams(a))).status).toBe(200);
        const r = await second.tokenRequest(assertionParams(a));
        expect(r.body).toMatchObject({ error: 'invalid_client', error_description: expect.stringMatching(/already used/) });
      } finally {
        await second.close();
        if (tdb.url) await second.services.database.close();
      }
    });
    it('a wrong audience', async () => {
      expect(await refused(assertionParams(await signAssertion(consumer, { aud: 'https://elsewhere.example' })))).toMatch(/aud/);
    });
    it('alg none', async () => {
      const now = Math.floor(Date.now() / 1000);
      const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ iss: consumer.client_id, sub: consumer.client_id, aud: TEST_ISSUER, exp: now + 60, jti: crypto.randomUUID() })}.`;
      expect(await refused(assertionParams(none))).toMatch(/alg/);
    });
    it('HS256 signed with the client\'s public key as the secret', async () => {
      const { d: _d, ...pub } = consumer.jwk;
      for (const secret of [JSON.stringify(pub), crypto.createPublicKey({ key: pub as crypto.JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString()]) {
        const now = Math.floor(Date.now() / 1000);
        const forged = await new SignJWT({ iss: consumer.client_id, sub: consumer.client_id, aud: TEST_ISSUER, exp: now + 60, jti: crypto.randomUUID() })
          .setProtectedHeader({ alg: 'HS256', kid: consumer.jwk.kid })
          .sign(new TextEncoder().encode(secret));
        expect(await refused(assertionParams(forged))).toMatch(/alg/);
      }
    });
    it('a missing assertion, another grant type, or an unheld scope', async () => {
      await refused({ grant_type: 'client_credentials', client_assertion_type: CLIENT_ASSERTION_TYPE }, 'invalid_request');
      await refused({ grant_type: 'password', username: 'x', password: 'y' }, 'unsupported_grant_type');
      await refused(assertionParams(await createClientAssertion(consumer, TEST_ISSUER), { scope: 'admin' }), 'invalid_scope');
    });
  });

  describe('a Bearer token is refused with UNAUTHENTICATED when it is', () => {
    const unauthenticated = async (token: string | undefined, message: RegExp) => {
      const { status, body } = await hub.graphql(VIEWER, token);
      expect(status).toBe(401);
      expect(body.data).toBeUndefined();
      expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(body.errors?.[0]?.message).toMatch(message);
    };

    it('missing', async () => {
      await unauthenticated(undefined, /Bearer/);
    });
    it('expired', async () => {
      const past = Date.now() - 11 * 60 * 1000;
      const earlier = await startTestHub(tdb.database, { now: () => past });
      try {
        const iat = Math.floor(past / 1000);
        const r = await earlier.tokenRequest(assertionParams(await signAssertion(consumer, { iat, exp: iat + 60 })));
        expect(r.status).toBe(200);
        await unauthenticated(String(r.body.access_token), /expired/);
      } finally {
        await earlier.close();
      }
    });
    it('forged: payload changed, or signed by a key the hub never had', async () => {
      const token = await hub.token(consumer);
      const [h, p, s] = token.split('.');
      const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
      await unauthenticated(`${h}.${b64({ ...payload, roles: ['admin'] })}.${s}`, /signature/);
      const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const header = JSON.parse(Buffer.from(h!, 'base64url').toString());
      const own = await new SignJWT(payload).setProtectedHeader(header).sign(privateKey);
      await unauthenticated(own, /signature/);
      await unauthenticated('not.a.token', /JWT/);
    });
    it('signed by a retired key, while a rotated (not retired) key still verifies', async () => {
      const before = await hub.token(consumer);
      const oldKid = JSON.parse(Buffer.from(before.split('.')[0]!, 'base64url').toString()).kid as string;
      const { kid: newKid } = await rotateHubKey(tdb.database.db, hub.services.masterKey, 'token');
      await hub.services.keys.reload(); // NOTIFY also does this; reload makes the test independent of delivery timing
      const after = await hub.token(consumer);
      expect(JSON.parse(Buffer.from(after.split('.')[0]!, 'base64url').toString()).kid).toBe(newKid);
      expect((await hub.graphql(VIEWER, before)).status).toBe(200); // old key still verifies within its grace
      const jwks = (await (await fetch(`${hub.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(jwks.keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));

      await retireHubKey(tdb.database.db, oldKid);
      await hub.services.keys.reload();
      await unauthenticated(before, /key the hub does not accept/);
      expect((await hub.graphql(VIEWER, after)).status).toBe(200);
      const jwksAfter = (await (await fetch(`${hub.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
      expect(jwksAfter.keys.map((k) => k.kid)).not.toContain(oldKid);
    });
    it('held by a client disabled since, effective at once', async () => {
      const c = await hub.newClient(['consumer']);
      const token = await hub.token(c);
      expect((await hub.graphql(VIEWER, token)).status).toBe(200);
      await disableClient(tdb.database.db, c.client_id, 'compromised');
      await expect.poll(async () => (await hub.graphql(VIEWER, token)).status, { timeout: 3000 }).toBe(401);
    });
  });

  it('replaces a client key: the old key is refused, the new one works', async () => {
    const c = await hub.newClient(['consumer']);
    const { generateClientKey } = await import('../auth/client-file.ts');
    const next = await generateClientKey('ES256');
    await addClientKey(tdb.database.db, c.client_id, next.publicJwk, { replace: true });
    const fresh: ClientFile = { client_id: c.client_id, jwk: next.privateJwk };
    await expect.poll(async () => (await hub.tokenRequest(assertionParams(await createClientAssertion(c, TEST_ISSUER)))).status, { timeout: 3000 }).toBe(401);
    expect((await hub.tokenRequest(assertionParams(await createClientAssertion(fresh, TEST_ISSUER)))).status).toBe(200);
  });

  it('narrows a token to a requested scope', async () => {
    const multi = await hub.newClient(['consumer', 'provider']);
    const token = await hub.token(multi, 'provider');
    const { body } = await hub.graphql(VIEWER, token);
    expect((body.data?.viewer as { roles: string[] }).roles).toEqual(['provider']);
  });
});
