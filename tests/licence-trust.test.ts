import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { digest } from '@sd-jwt/crypto-nodejs';
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readClientFile } from '../auth/client-file.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { seedDemo } from '../db/seeds/demo.ts';
import { DEMO_HOLDERS } from '../db/seeds/demo-licences.ts';
import { DEMO_LICENCE_TYPES, DEMO_RESOURCES } from '../db/seeds/demo-directory.ts';
import { decodeCompactJws, signCompactJws } from '../licence/jws.ts';
import { protectedHeader } from '../licence/credentials.ts';
import { presentationPage } from '../licence/holder.ts';
import { signedFormsOf } from '../licence/issue.ts';
import { licences, licenceSigners } from '../licence/schema.ts';
import { JOBS, type JobDeps } from '../workers/jobs.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub, type GraphQLBody } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const T = DEMO_LICENCE_TYPES;
const PERSON = DEMO_HOLDERS.person.code;
/** 企业设立登记: its materials use the 居民身份证 and the 不动产权证书, not the 结婚证 */
const SETUP = '350100-DJ-0001';
/** the ID numbers the demo's licences carry: the holder's, and her spouse's on the 结婚证 */
const ID_NUMBERS = [PERSON, '360426199101010071'];

/** An SD-JWT's issuer payload and its disclosures, decoded: what anyone holding the text can read. */
function decodeSdJwt(text: string): { payload: Record<string, unknown>; disclosed: [string, unknown][] } {
  const [jwt, ...rest] = text.split('~');
  const payload = JSON.parse(Buffer.from(jwt!.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
  const disclosed = rest.filter(Boolean).map((d) => {
    const [, name, value] = JSON.parse(Buffer.from(d, 'base64url').toString()) as [string, string, unknown];
    return [name, value] as [string, unknown];
  });
  return { payload, disclosed };
}

describe.each(drivers())('a licence grant bounds what a caller sees (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let full: string;
  let narrow: string;
  let faces: string;
  const gql = async (token: string, query: string, variables?: Record<string, unknown>): Promise<GraphQLBody> => (await hub.graphql(query, token, variables)).body;
  const errorOf = (b: GraphQLBody) => b.errors?.[0]?.extensions;
  const purpose = { itemCode: SETUP, caseId: 'FZ-TRUST-1' };
  const LICENCES = (selection: string, extra = '') => `query($h: String!, $p: PurposeInput!${extra}) { licences(holderCode: $h, purpose: $p) { ${selection} } }`;

  /** A consumer with a grant on the licence resource for 企业设立登记 (无条件共享: granted on request). */
  const consumerWith = async (fields: string[], licenceTypes?: string[]) => {
    const token = await hub.token(await hub.newClient(['consumer']));
    const r = await gql(token, `mutation($i: AccessRequestInput!) { requestAccess(input: $i) { status licenceTypes } }`, {
      i: { resourceCode: DEMO_RESOURCES.licence, fields, itemCodes: [SETUP], purpose: '企业设立登记核验', ...(licenceTypes ? { licenceTypes } : {}) },
    });
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    return { token, request: r.data!.requestAccess as { status: string; licenceTypes: string[] } };
  };

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    const deps: { current?: JobDeps } = {};
    hub = await startTestHub(tdb.database, { jobs: { enqueue: async (name, data) => void (await JOBS[name].handler(deps.current!, data)) } });
    deps.current = { database: tdb.database, db: tdb.database.db, logger: log, masterKey: hub.services.masterKey, keys: hub.services.keys, issuer: TEST_ISSUER };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-licence-trust-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: `${TEST_ISSUER}/oauth/token`, logger: log, licence: { masterKey: hub.services.masterKey, issuer: TEST_ISSUER } });
    await hub.services.licence.pki.reload();
    full = await hub.token(readClientFile(path.join(dir, 'demo-client.json')));
    narrow = (await consumerWith(['identifier', 'typeCode', 'status'])).token;
    faces = (await consumerWith(['identifier', 'typeCode', 'number', 'holderName', 'holderCode', 'issuerName', 'validUntil', 'status', 'face'])).token;
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("opens only the licence types a grant names: by default those its items' materials use", async () => {
    const { request } = await consumerWith(['identifier', 'typeCode']);
    expect(request).toEqual({ status: 'APPROVED', licenceTypes: [T.idCard, T.propertyCertificate].sort() });
    const r = await gql(narrow, LICENCES('identifier typeCode'), { h: PERSON, p: purpose });
    expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
    const types = (r.data!.licences as { typeCode: string }[]).map((l) => l.typeCode).sort();
    expect(types).toEqual([T.idCard, T.propertyCertificate].sort());
    // the applicant's 结婚证 (the spouse's ID number on its face) is not among them, nor to be had by asking for it
    const asked = await gql(narrow, `query($h: String!, $p: PurposeInput!, $t: String) { licences(holderCode: $h, purpose: $p, typeCode: $t) { identifier } }`, { h: PERSON, p: purpose, t: T.marriageCertificate });
    expect(errorOf(asked)).toMatchObject({ code: 'GRANT_MISSING', missing: { licenceType: T.marriageCertificate } });
    // a request may name fewer types than its items use; a type not registered is refused
    const one = await consumerWith(['identifier', 'typeCode'], [T.idCard]);
    expect(one.request.licenceTypes).toEqual([T.idCard]);
    const only = await gql(one.token, LICENCES('typeCode'), { h: PERSON, p: purpose });
    expect((only.data!.licences as { typeCode: string }[]).map((l) => l.typeCode)).toEqual([T.idCard]);
    const token = await hub.token(await hub.newClient(['consumer']));
    const bad = await gql(token, `mutation($i: AccessRequestInput!) { requestAccess(input: $i) { status } }`, { i: { resourceCode: DEMO_RESOURCES.licence, fields: ['identifier'], itemCodes: [SETUP], purpose: 'x', licenceTypes: ['X'.repeat(21)] } });
    expect(errorOf(bad)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'licenceTypes' });
  });

  it('refuses fields selected through inline and named fragments and aliases, and records what was selected', async () => {
    const cases: [string, string, string[]][] = [
      ['inline fragment', LICENCES('identifier ... on Licence { face holderCode number }'), ['number', 'holderCode', 'face']],
      ['named fragment', `${LICENCES('identifier ...F')} fragment F on Licence { face }`, ['face']],
      ['alias', LICENCES('identifier f: face'), ['face']],
      ['signed form', LICENCES('identifier credential'), ['number', 'holderName', 'holderCode', 'issuerName', 'validUntil', 'face']],
    ];
    for (const [what, query, missing] of cases) {
      const r = await gql(narrow, query, { h: PERSON, p: purpose });
      expect(errorOf(r), what).toMatchObject({ code: 'GRANT_MISSING', missing: { fields: expect.arrayContaining(missing) } });
      expect(r.data?.licences ?? null, what).toBeNull();
    }
    // what @skip leaves out is not selected: no grant needed, and the entry records what was read
    const skipped = await gql(narrow, LICENCES('identifier status face @skip(if: $s)', ', $s: Boolean!'), { h: PERSON, p: { ...purpose, caseId: 'FZ-TRUST-SKIP' }, s: true });
    expect(skipped.errors).toBeUndefined();
    const [entry] = await rows<{ fields: string[] }>(tdb.database.db, sql`select fields from audit_entries where operation = 'LICENCE_READ' and case_id = 'FZ-TRUST-SKIP'`);
    expect(entry!.fields).toEqual(['identifier', 'status']);
    // a refusal records what was asked for
    const refused = await rows<{ fields: string[] }>(tdb.database.db, sql`select fields from audit_entries where operation = 'LICENCE_READ' and outcome = 'REFUSED' and case_id = 'FZ-TRUST-1'`);
    expect(refused.map((e) => e.fields)).toEqual(expect.arrayContaining([expect.arrayContaining(['face'])]));
  });

  it('answers a grant without unmasked 信息项 with masked fields and a presentation of what it covers, which verifies', async () => {
    const r = await gql(faces, LICENCES('identifier typeCode number holderCode face metadata sdJwt'), { h: PERSON, p: purpose });
    expect(r.errors).toBeUndefined();
    const card = (r.data!.licences as Record<string, unknown>[]).find((l) => l.typeCode === T.idCard)!;
    const masked = `${PERSON.slice(0, 6)}********${PERSON.slice(14)}`;
    expect(card).toMatchObject({ number: masked, holderCode: masked });
    expect((card.face as Record<string, unknown>).GMSFHM).toBe(masked);
    expect((card.face as Record<string, unknown>).XM).toBe(DEMO_HOLDERS.person.name);
    expect((card.face as Record<string, unknown>).ZZ).not.toBe('福建省厦门市思明区演武路1号');
    expect(JSON.stringify(card.metadata)).not.toContain(PERSON);
    // the presentation discloses exactly the granted claims that may leave whole: no ID number anywhere in it
    const { payload, disclosed } = decodeSdJwt(String(card.sdJwt));
    expect(disclosed.map(([n]) => n).sort()).toEqual(['CSRQ', 'CZZT', 'MZ', 'QFJG', 'XB', 'XM']);
    for (const id of ID_NUMBERS) expect(JSON.stringify({ payload, disclosed })).not.toContain(id);
    // an independent verifier accepts it, status list included
    const sd = new SDJwtVcInstance({
      hasher: digest,
      verifier: (data: string, sig: string) => {
        const h = JSON.parse(Buffer.from(data.split('.')[0]!, 'base64url').toString()) as { x5c: string[] };
        const leaf = new crypto.X509Certificate(Buffer.from(h.x5c[0]!, 'base64'));
        return crypto.verify('sha256', Buffer.from(data), { key: leaf.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
      },
      statusListFetcher: async (uri: string) => (await fetch(uri.replace(TEST_ISSUER, hub.url), { headers: { accept: 'application/statuslist+jwt' } })).text(),
    });
    const checked = await sd.verify(String(card.sdJwt));
    expect(checked.payload).toMatchObject({ ZZBS: card.identifier, XM: DEMO_HOLDERS.person.name });
    expect(checked.payload).not.toHaveProperty('GMSFHM');
    expect(checked.payload).not.toHaveProperty('CZZTDM');
    // and the hub's own verification agrees, speaking of what was disclosed alone
    const v = await gql(faces, `query($c: String!) { verifyLicence(credential: $c) { valid status licence { holderCode number face } } }`, { c: card.sdJwt });
    expect(v.data!.verifyLicence).toMatchObject({ valid: true, status: 'VALID', licence: { holderCode: null, face: { XM: DEMO_HOLDERS.person.name } } });
    expect(JSON.stringify(v.data)).not.toContain(PERSON);
    // the all-claims credential needs every 信息项 unmasked
    expect(errorOf(await gql(faces, LICENCES('identifier credential'), { h: PERSON, p: purpose }))).toMatchObject({ code: 'GRANT_MISSING', missing: { fields: ['holderCode', 'face'] } });
  });

  it('gives the all-claims credential to a grant with every 信息项 unmasked, for the types the provider left it', async () => {
    const client = await hub.newClient(['consumer']);
    const token = await hub.token(client);
    const all = ['identifier', 'typeCode', 'number', 'holderName', 'holderCode', 'issuerName', 'validUntil', 'status', 'face'];
    const asked = await gql(token, `mutation($i: AccessRequestInput!) { requestAccess(input: $i) { id status licenceTypes } }`, {
      i: { resourceCode: DEMO_RESOURCES.licence, fields: all, fullFields: ['holderCode', 'face'], itemCodes: [SETUP], purpose: '企业设立登记核验（完整证照）' },
    });
    const request = asked.data!.requestAccess as { id: string; status: string; licenceTypes: string[] };
    expect(request.status).toBe('PENDING'); // unmasked 信息项: the provider decides
    const admin = await hub.token(readClientFile(path.join(dir, 'demo-admin.json')));
    const DECIDE = `mutation($id: ID!, $t: [String!]) { decideAccessRequest(id: $id, approve: true, licenceTypes: $t) { status licenceTypes } }`;
    expect(errorOf(await gql(admin, DECIDE, { id: request.id, t: [T.marriageCertificate] }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'licenceTypes' });
    expect((await gql(admin, DECIDE, { id: request.id, t: [T.idCard] })).data!.decideAccessRequest).toEqual({ status: 'APPROVED', licenceTypes: [T.idCard] });
    const r = await gql(token, LICENCES('identifier typeCode holderCode credential'), { h: PERSON, p: purpose });
    expect(r.errors).toBeUndefined();
    const found = r.data!.licences as { typeCode: string; holderCode: string; credential: string }[];
    expect(found.map((l) => l.typeCode)).toEqual([T.idCard]);
    expect(found[0]!.holderCode).toBe(PERSON);
    const v = await gql(token, `query($c: String!) { verifyLicence(credential: $c) { valid licence { holderCode face } } }`, { c: found[0]!.credential });
    expect(v.data!.verifyLicence).toMatchObject({ valid: true, licence: { holderCode: PERSON, face: { GMSFHM: PERSON } } });
  });

  it('leaves a type beyond the items\' materials to the provider, and reads each type with its own grants alone', async () => {
    // the 结婚证 is no material of 企业设立登记: asked for, it waits for the provider instead of opening at once
    const { request } = await consumerWith(['identifier', 'typeCode', 'face'], [T.marriageCertificate]);
    expect(request.status).toBe('PENDING');
    // one client, two grants: the face for the ID card only, identity alone for the property certificate
    const client = await hub.newClient(['consumer']);
    const token = await hub.token(client);
    for (const [fields, types] of [
      [['identifier', 'typeCode', 'face'], [T.idCard]],
      [['identifier', 'typeCode'], [T.propertyCertificate]],
    ] as const) {
      const r = await gql(token, `mutation($i: AccessRequestInput!) { requestAccess(input: $i) { status } }`, { i: { resourceCode: DEMO_RESOURCES.licence, fields, itemCodes: [SETUP], purpose: '核验', licenceTypes: types } });
      expect(r.data!.requestAccess).toEqual({ status: 'APPROVED' });
    }
    const both = await gql(token, LICENCES('typeCode face'), { h: PERSON, p: purpose });
    expect(both.errors).toBeUndefined();
    expect((both.data!.licences as { typeCode: string }[]).map((l) => l.typeCode)).toEqual([T.idCard]);
    const identities = await gql(token, LICENCES('typeCode'), { h: PERSON, p: purpose });
    expect((identities.data!.licences as { typeCode: string }[]).map((l) => l.typeCode).sort()).toEqual([T.idCard, T.propertyCertificate].sort());
  });

  it("shows a licence's identity claims only as far as its grant goes", async () => {
    // the SD-JWT's issuer JWT states the number, the issuer and the validity in clear: a presentation needs them granted
    expect(errorOf(await gql(narrow, LICENCES('identifier sdJwt'), { h: PERSON, p: purpose }))).toMatchObject({ code: 'GRANT_MISSING', missing: { fields: expect.arrayContaining(['number', 'issuerName', 'validUntil']) } });
    const r = await gql(narrow, LICENCES('typeCode metadata'), { h: PERSON, p: purpose });
    for (const m of (r.data!.licences as { metadata: Record<string, unknown> }[]).map((l) => l.metadata)) {
      for (const claim of ['ZZBH', 'ZZBFJG', 'ZZBFJGDM', 'ZZYXQQSRQ', 'ZZYXQJZRQ', 'CZZT', 'CZZTDM']) expect(m, claim).not.toHaveProperty(claim);
      expect(m).toHaveProperty('ZZMC');
    }
  });

  it("shows a holder's objection to a grant without the face unmasked with its ID numbers masked", async () => {
    const admin = await hub.token(readClientFile(path.join(dir, 'demo-admin.json')));
    const holder = ((await gql(admin, `mutation($c: String!) { issueHolderToken(code: $c) { token } }`, { c: PERSON })).data!.issueHolderToken as { token: string }).token;
    const [property] = ((await gql(faces, LICENCES('identifier typeCode'), { h: PERSON, p: purpose })).data!.licences as { identifier: string; typeCode: string }[]).filter((l) => l.typeCode === T.propertyCertificate);
    const objected = await gql(holder, `mutation($id: String!) { objectToLicence(identifier: $id, field: "ZL", reason: "共有人 360426199101010071 未登记") { status } }`, { id: property!.identifier });
    expect(objected.errors).toBeUndefined();
    const r = await gql(faces, LICENCES('identifier typeCode face objections { reason }'), { h: PERSON, p: purpose });
    const seen = (r.data!.licences as { typeCode: string; objections: { reason: string }[] }[]).find((l) => l.typeCode === T.propertyCertificate)!;
    expect(seen.objections).toEqual([{ reason: '共有人 360426********0071 未登记' }]);
  });

  it('keeps the ID number out of the ID card SD-JWT when it discloses nothing', async () => {
    const [row] = await rows<{ sd_jwt: string }>(tdb.database.db, sql`select sd_jwt from licences where type_code = ${T.idCard} and holder_code = ${PERSON}`);
    // the stored form lacks its protected header: its payload is the first segment
    const payload = JSON.parse(Buffer.from(row!.sd_jwt.split('~')[0]!.split('.')[0]!, 'base64url').toString()) as Record<string, unknown>;
    expect(JSON.stringify(payload)).not.toContain(PERSON);
    expect(payload).not.toHaveProperty('ZZBH');
    expect(payload).toHaveProperty('ZZBS'); // the identifier stays in clear: it is made of type, issuer and a random serial
  });

  it('speaks of nothing for a credential that does not verify, and of the issued content only', async () => {
    const [card] = (await gql(full, LICENCES('identifier typeCode'), { h: PERSON, p: { itemCode: '350100-DJ-0006', caseId: 'FZ-TRUST-2' } })).data!.licences as { identifier: string; typeCode: string }[];
    const [stored] = await rows<{ credential: string; signer_kid: string }>(tdb.database.db, sql`select credential, signer_kid from licences where identifier = ${card!.identifier}`);
    const pki = hub.services.licence.pki;
    const chain = await pki.chainOf(stored!.signer_kid);
    const issued = `${protectedHeader(chain, 'vc+jwt')}.${stored!.credential}`;
    const q = `query($c: String!) { verifyLicence(credential: $c) { valid status reasons licence { identifier holderCode face credential } } }`;
    // an unsigned credential naming a real identifier: nothing of the licence, not even its status
    const decoded = decodeCompactJws(issued)!;
    const unsigned = `${issued.split('.').slice(0, 2).join('.')}.${Buffer.alloc(64).toString('base64url')}`;
    const none = await gql(full, q, { c: unsigned });
    expect(none.data!.verifyLicence).toMatchObject({ valid: false, status: null, licence: null });
    expect(JSON.stringify(none.data)).not.toContain(PERSON);
    // the issuer's real key re-signing an altered payload for the same identifier: refused, nothing told
    const [signer] = await tdb.database.db.select().from(licenceSigners).where(eq(licenceSigners.kid, stored!.signer_kid));
    const key = pki.signingKey(signer!);
    const payload = decoded.payload as { credentialSubject: { face: Record<string, unknown> } };
    payload.credentialSubject.face = { ...payload.credentialSubject.face, ZZ: '伪造的住址' };
    const resigned = signCompactJws(decoded.header, payload, key.privateKey);
    const forged = await gql(full, q, { c: resigned });
    expect(forged.data!.verifyLicence).toMatchObject({ valid: false, reasons: ['SIGNATURE'], status: null, licence: null });
    // the issued one verifies, and its view is what it carries
    const genuine = await gql(full, q, { c: issued });
    expect(genuine.data!.verifyLicence).toMatchObject({ valid: true, licence: { identifier: card!.identifier, holderCode: PERSON, credential: issued } });
    // each authenticated verification is an audit entry
    const entries = await rows<{ outcome: string }>(tdb.database.db, sql`select outcome from audit_entries where operation = 'LICENCE_VERIFY' order by seq desc limit 3`);
    expect(entries.map((e) => e.outcome)).toEqual(['RETURNED', 'NOT_FOUND', 'NOT_FOUND']);
  });

  it('masks the ID number in the public verification and on the 亮证 page', async () => {
    const [row] = await tdb.database.db.select().from(licences).where(and(eq(licences.typeCode, T.idCard), eq(licences.holderCode, PERSON)));
    const { credential } = await signedFormsOf(hub.services.licence.pki, row!);
    const res = await fetch(`${hub.url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ credential }) });
    const body = (await res.json()) as { valid: boolean; licence: { number: string } };
    expect(body.valid).toBe(true);
    expect(body.licence.number).toBe(`${PERSON.slice(0, 6)}********${PERSON.slice(14)}`);
    const page = presentationPage({ row: row!, typeName: '居民身份证' }, new Set(['GMSFHM', 'ZZ']), new Map());
    expect(page).not.toContain(PERSON);
  });
});
