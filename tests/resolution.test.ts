import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import * as jose from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueHolderToken } from '../auth/holders.ts';
import { fetchAccessToken, readClientFile } from '../auth/client-file.ts';
import { upsertBaseRecords } from '../basedata/store.ts';
import { createConnector } from '../connectors/registry.ts';
import { systemContext } from '../core/context.ts';
import { idNumberCheckChar, idNumberProblem, usccProblem } from '../core/ids.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { DEMO_HOLDERS } from '../db/seeds/demo-licences.ts';
import { DEMO_LICENCE_TYPES } from '../db/seeds/demo-directory.ts';
import { JOBS, type JobDeps } from '../workers/jobs.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const [POLICE, MARKET, CREDIT_DEPT, , , , , NR, MCA] = DEMO_DEPARTMENTS.map((d) => d.code) as string[];
const PERSON = DEMO_HOLDERS.person.code; // 莫萱兰: 居民身份证, 结婚证, 不动产权证书
const SPOUSE = DEMO_HOLDERS.spouse.code; // 王丽: no licences at first
const COMPANY = DEMO_HOLDERS.company.code; // 营业执照, and a black-list entry below
const BOB = '360426199101010071'; // no licences; a red-list entry (绿色通道)
const NOBODY = `11010519800101001${idNumberCheckChar('11010519800101001')}`; // valid, unknown to the hub
const T = DEMO_LICENCE_TYPES;
const HOUSE = '350100-DJ-0006'; // 不动产转移登记（二手房）
const BIRTH = '350100-QR-0004'; // 出生登记
const FOUND = '350100-DJ-0001'; // 企业设立登记 (measures JC-0101, JC-0205)

/** An 18-digit code with a real birth date whose check characters pass as a 公民身份号码 and as a USCC. */
function ambiguousCode(): string {
  for (let seq = 100; seq < 1000; seq++) {
    for (let day = 1; day <= 28; day++) {
      const first17 = `110105199001${String(day).padStart(2, '0')}${seq}`;
      const code = `${first17}${idNumberCheckChar(first17)}`;
      if (!idNumberProblem(code) && !usccProblem(code)) return code;
    }
  }
  throw new Error('no ambiguous code found');
}

const RESOLVE = `query($item: String!, $code: String!, $p: PurposeInput!, $t: SubjectCodeType) {
  resolveMaterials(itemCode: $item, applicantCode: $code, purpose: $p, codeType: $t) {
    itemCode applicantCode codeType resolvedAt auditId receipt
    materials { materialCode name outcome evidence rejected itemCodes }
    credit { checked reason blackList measures redList fastTrack }
  } }`;
const BUNDLE = `query($b: String!, $code: String!, $p: PurposeInput!) {
  resolveBundle(bundleCode: $b, applicantCode: $code, purpose: $p) {
    bundleCode applicantCode auditId receipt
    items { itemCode name materials { materialCode outcome } }
    materials { materialCode name outcome evidence rejected itemCodes }
    credit { checked blackList measures fastTrack }
  } }`;

interface Outcome {
  materialCode: string;
  name: string;
  outcome: string;
  evidence: Record<string, unknown> | null;
  rejected: { source: string; reason: string; identifier?: string; licenceTypeCode?: string; resourceCode?: string }[];
  itemCodes: string[];
}
interface Resolution {
  itemCode: string;
  applicantCode: string;
  codeType: string;
  auditId: string;
  receipt: string;
  materials: Outcome[];
  credit: { checked: boolean; reason: string | null; blackList: Record<string, unknown>[]; measures: string[]; redList: Record<string, unknown>[]; fastTrack: boolean };
}

describe.each(drivers())('免提交: resolving an application\'s materials (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let consumer: string;
  let police: string;
  let nr: string;
  let mca: string;
  const licenceOf = async (holder: string, type: string) => (await rows<{ identifier: string }>(tdb.database.db, sql`select identifier from licences where holder_code = ${holder} and type_code = ${type} and status <> 'SUPERSEDED' order by version desc`))[0]!.identifier;

  const gql = (query: string, token: string | undefined, variables?: Record<string, unknown>) => hub.graphql(query, token, variables);
  const ok = async <T>(query: string, token: string, variables?: Record<string, unknown>): Promise<T> => {
    const r = await gql(query, token, variables);
    if (r.body.errors) throw new Error(JSON.stringify(r.body.errors));
    return Object.values(r.body.data!)[0] as T;
  };
  const resolve = (item: string, code: string, token = consumer, caseId = 'FZ-2026-0001', codeType?: string) =>
    ok<Resolution>(RESOLVE, token, { item, code, p: { itemCode: item, caseId, operator: '张三' }, t: codeType ?? null });
  const material = (r: { materials: Outcome[] }, code: string) => r.materials.find((m) => m.materialCode === code)!;
  const reasons = (m: Outcome) => m.rejected.map((x) => `${x.source}:${x.reason}`);

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    const deps: { current?: JobDeps } = {};
    hub = await startTestHub(tdb.database, { jobs: { enqueue: async (name, data) => void (await JOBS[name].handler(deps.current!, data)) } });
    deps.current = { database: tdb.database, db: tdb.database.db, logger: log, masterKey: hub.services.masterKey, keys: hub.services.keys, issuer: TEST_ISSUER };
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-resolution-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: `${TEST_ISSUER}/oauth/token`, logger: log, licence: { masterKey: hub.services.masterKey, issuer: TEST_ISSUER } });
    await hub.services.licence.pki.reload();
    consumer = await hub.token(readClientFile(path.join(dir, 'demo-client.json')));
    police = await hub.token(await hub.newClient(['issuer'], { department: POLICE }));
    nr = await hub.token(await hub.newClient(['issuer'], { department: NR }));
    mca = await hub.token(await hub.newClient(['issuer'], { department: MCA }));

    // the base data, as connectors would have pulled it
    const db = tdb.database.db;
    const connector = async (id: string, kind: 'population' | 'legal_person' | 'credit', dept: string) =>
      createConnector(systemContext(db, log, dept, 'test'), { id, name: id, departmentCode: dept, kind, adapter: 'http', config: { url: 'http://127.0.0.1:9/', auth: { type: 'bearer', secret: 'unused' } } });
    await connector('t-population', 'population', POLICE);
    await connector('t-legal', 'legal_person', MARKET);
    await connector('t-credit', 'credit', CREDIT_DEPT);
    const person = (idNumber: string, name: string, maritalStatus: string) => ({ key: idNumber, subject: idNumber, sourceId: idNumber, flags: [], data: { idNumber, name, gender: '女', householdAddress: '福州市鼓楼区东街1号', maritalStatus } });
    const credit = (entryId: string, subjectCode: string, listType: string, measures: string[], extra: Record<string, unknown> = {}) => ({
      key: entryId,
      subject: subjectCode,
      sourceId: entryId,
      flags: [],
      data: { entryId, subjectCode, listType, authority: '福州市中级人民法院', reason: '测试', basis: '测试依据', listedOn: '2025-01-01', validUntil: null, repairedAt: null, measures, ...extra },
    });
    await db.transaction(async (tx) => {
      const at = new Date();
      await upsertBaseRecords(tx, 'population', 't-population', at, [person(PERSON, '莫萱兰', '已婚'), person(SPOUSE, '王丽', '已婚'), person(BOB, '李明', '已婚')]);
      await upsertBaseRecords(tx, 'legal_person', 't-legal', at, [{ key: COMPANY, subject: COMPANY, sourceId: COMPANY, flags: [], data: { uscc: COMPANY, name: '福州示例科技有限公司', status: 'OPERATING' } }]);
      await upsertBaseRecords(tx, 'credit', 't-credit', at, [
        credit('B-1', COMPANY, 'BLACK', ['JC-0101', 'JC-0102']),
        credit('B-2', PERSON, 'BLACK', ['JC-0301'], { repairedAt: '2026-01-05' }), // 信用修复: off the list
        credit('R-1', BOB, 'RED', ['JL-0101'], { authority: '福建省卫生健康委员会', reason: '全国无偿献血奉献奖获得者' }),
      ]);
    });
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves 二手房转移登记 from licences and shared data, in each material\'s order of preference, with a receipt and an audit entry', async () => {
    const r = await gql(RESOLVE, consumer, { item: HOUSE, code: PERSON, p: { itemCode: HOUSE, caseId: 'FZ-2026-0001', operator: '张三' } });
    expect(r.body.errors).toBeUndefined();
    const res = r.body.data!.resolveMaterials as Resolution;
    expect(res.materials.map((m) => [m.materialCode, m.outcome])).toEqual([
      ['M01', 'PROVIDED_BY_LICENCE'],
      ['M02', 'PROVIDED_BY_LICENCE'],
      ['M03', 'PROVIDED_BY_DATA'], // 婚姻状况: shared data first, the 结婚证 second
      ['M04', 'MUST_SUBMIT'],
      ['M05', 'WAIVABLE'],
    ]);
    const property = await licenceOf(PERSON, T.propertyCertificate);
    const idCard = await licenceOf(PERSON, T.idCard);
    // the demo's grant covers every 信息项 but none unmasked: the evidence is an SD-JWT presentation of what it covers,
    // not the all-claims credential
    expect(material(res, 'M01').evidence).toMatchObject({ kind: 'LICENCE', identifier: property, typeCode: T.propertyCertificate, status: 'VALID', sdJwt: expect.any(String) });
    expect(material(res, 'M01').evidence!.credential).toBeUndefined();
    expect(material(res, 'M02').evidence).toMatchObject({ kind: 'LICENCE', identifier: idCard });
    // the 居民身份证's number is the ID number: masked in the evidence, and not in its presentation
    expect(material(res, 'M02').evidence!.number).toBe(`${PERSON.slice(0, 6)}********${PERSON.slice(14)}`);
    expect(String(material(res, 'M02').evidence!.sdJwt)).not.toContain(PERSON);
    // the presentation handed over verifies on its own, and says only what it discloses
    const v = await ok<{ valid: boolean; disclosed: Record<string, unknown> }>(`query($c: String!) { verifyLicence(credential: $c) { valid disclosed } }`, consumer, { c: material(res, 'M01').evidence!.sdJwt });
    expect(v.valid).toBe(true);
    expect(Object.keys(v.disclosed)).not.toContain('CZZTDM');
    expect(material(res, 'M03').evidence).toMatchObject({ kind: 'DATA', fields: { maritalStatus: '已婚' }, provenance: { version: 1, sourceDepartment: POLICE } });
    expect(material(res, 'M03').rejected).toEqual([]); // the licence after it was not needed
    expect(reasons(material(res, 'M04'))).toEqual(['DATA:NOT_HELD']); // 社保: a department interface, not held in the hub
    expect(material(res, 'M05').evidence).toMatchObject({ kind: 'RONGQUE', workingDays: 10, dueAt: expect.any(String) });
    expect(res.credit).toMatchObject({ checked: true, blackList: [], fastTrack: false }); // the repaired entry is off the list

    // the receipt: jose alone, against the published JWKS
    const jwks = jose.createRemoteJWKSet(new URL(`${hub.url}/.well-known/jwks.json`));
    const { payload, protectedHeader } = await jose.jwtVerify(res.receipt, jwks, { issuer: TEST_ISSUER, typ: 'materials-receipt+jwt' });
    expect(protectedHeader.alg).toBe('ES256');
    expect(payload).toMatchObject({ sub: PERSON, purpose: { itemCode: HOUSE, caseId: 'FZ-2026-0001', operator: '张三' }, resolution: { itemCode: HOUSE, auditId: res.auditId } });
    expect((payload.resolution as Resolution).materials).toEqual(res.materials);
    const forged = `${res.receipt.slice(0, -4)}AAAA`;
    await expect(jose.jwtVerify(forged, jwks)).rejects.toThrow();

    // audited before it left: one entry naming each licence and record used; the licences' use is recorded
    expect(r.body.extensions?.auditIds).toEqual([res.auditId]);
    const [entry] = await rows<{ operation: string; subject: string; case_id: string; outcome: string; details: Record<string, unknown> }>(tdb.database.db, sql`select * from audit_entries where seq = ${Number(res.auditId)}`);
    expect(entry).toMatchObject({ operation: 'MATERIALS_RESOLVE', subject: PERSON, case_id: 'FZ-2026-0001', outcome: 'RETURNED' });
    expect(entry!.details.licences).toEqual(expect.arrayContaining([property, idCard]));
    expect(entry!.details.records).toEqual(expect.arrayContaining([expect.stringContaining(`:${PERSON}@1`)]));
    const uses = await rows<{ identifier: string; item_code: string; case_id: string }>(tdb.database.db, sql`select identifier, item_code, case_id from licence_uses where holder_code = ${PERSON} and case_id = 'FZ-2026-0001'`);
    expect(uses.map((u) => u.identifier).sort()).toEqual([idCard, property].sort());
    expect(uses.every((u) => u.item_code === HOUSE)).toBe(true);
  });

  it('prefers what each material lists first: the 结婚证 for 出生登记, and says why a licence held by someone else is not used', async () => {
    const res = await resolve(BIRTH, PERSON);
    expect(material(res, 'M03')).toMatchObject({ outcome: 'PROVIDED_BY_LICENCE', evidence: { typeCode: T.marriageCertificate } });
    // 出生医学证明 is the newborn's: the mother holds none
    expect(material(res, 'M01')).toMatchObject({ outcome: 'MUST_SUBMIT', rejected: [{ source: 'LICENCE', reason: 'NO_RECORD', licenceTypeCode: T.birthCertificate }] });
  });

  it('needs a grant, or the holder\'s 授权用证, for each source', async () => {
    const file = await hub.newClient(['consumer'], { name: '未获授权的审批系统' });
    const stranger = await hub.token(file);
    let res = await resolve(HOUSE, PERSON, stranger);
    expect(reasons(material(res, 'M02'))).toEqual(['LICENCE:NO_GRANT', 'DATA:NO_GRANT']);
    expect(material(res, 'M02').outcome).toBe('MUST_SUBMIT');
    expect(res.credit).toMatchObject({ checked: false, reason: 'NO_GRANT' });
    // nothing about the holder's licences is told without a right to them
    expect(JSON.stringify(res.materials)).not.toContain('1.2.156.3005');

    const holder = (await issueHolderToken({ db: hub.services.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, PERSON)).token;
    await ok(`mutation($i: LicenceAuthorisationInput!) { authoriseLicenceUse(input: $i) { id } }`, holder, {
      i: { clientId: file.client_id, itemCode: HOUSE, caseId: 'FZ-2026-0009', validUntil: new Date(Date.now() + 3600_000).toISOString() },
    });
    res = await resolve(HOUSE, PERSON, stranger, 'FZ-2026-0009');
    expect(material(res, 'M02')).toMatchObject({ outcome: 'PROVIDED_BY_LICENCE', evidence: { typeCode: T.idCard } });
    expect(reasons(material(res, 'M03'))).toEqual(['DATA:NO_GRANT']); // the 结婚证 was next, and authorised: used
    expect(material(res, 'M03').outcome).toBe('PROVIDED_BY_LICENCE');
    // for another case the authorisation does not hold
    expect(reasons(material(await resolve(HOUSE, PERSON, stranger, 'FZ-2026-0010'), 'M02'))).toEqual(['LICENCE:NO_GRANT', 'DATA:NO_GRANT']);
  });

  it('resolves 企业开办一件事 once for the shared materials, with the company\'s black-list entry and its measures', async () => {
    const r = await gql(BUNDLE, consumer, { b: 'YJS-QYKB', code: COMPANY, p: { itemCode: FOUND, caseId: 'QYKB-2026-01' } });
    expect(r.body.errors).toBeUndefined();
    const res = r.body.data!.resolveBundle as Resolution & { items: { itemCode: string; materials: { materialCode: string; outcome: string }[] }[] };
    const licence = res.materials.filter((m) => m.name === '营业执照');
    expect(licence).toHaveLength(1);
    expect(licence[0]).toMatchObject({ outcome: 'PROVIDED_BY_LICENCE', itemCodes: ['350100-BA-0002', '350100-DJ-0003'], evidence: { typeCode: T.businessLicence } });
    const rep = res.materials.filter((m) => m.name === '法定代表人身份证明');
    expect(rep).toHaveLength(1);
    expect(rep[0]!.itemCodes).toEqual([FOUND, '350100-BA-0002']);
    expect(reasons(rep[0]!)).toEqual(['LICENCE:NO_RECORD', 'DATA:NOT_APPLICABLE']); // a company holds no 居民身份证
    expect(res.items.map((i) => i.itemCode)).toEqual([FOUND, '350100-BA-0002', '350100-DJ-0003']);
    expect(res.items[1]!.materials.map((m) => m.materialCode)).toEqual(['M01', 'M02']);

    // 联合惩戒: the entry's JC-0101 is a measure of 企业设立登记 only; there the 告知承诺 is not open to it
    expect(res.credit).toMatchObject({ checked: true, measures: ['JC-0101'], fastTrack: false });
    expect(res.credit.blackList).toEqual([expect.objectContaining({ entryId: 'B-1', measures: ['JC-0101'], itemCodes: [FOUND] })]);
    const residence = res.materials.find((m) => m.name === '住所使用证明')!;
    expect(residence).toMatchObject({ outcome: 'MUST_SUBMIT', rejected: [{ source: 'LICENCE', reason: 'NO_RECORD' }, { source: 'WAIVER', reason: 'BLACK_LISTED' }] });
    expect(res.materials.find((m) => m.name === '银行开户信息')).toMatchObject({ outcome: 'WAIVABLE', evidence: { kind: 'RONGQUE', workingDays: 5 } });

    const jwks = jose.createRemoteJWKSet(new URL(`${hub.url}/.well-known/jwks.json`));
    const { payload } = await jose.jwtVerify(res.receipt, jwks, { issuer: TEST_ISSUER });
    expect(payload).toMatchObject({ resolution: { bundleCode: 'YJS-QYKB', applicantCode: COMPANY } });
    // the purpose must be an item of the bundle
    const wrong = await gql(BUNDLE, consumer, { b: 'YJS-QYKB', code: COMPANY, p: { itemCode: HOUSE } });
    expect(wrong.body.errors?.[0]?.extensions?.code).toBe('PURPOSE_REQUIRED');
  });

  it('opens the red list\'s fast track (绿色通道): materials that would be submitted may follow later', async () => {
    const res = await resolve(HOUSE, BOB);
    expect(res.credit).toMatchObject({ checked: true, fastTrack: true, redList: [expect.objectContaining({ entryId: 'R-1' })] });
    expect(material(res, 'M04')).toMatchObject({ outcome: 'WAIVABLE', evidence: { kind: 'RONGQUE', fastTrack: true, workingDays: 10, basis: ['R-1'] }, rejected: [{ reason: 'NOT_HELD' }] });
    expect(material(res, 'M01')).toMatchObject({ outcome: 'WAIVABLE', evidence: { fastTrack: true } });
    expect(material(res, 'M03').outcome).toBe('PROVIDED_BY_DATA');
  });

  it('checks the applicant code and the caller in the contract\'s order, and records refusals', async () => {
    const code = async (query: string, token: string | undefined, variables: Record<string, unknown>) => (await gql(query, token, variables)).body.errors?.[0]?.extensions;
    const vars = (c: string, item = HOUSE, t: string | null = null) => ({ item, code: c, p: { itemCode: item, caseId: 'E-1' }, t });
    expect((await code(RESOLVE, undefined, vars(PERSON)))?.code).toBe('UNAUTHENTICATED');
    const provider = await hub.token(await hub.newClient(['provider']));
    expect((await code(RESOLVE, provider, vars('110101199003077777')))?.code).toBe('INVALID_ID_NUMBER'); // before FORBIDDEN
    expect((await code(RESOLVE, consumer, vars('911100001000000000')))?.code).toBe('INVALID_USCC');
    expect((await code(RESOLVE, consumer, vars(PERSON, HOUSE, 'USCC')))?.code).toBe('INVALID_USCC');
    expect((await code(RESOLVE, provider, vars(PERSON)))?.code).toBe('FORBIDDEN');
    expect((await code(RESOLVE, consumer, { ...vars(PERSON), p: { itemCode: 'NO-SUCH-ITEM', caseId: 'E-1' } }))?.code).toBe('PURPOSE_REQUIRED');
    expect((await code(RESOLVE, consumer, { ...vars(PERSON), p: { itemCode: BIRTH, caseId: 'E-1' } }))?.code).toBe('PURPOSE_REQUIRED'); // not the item resolved
    const both = ambiguousCode();
    expect(await code(RESOLVE, consumer, vars(both))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'codeType' });
    const asPerson = await resolve(HOUSE, both, consumer, 'E-2', 'ID_NUMBER');
    expect(asPerson).toMatchObject({ codeType: 'ID_NUMBER', applicantCode: both });
    const asCompany = await resolve(HOUSE, both, consumer, 'E-3', 'USCC');
    expect(reasons(material(asCompany, 'M03'))).toEqual(['DATA:NOT_APPLICABLE', 'LICENCE:NO_RECORD']);
    const refused = await rows<{ reason: string; subject: string }>(tdb.database.db, sql`select reason, subject from audit_entries where operation = 'MATERIALS_RESOLVE' and outcome = 'REFUSED' and case_id = 'E-1' order by seq`);
    expect(refused.map((x) => x.reason), JSON.stringify(refused)).toEqual(['INVALID_ID_NUMBER', 'INVALID_USCC', 'INVALID_USCC', 'FORBIDDEN', 'PURPOSE_REQUIRED', 'PURPOSE_REQUIRED', 'BAD_USER_INPUT']);
  });

  it('rejects a suspended, revoked, superseded, expired, not yet valid or disputed licence, naming why, and falls to the next source', async () => {
    const idCard = await licenceOf(PERSON, T.idCard);
    await ok(`mutation($i: String!) { suspendLicence(identifier: $i, reason: "证件挂失") { status } }`, police, { i: idCard });
    let res = await resolve(HOUSE, PERSON);
    expect(material(res, 'M02')).toMatchObject({ outcome: 'PROVIDED_BY_DATA', rejected: [{ source: 'LICENCE', reason: 'SUSPENDED', identifier: idCard }] });
    await ok(`mutation($i: String!) { reinstateLicence(identifier: $i, reason: "找回") { status } }`, police, { i: idCard });
    expect(material(await resolve(HOUSE, PERSON), 'M02').outcome).toBe('PROVIDED_BY_LICENCE');

    // 异议: the holder disputes a field
    const holder = (await issueHolderToken({ db: hub.services.database.db, keys: hub.services.keys, issuer: TEST_ISSUER, oidcIssuer: undefined }, PERSON)).token;
    await ok(`mutation($i: String!) { objectToLicence(identifier: $i, field: "ZZ", reason: "住址已变更") { id } }`, holder, { i: idCard });
    res = await resolve(HOUSE, PERSON);
    expect(material(res, 'M02')).toMatchObject({ outcome: 'PROVIDED_BY_DATA', rejected: [{ source: 'LICENCE', reason: 'UNDER_OBJECTION', identifier: idCard }] });

    // a change makes a new version; the new one suspended, the old one superseded: both named, then shared data
    const marriage = await licenceOf(PERSON, T.marriageCertificate);
    const changed = await ok<{ identifier: string }>(`mutation($i: String!, $f: JSON!) { changeLicence(identifier: $i, face: $f, reason: "补充备注") { identifier } }`, mca, {
      i: marriage,
      f: { CZRXM: '莫萱兰', DJRQ: '2020-05-20', POXM: '李明', POSFZH: '360426199101010071', DJJG: '福州市鼓楼区民政局', BZ: '补发' },
    });
    await ok(`mutation($i: String!) { suspendLicence(identifier: $i, reason: "核查中") { status } }`, mca, { i: changed.identifier });
    res = await resolve(BIRTH, PERSON);
    expect(material(res, 'M03')).toMatchObject({ outcome: 'PROVIDED_BY_DATA' });
    expect(material(res, 'M03').rejected).toEqual([
      expect.objectContaining({ source: 'LICENCE', reason: 'SUSPENDED', identifier: changed.identifier }),
      expect.objectContaining({ source: 'LICENCE', reason: 'SUPERSEDED', identifier: marriage }),
    ]);

    // revoked: nothing after it in M01's sources, and no tolerance: submit it
    const property = await licenceOf(PERSON, T.propertyCertificate);
    await ok(`mutation($i: String!) { revokeLicence(identifier: $i, reason: "依法撤销", kind: REVOKED) { status } }`, nr, { i: property });
    res = await resolve(HOUSE, PERSON);
    expect(material(res, 'M01')).toMatchObject({ outcome: 'MUST_SUBMIT', rejected: [{ source: 'LICENCE', reason: 'REVOKED', identifier: property }] });

    // expired and not yet valid, for 王丽
    const issue = (token: string, input: Record<string, unknown>) => ok<{ identifier: string }>(`mutation($i: IssueLicenceInput!) { issueLicence(input: $i) { identifier } }`, token, { i: input });
    const old = await issue(police, { typeCode: T.idCard, number: `OLD-${SPOUSE}`, holderName: '王丽', holderCode: SPOUSE, validFrom: '2000-01-01', validUntil: '2020-01-01', face: { XM: '王丽', XB: '女', MZ: '汉', CSRQ: '1949-12-31', ZZ: '北京市', GMSFHM: SPOUSE, QFJG: '北京市公安局' } });
    const future = await issue(nr, { typeCode: T.propertyCertificate, number: `F-${SPOUSE}`, holderName: '王丽', holderCode: SPOUSE, validFrom: '2099-01-01', face: { QLR: '王丽', GYQK: '单独所有', ZL: '福州市', BDCDYH: '350102001001GB00001F00019999', QLXZ: '出让', YT: '住宅', MJ: 60, SYQX: '70年' } });
    res = await resolve(HOUSE, SPOUSE);
    expect(material(res, 'M02')).toMatchObject({ outcome: 'PROVIDED_BY_DATA', rejected: [{ reason: 'EXPIRED', identifier: old.identifier }] });
    expect(material(res, 'M01')).toMatchObject({ outcome: 'MUST_SUBMIT', rejected: [{ reason: 'NOT_YET_VALID', identifier: future.identifier }] });

    // nothing at all: no licence, no record
    res = await resolve(HOUSE, NOBODY);
    expect(reasons(material(res, 'M02'))).toEqual(['LICENCE:NO_RECORD', 'DATA:NO_RECORD']);
  });

  it('measures the reform: the share of materials no longer submitted, per item and per bundle, in GraphQL and /metrics', async () => {
    const from = new Date(Date.now() - 86400_000).toISOString();
    const to = new Date(Date.now() + 86400_000).toISOString();
    const house = await ok<{ resolutions: number; materials: number; byLicence: number; byData: number; mustSubmit: number; share: number }[]>(
      `query($f: String!, $t: String!) { materialsReform(itemCode: "${HOUSE}", from: $f, to: $t) { period resolutions materials byLicence byData byCommitment deferred mustSubmit share } }`,
      consumer,
      { f: from, t: to },
    );
    expect(house).toHaveLength(1);
    const [h] = house;
    expect(h!.materials).toBe(h!.resolutions * 5);
    expect(h!.share).toBeCloseTo((h!.byLicence + h!.byData + (h as unknown as { byCommitment: number }).byCommitment) / h!.materials, 10);
    expect(h!.share).toBeGreaterThan(0);
    const bundle = await ok<{ resolutions: number; materials: number }[]>(`query($f: String!, $t: String!) { materialsReform(bundleCode: "YJS-QYKB", from: $f, to: $t, period: MONTH) { resolutions materials share } }`, consumer, { f: from, t: to });
    expect(bundle).toEqual([expect.objectContaining({ resolutions: 1, materials: 5 })]); // 7 materials of 3 items, 2 of them shared
    const both = await gql(`{ materialsReform(itemCode: "x", bundleCode: "y", from: "2026-01-01", to: "2026-02-01") { share } }`, consumer);
    expect(both.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`hub_materials_total\\{item="${HOUSE}",outcome="PROVIDED_BY_LICENCE"\\} [1-9]`));
  });
});

describe('免提交 on a fresh embedded start', () => {
  let hub: ChildProcess | undefined;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-demo-'));
  afterAll(async () => {
    if (hub && hub.exitCode === null) {
      hub.kill('SIGTERM');
      await new Promise((r) => hub!.once('exit', r));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('resolves the demo items against the demo licences right after npm start', async () => {
    hub = spawn(process.execPath, ['--import', 'tsx', 'gateway/main.ts'], { env: { ...process.env, HUB_DATA_DIR: dir, PORT: '0', HUB_HOST: '127.0.0.1', DATABASE_URL: '', REDIS_URL: '', NODE_ENV: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    hub.stdout!.on('data', (d) => (output += d));
    hub.stderr!.on('data', (d) => (output += d));
    await expect.poll(() => /"hub listening"/.test(output), { timeout: 60_000, interval: 200 }).toBe(true);
    const port = Number(/"port":(\d+)/.exec(output)![1]);
    const base = `http://127.0.0.1:${port}`;
    const { access_token } = await fetchAccessToken(readClientFile(path.join(dir, 'demo-client.json')), base);
    const ask = async (query: string, variables: Record<string, unknown>) => {
      const res = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` }, body: JSON.stringify({ query, variables }) });
      return (await res.json()) as { data?: Record<string, Resolution>; errors?: unknown };
    };
    const house = await ask(RESOLVE, { item: HOUSE, code: PERSON, p: { itemCode: HOUSE, caseId: 'DEMO-1' } });
    expect(house.errors).toBeUndefined();
    const m = house.data!.resolveMaterials!.materials;
    expect(m.find((x) => x.materialCode === 'M01')!.outcome).toBe('PROVIDED_BY_LICENCE');
    expect(m.find((x) => x.materialCode === 'M02')!.outcome).toBe('PROVIDED_BY_LICENCE');
    const birth = await ask(BUNDLE, { b: 'YJS-XSECS', code: DEMO_HOLDERS.newborn.code, p: { itemCode: BIRTH, caseId: 'DEMO-2' } });
    expect(birth.errors).toBeUndefined();
    expect(birth.data!.resolveBundle!.materials.find((x) => x.name === '出生医学证明')).toMatchObject({ outcome: 'PROVIDED_BY_LICENCE', itemCodes: [BIRTH, '350100-GF-0005'] });
  });
});
