import 'reflect-metadata';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import * as x509 from '@peculiar/x509';
import { digest } from '@sd-jwt/crypto-nodejs';
import { SDJwtVcInstance } from '@sd-jwt/sd-jwt-vc';
import { sql } from 'drizzle-orm';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readClientFile } from '../auth/client-file.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { DEMO_HOLDERS } from '../db/seeds/demo-licences.ts';
import { DEMO_LICENCE_TYPES } from '../db/seeds/demo-directory.ts';
import { asciiJson, signCompactJws, decodeCompactJws, signingBytes } from '../licence/jws.ts';
import { isRealDate } from '../licence/types.ts';
import { identifierProblem, makeLicenceIdentifier, mod3736CheckChar } from '../licence/identifier.ts';
import { expireLicences, notifyExpiringLicences, signedFormsOf } from '../licence/issue.ts';
import { permutedIndex, STATUS_LIST_SIZE } from '../licence/status-list.ts';
import { JOBS, type JobDeps } from '../workers/jobs.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const [POLICE, MARKET, , , , , NHC] = DEMO_DEPARTMENTS.map((d) => d.code) as string[];
const ALICE = '11010519491231002X';
const BOB = '360426199101010071';
const ITEM = '350100-DJ-0001';

describe('licence identifiers (GB/T 36904, MOD 37,36)', () => {
  it('accepts the DOMAIN.md vectors and rejects a wrong check character', () => {
    expect(identifierProblem('1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U')).toBeNull();
    expect(identifierProblem('1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0')).toBeNull();
    expect(identifierProblem('1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.1')).toBe('CHECK_DIGIT');
    expect(identifierProblem('1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.02.0')).toBe('FORMAT');
    expect(mod3736CheckChar('11100000000013338W01111430000006122244L20230000403001')).toBe('U');
    // the standard's formula written out plainly, against random bodies
    const A = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
    const plain = (body: string) => {
      let p = 36;
      for (const ch of body) p = (2 * ((p + A.indexOf(ch)) % 36 || 36)) % 37;
      return A[(37 - p) % 36];
    };
    for (let k = 0; k < 2000; k++) {
      const body = Array.from({ length: 1 + (k % 70) }, () => A[crypto.randomInt(36)]).join('');
      expect(mod3736CheckChar(body)).toBe(plain(body));
    }
    // a character outside 0-9 and A-Z, ASCII or not, has no check character
    for (const body of ['1110a', '111.0', '111 0', '111\uFF21', '111\u0130', '\u0000']) expect(mod3736CheckChar(body)).toBeNull();
    expect(makeLicenceIdentifier({ typeCode: '11100000000013338W009', issuerCode: '11330105002500287C', serial: '2025052201', version: 2 })).toBe('1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0');
  });

  it('writes JSON with every character past ASCII escaped, the same value as JSON.stringify gives', () => {
    const values = [{ XM: '张三', ZZ: '福建省福州市鼓楼区东街1号', n: 1, e: 'é', emoji: '证😀照', q: '"\\\u0001' }, ['\u0080\u00ff\uffff', 'plain'], '长期'];
    for (const v of values) {
      const text = asciiJson(v);
      expect(/^[\x20-\x7e]*$/.test(text)).toBe(true);
      expect(JSON.parse(text)).toEqual(v);
      // the same escapes as one character at a time
      expect(text).toBe(JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    }
  });

  it('takes as dates exactly the days of the calendar', () => {
    const byDate = (v: string) => !Number.isNaN(new Date(`${v}T00:00:00Z`).getTime()) && new Date(`${v}T00:00:00Z`).toISOString().slice(0, 10) === v;
    for (const y of [1900, 1999, 2000, 2024, 2026, 2100]) {
      for (let m = 0; m <= 13; m++) {
        for (let d = 0; d <= 32; d++) {
          const v = `${y}-${String(m).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
          expect([v, isRealDate(v)]).toEqual([v, byDate(v)]);
        }
      }
    }
    for (const bad of ['2026-1-01', '2026/01/01', '20260101', '2026-01-01T00:00', ' 2026-01-01', '2026-0a-01', '0000-01-01', '']) expect([bad, isRealDate(bad)]).toEqual([bad, false]);
  });

  it('writes a signing input after its known header bytes as Buffer.from would, whatever came before', () => {
    const headers = [Buffer.from('eyJhbGciOiJFUzI1NiJ9.'), Buffer.from('eyJ0eXAiOiJ2Yytqd3QifQ.')];
    const rests = ['eyJhIjoxfQ.c2ln', 'x'.repeat(40_000), '证照\u0141A', ''];
    for (const rest of rests) {
      for (const prefix of [...headers, ...headers.reverse()]) {
        expect(Buffer.compare(signingBytes(prefix, rest), Buffer.from(`${prefix.toString()}${rest}`))).toBe(0);
      }
    }
  });

  it('draws status indices from a permutation: every index of a list once', () => {
    const seen = new Uint8Array(STATUS_LIST_SIZE);
    for (let n = 0; n < STATUS_LIST_SIZE; n++) seen[permutedIndex('00112233445566778899aabbccddeeff', n)]! += 1;
    expect(seen.every((v) => v === 1)).toBe(true);
    expect([0, 1, 2].map((n) => permutedIndex('00112233445566778899aabbccddeeff', n))).not.toEqual([0, 1, 2]);
  });
});

const LICENCE = `identifier version typeCode name number holderName holderCode holderCodeType issuerName issuerCode issuedAt validFrom validUntil status statusReason credential sdJwt face metadata previousIdentifier supersededBy signerKid`;
const VERIFY = `query($c: String!) { verifyLicence(credential: $c) { valid status reasons format licence { identifier status } } }`;

interface Lic {
  identifier: string;
  version: number;
  status: string;
  credential: string;
  sdJwt: string;
  signerKid: string;
  issuedAt: string;
  face: Record<string, unknown>;
  previousIdentifier: string | null;
}

describe.each(drivers())('e-licences (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let police: string;
  let market: string;
  let nhc: string;
  let consumer: string;
  let admin: string;
  let rootFingerprints: Set<string>;
  const TYPE = `${POLICE}901`;

  const gql = async (query: string, token: string, variables?: Record<string, unknown>) => {
    const r = await hub.graphql(query, token, variables);
    return r.body;
  };
  const ok = async <T>(query: string, token: string, variables?: Record<string, unknown>): Promise<T> => {
    const b = await gql(query, token, variables);
    if (b.errors) throw new Error(JSON.stringify(b.errors));
    return Object.values(b.data!)[0] as T;
  };
  const codeOf = (b: { errors?: { extensions?: Record<string, unknown> }[] }) => b.errors?.[0]?.extensions;
  const verify = (c: string) => ok<{ valid: boolean; status: string | null; reasons: string[]; format: string; licence: { identifier: string; status: string } | null }>(VERIFY, consumer, { c });
  const issue = (input: Record<string, unknown>, token = police) => ok<Lic>(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { ${LICENCE} } }`, token, { i: input });
  let serial = 0;
  const idCard = (over: Record<string, unknown> = {}) => ({
    typeCode: TYPE,
    number: `T-${++serial}-${crypto.randomBytes(3).toString('hex')}`,
    holderName: '王丽',
    holderCode: ALICE,
    face: { XM: '王丽', CSRQ: '1949-12-31', ZZ: '北京市朝阳区建国路88号' },
    ...over,
  });
  const local = (uri: string) => uri.replace(TEST_ISSUER, hub.url);
  const audit = (operation: string, identifier: string) =>
    rows<Record<string, unknown>>(tdb.database.db, sql`select * from audit_entries where operation = ${operation} and details->>'identifier' = ${identifier} order by seq`);

  /** x5c validated the way an outside verifier would: crypto.X509Certificate, leaf signed by a pinned hub root. */
  const chainKey = (x5c: string[]): crypto.KeyObject => {
    const [leaf, root] = x5c.map((c) => new crypto.X509Certificate(Buffer.from(c, 'base64')));
    expect(rootFingerprints.has(crypto.createHash('sha256').update(root!.raw).digest('hex'))).toBe(true);
    expect(root!.ca).toBe(true);
    expect(leaf!.ca).toBe(false);
    expect(leaf!.checkIssued(root!)).toBe(true);
    expect(leaf!.verify(root!.publicKey)).toBe(true);
    return leaf!.publicKey;
  };

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    const deps: { current?: JobDeps } = {};
    hub = await startTestHub(tdb.database, { jobs: { enqueue: async (name, data) => void (await JOBS[name].handler(deps.current!, data)) } });
    deps.current = { database: tdb.database, db: tdb.database.db, logger: log, masterKey: hub.services.masterKey, keys: hub.services.keys, issuer: TEST_ISSUER };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-licence-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: `${TEST_ISSUER}/oauth/token`, logger: log, licence: { masterKey: hub.services.masterKey, issuer: TEST_ISSUER } });
    await hub.services.licence.pki.reload();
    consumer = await hub.token(readClientFile(path.join(dir, 'demo-client.json')));
    admin = await hub.token(readClientFile(path.join(dir, 'demo-admin.json')));
    police = await hub.token(await hub.newClient(['issuer', 'provider'], { department: POLICE }));
    market = await hub.token(await hub.newClient(['issuer'], { department: MARKET }));
    nhc = await hub.token(await hub.newClient(['issuer'], { department: NHC }));
    rootFingerprints = new Set(hub.services.licence.pki.rootCertificates().map((c) => crypto.createHash('sha256').update(Buffer.from(c, 'base64')).digest('hex')));
    const f = (code: string, name: string, dataType = 'C', length: number | null = null) => ({ code, name, dataType, length });
    await ok(`mutation($i: LicenceTypeInput!) { registerLicenceType(input: $i) { code } }`, police, {
      i: { code: TYPE, name: '测试证', definingDepartment: POLICE, holderKind: 'PERSON', issuers: [POLICE], validityYears: 10, faceFields: [f('XM', '姓名', 'C', 10), f('CSRQ', '出生日期', 'D'), f('ZZ', '住址', 'C', 200)] },
    });
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('registers licence types only for the defining department, with checked codes', async () => {
    const base = { name: 'x', holderKind: 'PERSON', issuers: [POLICE], faceFields: [{ code: 'A', name: 'a', dataType: 'C' }] };
    const m = `mutation($i: LicenceTypeInput!) { registerLicenceType(input: $i) { code } }`;
    expect(codeOf(await gql(m, market, { i: { ...base, code: `${POLICE}902`, definingDepartment: POLICE } }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(codeOf(await gql(m, police, { i: { ...base, code: `${POLICE}902`, definingDepartment: '911100001000000000' } }))).toMatchObject({ code: 'INVALID_USCC' });
    expect(codeOf(await gql(m, police, { i: { ...base, code: `${MARKET}902`, definingDepartment: POLICE } }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'code' });
    expect(codeOf(await gql(m, police, { i: { ...base, code: TYPE, definingDepartment: POLICE } }))).toMatchObject({ code: 'CONFLICT' });
    const types = await ok<{ code: string; name: string }[]>(`{ licenceTypes { code name } }`, consumer);
    expect(types.map((t) => t.name)).toEqual(expect.arrayContaining(['居民身份证', '营业执照', '出生医学证明', '结婚证', '不动产权证书', '测试证']));
  });

  it('issues: validates holder code, role, type issuers and face, assigns the identifier, records GB/T 36903 metadata and an audit entry', async () => {
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, police, { i: idCard({ holderCode: '110101199003077777' }) }))).toMatchObject({ code: 'INVALID_ID_NUMBER', field: 'holderCode' });
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, consumer, { i: idCard() }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, market, { i: idCard() }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, police, { i: idCard({ face: { XM: '王丽', CSRQ: '1949-02-30', ZZ: 'x' } }) }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'face.CSRQ' });
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, police, { i: idCard({ face: { CSRQ: '1949-12-31', ZZ: 'x' } }) }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'face.XM' });
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, police, { i: idCard({ face: { XM: '王丽', CSRQ: '1949-12-31', ZZ: 'x', EXTRA: 1 } }) }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'face.EXTRA' });
    const before = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int as n from licences`);
    const input = idCard({ validFrom: '2024-01-01' });
    const l = await issue(input);
    expect(identifierProblem(l.identifier)).toBeNull();
    expect(l.identifier.startsWith(`1.2.156.3005.2.${TYPE}.${POLICE}.`)).toBe(true);
    expect(l).toMatchObject({ version: 1, status: 'VALID', validUntil: '2033-12-31', holderCodeType: 'ID_NUMBER', issuerCode: POLICE, issuerName: '福州市公安局' });
    expect((l as unknown as { metadata: Record<string, unknown> }).metadata).toMatchObject({ ZZMC: '测试证', ZZLXDM: TYPE, ZZBH: input.number, ZZBS: l.identifier, ZZBFJGDM: POLICE, CZZTDM: ALICE, CZZTDMLX: '111', ZZYXQQSRQ: '2024-01-01', ZZYXQJZRQ: '2033-12-31' });
    // idempotent on type + issuer + 证照编号
    const again = await issue(input);
    expect(again.identifier).toBe(l.identifier);
    expect(codeOf(await gql(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, police, { i: { ...input, holderCode: BOB } }))).toMatchObject({ code: 'CONFLICT' });
    const after = await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int as n from licences`);
    expect(after[0]!.n - before[0]!.n).toBe(1);
    const entries = await audit('LICENCE_ISSUE', l.identifier);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ subject: ALICE, resource_code: TYPE, outcome: 'DONE', department: POLICE });
    expect(await verify(l.credential)).toMatchObject({ valid: true, status: 'VALID', reasons: [], format: 'vc+jwt' });
    expect(await verify(l.sdJwt)).toMatchObject({ valid: true, status: 'VALID', reasons: [], format: 'dc+sd-jwt' });
    // both signed payloads are ASCII (Chinese text as \u escapes) and read back as the same text
    for (const form of [l.credential, l.sdJwt.split('~')[0]!]) expect(Buffer.from(form.split('.')[1]!, 'base64url').every((b) => b < 0x80)).toBe(true);
    const vc = JSON.parse(Buffer.from(l.credential.split('.')[1]!, 'base64url').toString()) as { credentialSubject: Record<string, unknown> };
    expect(vc.credentialSubject).toMatchObject({ ZZBFJG: '福州市公安局', ZZMC: '测试证', CZZT: input.holderName });
  });

  it('verifies with independent libraries: jose against the published JWKS and x5c, @sd-jwt/sd-jwt-vc with its status check, and the W3C list decoded per its spec', async () => {
    const l = await issue(idCard());
    const jwks = (await (await fetch(`${hub.url}/.well-known/jwks.json`)).json()) as { keys: (jose.JWK & { x5c?: string[]; purpose?: string })[] };
    const header = jose.decodeProtectedHeader(l.credential);
    const jwk = jwks.keys.find((k) => k.kid === header.kid)!;
    expect(jwk.purpose).toBe('licence');
    expect(jwk.x5c).toEqual(header.x5c);
    const leafKey = chainKey(jwk.x5c!);
    expect(leafKey.export({ format: 'jwk' })).toMatchObject({ x: jwk.x, y: jwk.y });
    const { payload } = await jose.compactVerify(l.credential, await jose.importJWK(jwk, 'ES256'));
    const vc = JSON.parse(new TextDecoder().decode(payload)) as { credentialSubject: { ZZBS: string }; credentialStatus: { statusPurpose: string; statusListIndex: string; statusListCredential: string }[]; type: string[] };
    expect(header.typ).toBe('vc+jwt');
    expect(vc.type).toContain('VerifiableCredential');
    expect(vc.credentialSubject.ZZBS).toBe(l.identifier);

    const w3cBit = async (purpose: string) => {
      const entry = vc.credentialStatus.find((s) => s.statusPurpose === purpose)!;
      const res = await fetch(local(entry.statusListCredential));
      expect(res.headers.get('content-type')).toContain('application/vc+jwt');
      expect(res.headers.get('etag')).toBeTruthy();
      const listJwt = await res.text();
      const h = jose.decodeProtectedHeader(listJwt);
      const { payload: lp } = await jose.compactVerify(listJwt, chainKey(h.x5c!));
      const list = JSON.parse(new TextDecoder().decode(lp)) as { type: string[]; credentialSubject: { statusPurpose: string; encodedList: string } };
      expect(list.type).toContain('BitstringStatusListCredential');
      expect(list.credentialSubject.statusPurpose).toBe(purpose);
      expect(list.credentialSubject.encodedList[0]).toBe('u');
      const bits = zlib.gunzipSync(Buffer.from(list.credentialSubject.encodedList.slice(1), 'base64url'));
      expect(bits.length * 8).toBeGreaterThanOrEqual(131_072);
      const i = Number(entry.statusListIndex);
      return (bits[Math.floor(i / 8)]! >> (7 - (i % 8))) & 1; // most significant bit first
    };
    expect(await w3cBit('revocation')).toBe(0);
    expect(await w3cBit('suspension')).toBe(0);

    const fetched: string[] = [];
    const sdVerifier = new SDJwtVcInstance({
      hasher: digest,
      verifier: (data: string, sig: string) => {
        const h = JSON.parse(Buffer.from(data.split('.')[0]!, 'base64url').toString()) as { x5c: string[] };
        return crypto.verify('sha256', Buffer.from(data), { key: chainKey(h.x5c), dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));
      },
      statusListFetcher: async (uri: string) => {
        fetched.push(uri);
        const res = await fetch(local(uri), { headers: { accept: 'application/statuslist+jwt' } });
        expect(res.headers.get('content-type')).toContain('application/statuslist+jwt');
        return res.text();
      },
    });
    const result = await sdVerifier.verify(l.sdJwt);
    expect(result.header?.typ).toBe('dc+sd-jwt');
    expect(result.payload.vct).toBe(`${TEST_ISSUER}/licence-types/${TYPE}`);
    expect(result.payload).toMatchObject({ ZZBS: l.identifier, CZZT: '王丽', CZZTDM: ALICE, XM: '王丽', CSRQ: '1949-12-31' });
    expect(fetched).toHaveLength(1);

    await ok(`mutation($id: String!) { suspendLicence(identifier: $id, reason: "核查中") { status } }`, police, { id: l.identifier });
    await expect(sdVerifier.verify(l.sdJwt)).rejects.toThrow();
    expect(await w3cBit('suspension')).toBe(1);
    expect(await w3cBit('revocation')).toBe(0);
    await ok(`mutation($id: String!) { revokeLicence(identifier: $id, reason: "以欺骗手段取得", kind: REVOKED) { status } }`, police, { id: l.identifier });
    expect(await w3cBit('revocation')).toBe(1);
    expect(await w3cBit('suspension')).toBe(0);
    await expect(sdVerifier.verify(l.sdJwt)).rejects.toThrow();
  });

  it('answers verifications that share one read of the records each from its own record', async () => {
    const [a, b, c] = [await issue(idCard()), await issue(idCard()), await issue(idCard())];
    await ok(`mutation($id: String!) { suspendLicence(identifier: $id, reason: "核查中") { status } }`, police, { id: b.identifier });
    // aliases of one request are resolved in the same turn: one query for all of them
    const q = `query($a: String!, $b: String!, $c: String!, $d: String!) { a: verifyLicence(credential: $a) { valid status licence { identifier } } b: verifyLicence(credential: $b) { valid status licence { identifier } } c: verifyLicence(credential: $c) { valid status licence { identifier } } d: verifyLicence(credential: $d) { valid status licence { identifier } } }`;
    const r = await gql(q, consumer, { a: a.credential, b: b.sdJwt, c: c.credential, d: b.credential });
    expect(r.errors).toBeUndefined();
    expect(r.data).toEqual({
      a: { valid: true, status: 'VALID', licence: { identifier: a.identifier } },
      b: { valid: false, status: 'SUSPENDED', licence: { identifier: b.identifier } },
      c: { valid: true, status: 'VALID', licence: { identifier: c.identifier } },
      d: { valid: false, status: 'SUSPENDED', licence: { identifier: b.identifier } },
    });
  });

  it('changes what verification says at every lifecycle step, each act audited with who and why', async () => {
    const l = await issue(idCard());
    const m = (op: string, extra = '') => `mutation($id: String!) { ${op}(identifier: $id, reason: "依申请" ${extra}) { ${LICENCE} } }`;
    expect(codeOf(await gql(m('reinstateLicence'), police, { id: l.identifier }))).toMatchObject({ code: 'CONFLICT' });
    expect(codeOf(await gql(m('suspendLicence'), market, { id: l.identifier }))).toMatchObject({ code: 'FORBIDDEN' });
    await ok(m('suspendLicence'), police, { id: l.identifier });
    expect(await verify(l.credential)).toMatchObject({ valid: false, status: 'SUSPENDED', reasons: ['SUSPENDED'] });
    expect(await verify(l.sdJwt)).toMatchObject({ valid: false, reasons: ['SUSPENDED'] });
    await ok(m('reinstateLicence'), police, { id: l.identifier });
    expect(await verify(l.credential)).toMatchObject({ valid: true, status: 'VALID', reasons: [] });

    const v2 = await ok<Lic>(`mutation($id: String!) { changeLicence(identifier: $id, face: { ZZ: "福州市鼓楼区东街1号" }, reason: "住址变更") { ${LICENCE} } }`, police, { id: l.identifier });
    expect(v2).toMatchObject({ version: 2, previousIdentifier: l.identifier, status: 'VALID', face: { XM: '王丽', ZZ: '福州市鼓楼区东街1号' } });
    expect(v2.identifier.split('.').slice(-2, -1)[0]).toBe('002');
    expect(identifierProblem(v2.identifier)).toBeNull();
    expect(await verify(l.credential)).toMatchObject({ valid: false, status: 'SUPERSEDED', reasons: ['SUPERSEDED'] });
    expect(await verify(v2.credential)).toMatchObject({ valid: true, status: 'VALID' });

    const v3 = await ok<Lic & { validUntil: string }>(`mutation($id: String!) { renewLicence(identifier: $id, validUntil: "2099-12-31", reason: "延续") { ${LICENCE} } }`, police, { id: v2.identifier });
    expect(v3).toMatchObject({ version: 3, validUntil: '2099-12-31' });
    expect(await verify(v2.sdJwt)).toMatchObject({ valid: false, reasons: ['SUPERSEDED'] });

    await ok(m('revokeLicence', ', kind: CANCELLED'), police, { id: v3.identifier });
    expect(await verify(v3.credential)).toMatchObject({ valid: false, status: 'CANCELLED', reasons: ['REVOKED'] });
    expect(codeOf(await gql(m('suspendLicence'), police, { id: v3.identifier }))).toMatchObject({ code: 'CONFLICT' });

    for (const [op, id] of [['LICENCE_SUSPEND', l.identifier], ['LICENCE_REINSTATE', l.identifier], ['LICENCE_CHANGE', l.identifier], ['LICENCE_RENEW', v2.identifier], ['LICENCE_CANCELLED', v3.identifier]] as const) {
      const e = await audit(op, id);
      expect(e, op).toHaveLength(1);
      expect(e[0]).toMatchObject({ department: POLICE, outcome: 'DONE' });
      expect(e[0]!.reason).toBeTruthy();
      expect(e[0]!.client_id).toBeTruthy();
    }
  });

  it('names every failure: forged signature, foreign CA, tampered disclosure, wrong check digit, expiry, malformed input', async () => {
    const l = await issue(idCard());
    const [h, p, s] = l.credential.split('.') as [string, string, string];
    const flipped = `${s.slice(0, 10)}${s[10] === 'A' ? 'B' : 'A'}${s.slice(11)}`;
    expect(await verify(`${h}.${p}.${flipped}`)).toMatchObject({ valid: false, reasons: ['SIGNATURE'] });
    // a character past ASCII in place of an A (U+0141 has A's low byte): the signing input is not the one signed
    const a = p.indexOf('A');
    expect(a).toBeGreaterThanOrEqual(0);
    expect((await verify(`${h}.${p.slice(0, a)}\u0141${p.slice(a + 1)}.${s}`)).valid).toBe(false);
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown> & { credentialSubject: Record<string, unknown> };
    payload.credentialSubject.CZZT = '李强';
    expect((await verify(`${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`)).reasons).toContain('SIGNATURE');
    // a header of the same length, beginning and end as the one just verified (and so cached), with another leaf
    // certificate: judged by its own chain, not by the cached header's
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { x5c: string[] };
    const leafB64 = header.x5c[0]!;
    const mid = leafB64.length >> 1;
    header.x5c[0] = `${leafB64.slice(0, mid)}${leafB64[mid] === 'A' ? 'B' : 'A'}${leafB64.slice(mid + 1)}`;
    const altered = Buffer.from(JSON.stringify(header)).toString('base64url');
    expect([altered.length, altered.slice(0, 192), altered.slice(-48)]).toEqual([h.length, h.slice(0, 192), h.slice(-48)]);
    expect(await verify(`${altered}.${p}.${s}`)).toMatchObject({ valid: false, reasons: ['CHAIN'] });

    // a foreign CA: a chain that looks like the hub's but leads to another root
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const rootKeys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const root = await x509.X509CertificateGenerator.createSelfSigned({ name: 'CN=电子证照根证书 (hub licence root CA)', keys: rootKeys, signingAlgorithm: alg, extensions: [new x509.BasicConstraintsExtension(true, 0, true)] });
    const leafKeys = (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await x509.X509CertificateGenerator.create({ subject: 'CN=福州市公安局', issuer: root.subject, publicKey: leafKeys.publicKey, signingKey: rootKeys.privateKey, signingAlgorithm: alg });
    const foreignKey = crypto.createPrivateKey({ key: Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey)), format: 'der', type: 'pkcs8' });
    const decoded = decodeCompactJws(l.credential)!;
    const foreign = signCompactJws({ ...decoded.header, x5c: [Buffer.from(leaf.rawData).toString('base64'), Buffer.from(root.rawData).toString('base64')] }, decoded.payload, foreignKey);
    expect(await verify(foreign)).toMatchObject({ valid: false, reasons: ['CHAIN'] });
    const bare = signCompactJws({ ...decoded.header, x5c: [Buffer.from(leaf.rawData).toString('base64')] }, decoded.payload, foreignKey);
    expect((await verify(bare)).reasons).toEqual(['CHAIN']);

    // a tampered disclosure: same claim name, another value
    const [jwt, ...disclosures] = l.sdJwt.split('~');
    const forgedDisclosure = Buffer.from(JSON.stringify([crypto.randomBytes(16).toString('base64url'), 'XM', '李强'])).toString('base64url');
    const xmIndex = disclosures.findIndex((d) => d && JSON.parse(Buffer.from(d, 'base64url').toString())[1] === 'XM');
    const tampered = [jwt, ...disclosures.map((d, i) => (i === xmIndex ? forgedDisclosure : d))].join('~');
    expect(await verify(tampered)).toMatchObject({ valid: false, reasons: ['DISCLOSURE'] });
    // withholding disclosures is the holder's right: fewer of them still verify
    const fewer = `${jwt}~${disclosures.filter((_, i) => i !== xmIndex && disclosures[i] !== '').join('~')}~`;
    expect(await verify(fewer)).toMatchObject({ valid: true });

    // a wrong check character, signed with the department's real key (the hub holds no such licence either)
    const signerRow = (await rows<{ kid: string }>(tdb.database.db, sql`select kid from licence_signers where kid = ${l.signerKid}`))[0]!;
    const full = (await tdb.database.db.query.licenceSigners.findFirst({ where: (t, { eq }) => eq(t.kid, signerRow.kid) }))!;
    const key = hub.services.licence.pki.signingKey(full);
    const parts = l.identifier.split('.');
    const wrongCheck = [...parts.slice(0, -1), parts.at(-1) === '0' ? '1' : '0'].join('.');
    const badPayload = { ...decoded.payload, credentialSubject: { ...(decoded.payload.credentialSubject as object), ZZBS: wrongCheck } };
    expect((await verify(signCompactJws(decoded.header, badPayload, key.privateKey))).reasons).toContain('CHECK_DIGIT');

    // expired: a licence whose validity ended
    const old = await issue(idCard({ validFrom: '2010-01-01', validUntil: '2015-01-01' }));
    expect(await verify(old.credential)).toMatchObject({ valid: false, status: 'EXPIRED', reasons: ['EXPIRED'] });
    expect(await verify(old.sdJwt)).toMatchObject({ valid: false, status: 'EXPIRED', reasons: ['EXPIRED'] });
    const future = await issue(idCard({ validFrom: '2090-01-01', validUntil: '2095-01-01' }));
    expect(await verify(future.credential)).toMatchObject({ valid: false, reasons: ['NOT_YET_VALID'] });
    expect(await expireLicences(tdb.database.db)).toBeGreaterThanOrEqual(1);
    const [row] = await rows<{ status: string }>(tdb.database.db, sql`select status from licences where identifier = ${old.identifier}`);
    expect(row!.status).toBe('EXPIRED');
    expect(await audit('LICENCE_EXPIRE', old.identifier)).toHaveLength(1);

    // a licence on record as issued before its signing certificate existed
    const early = await issue(idCard());
    expect(await verify(early.credential)).toMatchObject({ valid: true });
    await tdb.database.db.execute(sql`update licences set issued_at = '2001-01-01T00:00:00Z' where identifier = ${early.identifier}`);
    expect(await verify(early.credential)).toMatchObject({ valid: false, reasons: ['CERT_NOT_VALID_AT_ISSUANCE'] });

    expect(await verify('not a credential')).toMatchObject({ valid: false, reasons: ['MALFORMED'], status: null });
    expect(await verify(`${h}.${p}`)).toMatchObject({ valid: false, reasons: ['MALFORMED'] });
  });

  it('rotates a department key without breaking its licences; a certificate revoked at T fails what it signed after T with CHAIN', async () => {
    const a = await issue(idCard());
    const rotated = await ok<{ kid: string }>(`mutation { rotateLicenceSigningKey(reason: "年度轮换") { kid } }`, police);
    expect(rotated.kid).not.toBe(a.signerKid);
    const b = await issue(idCard());
    expect(b.signerKid).toBe(rotated.kid);
    expect(await verify(a.credential)).toMatchObject({ valid: true });
    expect(await verify(b.credential)).toMatchObject({ valid: true });

    // a key compromised from T: what it signed before T stays valid, what it signed from T does not
    const c = await issue(idCard());
    await new Promise((r) => setTimeout(r, 20));
    const T = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 20));
    const d = await issue(idCard());
    expect(c.signerKid).toBe(d.signerKid);
    expect(codeOf(await gql(`mutation($k: String!) { revokeLicenceSigningCertificate(kid: $k, reason: "密钥泄露") { kid } }`, market, { k: d.signerKid }))).toMatchObject({ code: 'FORBIDDEN' });
    await ok(`mutation($k: String!, $at: String) { revokeLicenceSigningCertificate(kid: $k, reason: "密钥泄露", at: $at) { revokedAt } }`, police, { k: d.signerKid, at: T });
    expect(await verify(c.credential)).toMatchObject({ valid: true });
    expect(await verify(d.credential)).toMatchObject({ valid: false, reasons: ['CHAIN'] });
    expect(await verify(d.sdJwt)).toMatchObject({ valid: false, reasons: ['CHAIN'] });
    const jwks = (await (await fetch(`${hub.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
    expect(jwks.keys.map((k) => k.kid)).not.toContain(d.signerKid);
    expect(jwks.keys.map((k) => k.kid)).toContain(a.signerKid);
    // the next issuance gets a new key and certificate
    const e = await issue(idCard());
    expect(e.signerKid).not.toBe(d.signerKid);
    expect(await verify(e.credential)).toMatchObject({ valid: true });
    expect((await rows(tdb.database.db, sql`select 1 from audit_entries where operation = 'LICENCE_CERT_REVOKE' and details->>'kid' = ${d.signerKid}`)).length).toBe(1);
  });

  it('issues batches through the job system, idempotently, reporting bad items by index and field', async () => {
    const items = [idCard(), idCard(), idCard({ face: { XM: '王丽' } }), idCard({ holderCode: '110101199003077777' })];
    const m = `mutation($items: [IssueLicenceInput!]!) { issueLicences(items: $items) { id status total issued skipped errors { index code field } } }`;
    const first = await ok<{ id: string; status: string; total: number; issued: number; errors: { index: number; code: string; field: string }[] }>(m, police, { items });
    expect(first).toMatchObject({ status: 'DONE', total: 4, issued: 2, skipped: 0 });
    expect(first.errors).toEqual([
      { index: 2, code: 'BAD_USER_INPUT', field: 'face.CSRQ' },
      { index: 3, code: 'INVALID_ID_NUMBER', field: 'holderCode' },
    ]);
    const second = await ok<{ issued: number; skipped: number }>(m, police, { items });
    expect(second).toMatchObject({ issued: 0, skipped: 2 });
    const issued = await rows<{ identifier: string; credential: string; sd_jwt: string; signer_kid: string }>(tdb.database.db, sql`select identifier, credential, sd_jwt, signer_kid from licences where number in (${items[0]!.number}, ${items[1]!.number})`);
    expect(issued).toHaveLength(2);
    for (const r of issued) {
      const forms = await signedFormsOf(hub.services.licence.pki, { signerKid: r.signer_kid, credential: r.credential, sdJwt: r.sd_jwt });
      expect(await verify(forms.credential)).toMatchObject({ valid: true });
      expect(await verify(forms.sdJwt)).toMatchObject({ valid: true });
      expect(await audit('LICENCE_ISSUE', r.identifier)).toHaveLength(1);
    }
    expect(codeOf(await gql(`query($id: ID!) { licenceBatch(id: $id) { id } }`, market, { id: first.id }))).toMatchObject({ code: 'NOT_FOUND' });
  });

  it('serves licences to approval systems in the contract\'s error order, audited, records each use, and tells the user of a later suspension', async () => {
    const q = `query($h: String!, $p: PurposeInput!, $t: String) { licences(holderCode: $h, purpose: $p, typeCode: $t) { identifier typeCode name holderCode status face } }`;
    const purpose = { itemCode: ITEM, caseId: 'FZ-2026-7', operator: '窗口李四' };
    expect(codeOf(await gql(q, police, { h: '110101199003077777', p: { itemCode: '' } }))).toMatchObject({ code: 'INVALID_ID_NUMBER' });
    expect(codeOf(await gql(q, police, { h: DEMO_HOLDERS.person.code, p: { itemCode: '' } }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(codeOf(await gql(q, consumer, { h: DEMO_HOLDERS.person.code, p: { itemCode: 'NOPE' } }))).toMatchObject({ code: 'PURPOSE_REQUIRED' });
    const stranger = await hub.token(await hub.newClient(['consumer']));
    expect(codeOf(await gql(q, stranger, { h: DEMO_HOLDERS.person.code, p: purpose }))).toMatchObject({ code: 'GRANT_MISSING', missing: { itemCode: ITEM } });
    const r = await hub.graphql(q, consumer, { h: DEMO_HOLDERS.person.code, p: purpose });
    expect(r.body.errors).toBeUndefined();
    const found = r.body.data!.licences as { identifier: string; typeCode: string; name: string; status: string }[];
    expect(found.map((x) => x.name).sort()).toEqual(['不动产权证书', '居民身份证', '结婚证']);
    const ids = (r.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds!;
    const [entry] = await rows<Record<string, unknown>>(tdb.database.db, sql`select * from audit_entries where seq = ${Number(ids.at(-1))}`);
    expect(entry).toMatchObject({ operation: 'LICENCE_READ', outcome: 'RETURNED', subject: DEMO_HOLDERS.person.code, item_code: ITEM, case_id: 'FZ-2026-7' });
    const refusals = await rows<{ reason: string }>(tdb.database.db, sql`select reason from audit_entries where operation = 'LICENCE_READ' and outcome = 'REFUSED' order by seq`);
    expect(refusals.map((x) => x.reason)).toEqual(expect.arrayContaining(['INVALID_ID_NUMBER', 'FORBIDDEN', 'PURPOSE_REQUIRED', 'GRANT_MISSING']));
    const typed = await ok<{ typeCode: string }[]>(q, consumer, { h: DEMO_HOLDERS.person.code, p: purpose, t: DEMO_LICENCE_TYPES.idCard });
    expect(typed.map((x) => x.typeCode)).toEqual([DEMO_LICENCE_TYPES.idCard]);
    const idCardLicence = found.find((x) => x.typeCode === DEMO_LICENCE_TYPES.idCard)!;
    const uses = await rows<Record<string, unknown>>(tdb.database.db, sql`select * from licence_uses where identifier = ${idCardLicence.identifier}`);
    expect(uses.length).toBeGreaterThanOrEqual(1);
    expect(uses[0]).toMatchObject({ item_code: ITEM, case_id: 'FZ-2026-7', operator: '窗口李四', department: DEMO_DEPARTMENTS[3].code });

    expect(await ok<unknown[]>(`{ licenceUseNotices { identifier } }`, consumer)).toEqual([]);
    await ok(`mutation($id: String!) { suspendLicence(identifier: $id, reason: "证件挂失") { status } }`, police, { id: idCardLicence.identifier });
    const notices = await ok<{ identifier: string; status: string; reason: string; itemCode: string; caseId: string }[]>(`{ licenceUseNotices { identifier status reason itemCode caseId } }`, consumer);
    expect(notices).toEqual([{ identifier: idCardLicence.identifier, status: 'SUSPENDED', reason: '证件挂失', itemCode: ITEM, caseId: 'FZ-2026-7' }]);
    const notes = await rows<{ kind: string; payload: Record<string, unknown> }>(tdb.database.db, sql`select kind, payload from notifications where department_code = ${DEMO_DEPARTMENTS[3].code} and kind = 'LICENCE_STATUS_CHANGED'`);
    expect(notes).toHaveLength(1);
    expect(notes[0]!.payload).toMatchObject({ identifier: idCardLicence.identifier, status: 'SUSPENDED' });
    const mine = await ok<{ identifier: string }[]>(`{ myLicenceUses { identifier itemCode } }`, await holderToken(DEMO_HOLDERS.person.code));
    expect(mine.map((u) => u.identifier)).toContain(idCardLicence.identifier);
    await ok(`mutation($id: String!) { reinstateLicence(identifier: $id, reason: "找回") { status } }`, police, { id: idCardLicence.identifier });
  });

  const holderToken = async (code: string) => ok<{ token: string }>(`mutation($c: String!) { issueHolderToken(code: $c) { token } }`, admin, { c: code }).then((t) => t.token);

  it('POST /verify answers like verifyLicence, without auth; status lists carry ETag and Cache-Control', async () => {
    const l = await issue(idCard({ holderCode: BOB, holderName: '李强' }));
    const res = await fetch(`${hub.url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ credential: l.sdJwt }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ valid: true, status: 'VALID', reasons: [], licence: { identifier: l.identifier } });
    expect(JSON.stringify(body.licence)).not.toContain(BOB);
    expect((await fetch(`${hub.url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status).toBe(400);
    const vc = JSON.parse(Buffer.from(l.credential.split('.')[1]!, 'base64url').toString()) as { credentialStatus: { statusListCredential: string }[] };
    const url = local(vc.credentialStatus[0]!.statusListCredential);
    const first = await fetch(url, { headers: { accept: 'application/statuslist+jwt' } });
    expect(first.headers.get('cache-control')).toContain('max-age');
    const etag = first.headers.get('etag')!;
    expect((await fetch(url, { headers: { accept: 'application/statuslist+jwt', 'if-none-match': etag } })).status).toBe(304);
    await ok(`mutation($id: String!) { suspendLicence(identifier: $id, reason: "核查") { status } }`, police, { id: l.identifier });
    const changed = await fetch(url, { headers: { accept: 'application/statuslist+jwt', 'if-none-match': etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(etag);
    expect((await fetch(`${hub.url}/status-lists/999`)).status).toBe(404);
  });

  it('limits POST /verify per client address (HUB_VERIFY_RATE)', async () => {
    const limited = await startTestHub(tdb.database, { env: { HUB_VERIFY_RATE: '2' } });
    try {
      const post = () => fetch(`${limited.url}/verify`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ credential: 'x.y.z' }) });
      const statuses = [(await post()).status, (await post()).status];
      const third = await post();
      expect(statuses).toEqual([200, 200]);
      expect(third.status).toBe(429);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await third.json()).toMatchObject({ error: 'RATE_LIMITED' });
    } finally {
      await limited.close();
    }
  });

  it('lists and notifies an issuer of its licences expiring within 30 days (the daily job)', async () => {
    const soon = new Date(Date.now() + 10 * 86_400_000 + 8 * 3600_000).toISOString().slice(0, 10);
    const l = await ok<Lic>(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { ${LICENCE} } }`, nhc, {
      i: { typeCode: DEMO_LICENCE_TYPES.birthCertificate, number: `Q-${crypto.randomBytes(4).toString('hex')}`, holderName: '莫小安', holderCode: DEMO_HOLDERS.newborn.code, validUntil: soon, face: { XSEXM: '莫小安', XB: '男', CSSJ: '2026-06-01 08:30', CSDD: '福州', MQXM: '莫萱兰', MQSFZH: DEMO_HOLDERS.person.code, QFJG: '福建省妇幼保健院' } },
    });
    const listed = await ok<{ identifier: string }[]>(`{ expiringLicences(days: 30) { identifier } }`, nhc);
    expect(listed.map((x) => x.identifier)).toContain(l.identifier);
    expect((await ok<{ identifier: string }[]>(`{ expiringLicences(days: 30) { identifier } }`, market)).map((x) => x.identifier)).not.toContain(l.identifier);
    // the daily job of the registry: expiries, then each issuer's notice, once per licence
    const job = JOBS['licence.expiry'];
    expect(job.everyMs).toBe(24 * 60 * 60 * 1000);
    const deps = { database: tdb.database, db: tdb.database.db, logger: log, masterKey: hub.services.masterKey, issuer: TEST_ISSUER };
    expect((await job.handler(deps, {})).notified).toBeGreaterThanOrEqual(1);
    expect((await job.handler(deps, {})).notified).toBe(0);
    expect(await notifyExpiringLicences(tdb.database.db)).toBe(0);
    const notes = await rows<{ subject_id: string }>(tdb.database.db, sql`select subject_id from notifications where department_code = ${NHC} and kind = 'LICENCE_EXPIRING'`);
    expect(notes.map((n) => n.subject_id)).toContain(l.identifier);
  });
});
