import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditLog } from '../audit/checkpoints.ts';
import { readClientFile } from '../auth/client-file.ts';
import { auditPublicKey } from '../auth/keys.ts';
import { runSync } from '../connectors/sync.ts';
import { approvedSource, testSources } from './helpers/sources.ts';
import { systemContext } from '../core/context.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { currentCores, recordsBySubject } from '../basedata/store.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { DEMO_RESOURCES } from '../db/seeds/demo-directory.ts';
import { createTestDatabase, drivers, redisUrl, type TestDatabase } from './helpers/db.ts';
import { startTestHub, type TestHub } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const ALICE = '11010519491231002X';
const BOB = '360426199101010071';
const NOBODY = '440524188001010014';
const COMPANY = '91350100M000100Y43';
const ITEM = '350100-DJ-0001';

const personRecord = (sfzh: string, over: Record<string, unknown> = {}) => ({
  id: `P-${sfzh}`,
  sfzh,
  xm: sfzh === ALICE ? '王丽' : '李强',
  xb: Number(sfzh[16]) % 2 === 1 ? '1' : '2',
  mz: '01',
  csrq: sfzh.slice(6, 14),
  csd: '北京市朝阳区',
  hjdz: '北京市朝阳区建国路88号',
  hjdjjg: '北京市公安局朝阳分局',
  hyzk: '10',
  swbs: '0',
  ...over,
});

describe.each(drivers())('the query API (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let consumer: string;
  let provider: string;
  const popFile = () => path.join(dir, DEMO_DEPARTMENTS[0].code, 'population.jsonl');
  const writePop = (recs: Record<string, unknown>[]) => {
    fs.writeFileSync(popFile(), recs.map((r) => JSON.stringify(r)).join('\n'));
    fs.utimesSync(popFile(), new Date(), new Date(Date.now() + Math.random() * 1e6));
  };

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-query-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: 'http://hub.test/oauth/token', logger: log });
    consumer = await hub.token(readClientFile(path.join(dir, 'demo-client.json')));
    provider = await hub.token(await hub.newClient(['provider'], { department: DEMO_DEPARTMENTS[0].code }));
    for (const d of DEMO_DEPARTMENTS.slice(0, 3)) fs.mkdirSync(path.join(dir, d.code));
    writePop([personRecord(ALICE), personRecord(BOB)]);
    // the demo's directory names 公安, 市场监管 and 信用办 as the providers of the base resources: their sources
    await approvedSource(tdb.database.db, { id: 'pop-file', name: '人口', departmentCode: DEMO_DEPARTMENTS[0].code, kind: 'population', adapter: 'file', config: { path: 'population.jsonl', format: 'jsonl' } }, { designate: false });
    expect((await runSync(tdb.database, 'pop-file', testSources({ importDir: dir }))).inserted).toBe(2);
    const lpFile = path.join(dir, DEMO_DEPARTMENTS[1].code, 'lp.jsonl');
    fs.writeFileSync(lpFile, JSON.stringify({ id: 'L1', tyshxydm: COMPANY, qymc: '福州示例科技有限公司', qylx: '有限责任公司', fddbr: '王丽', fddbrzjhm: ALICE, zczb: 500, clrq: '2018-03-01', zs: '福州市鼓楼区', jyfw: '软件开发', djjg: '福州市市场监督管理局', djzt: '存续', hzrq: '2024-01-02' }));
    await approvedSource(tdb.database.db, { id: 'lp-file', name: '法人', departmentCode: DEMO_DEPARTMENTS[1].code, kind: 'legal_person', adapter: 'file', config: { path: 'lp.jsonl', format: 'jsonl' } }, { designate: false });
    await runSync(tdb.database, 'lp-file', testSources({ importDir: dir }));
    const crFile = path.join(dir, DEMO_DEPARTMENTS[2].code, 'credit.jsonl');
    fs.writeFileSync(
      crFile,
      [
        { id: 'C1', ztdm: COMPANY, ztmc: '福州示例科技有限公司', lb: 'BLACK', lrjg: '福州市税务局', lryy: '欠税', yj: '《税收征收管理法》', lrrq: '2026-01-05', yxq: '2029-01-05', xfrq: null, cs: ['JC-0101'] },
        { id: 'C2', ztdm: COMPANY, ztmc: '福州示例科技有限公司', lb: 'BLACK', lrjg: '福州市人社局', lryy: '拖欠工资', yj: '《保障农民工工资支付条例》', lrrq: '2025-01-05', yxq: '2028-01-05', xfrq: '2026-03-01', cs: ['JC-0205'] },
        { id: 'C3', ztdm: COMPANY, ztmc: '福州示例科技有限公司', lb: 'PERMIT', lrjg: '福州市市场监管局', lryy: '食品经营许可', yj: '《食品安全法》', lrrq: '2024-05-05', yxq: null, xfrq: null, cs: [] },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    await approvedSource(tdb.database.db, { id: 'cr-file', name: '信用', departmentCode: DEMO_DEPARTMENTS[2].code, kind: 'credit', adapter: 'file', config: { path: 'credit.jsonl', format: 'jsonl' } }, { designate: false });
    await runSync(tdb.database, 'cr-file', testSources({ importDir: dir }));
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const PERSON = `query($id: String!, $p: PurposeInput!, $asOf: String) { person(idNumber: $id, purpose: $p, asOf: $asOf) { idNumber name householdAddress maritalStatus provenance { resourceCode sourceDepartment version } } }`;
  const purpose = { itemCode: ITEM, caseId: 'FZ-2026-000123', operator: '窗口张三' };
  const code = (r: { body: { errors?: { extensions?: Record<string, unknown> }[] } }) => r.body.errors?.[0]?.extensions;
  const entry = async (id: string) => (await rows<Record<string, unknown>>(tdb.database.db, sql`select * from audit_entries where seq = ${Number(id)}`))[0]!;

  it('reads just the selected 信息项 out of each record, and requests with other selections get theirs (the first reads of the file)', async () => {
    const db = tdb.database.db;
    const [whole] = await recordsBySubject(db, 'population', [ALICE]);
    expect(Object.keys(whole!.data).length).toBeGreaterThan(5);
    expect(whole!.data).toMatchObject({ name: '王丽', householdAddress: '北京市朝阳区建国路88号' });
    const [some] = await recordsBySubject(db, 'population', [ALICE], undefined, ['name', 'maritalStatus', 'nosuch']);
    expect(some!.data).toEqual({ name: '王丽', maritalStatus: whole!.data.maritalStatus, nosuch: null });
    expect(typeof whole!.data.maritalStatus).toBe('string');
    expect(some).toMatchObject({ key: ALICE, subject: ALICE, version: whole!.version, recordedAt: whole!.recordedAt });
    // a name that is not a plain identifier is not written into a statement: the whole record is read
    const [odd] = await recordsBySubject(db, 'population', [ALICE], undefined, ["name' || 'x"]);
    expect(odd!.data).toEqual(whole!.data);
    // a read that does not show provenance takes the same data with key and version only
    expect(await currentCores(db, 'population', [ALICE, '110101199003070000'], ['name', 'maritalStatus', 'nosuch'])).toEqual([
      { kind: 'population', key: ALICE, subject: ALICE, version: whole!.version, data: some!.data },
    ]);
    expect(await currentCores(db, 'population', [ALICE])).toEqual([{ kind: 'population', key: ALICE, subject: ALICE, version: whole!.version, data: whole!.data }]);
    expect((await currentCores(db, 'population', [ALICE], ["name' || 'x"]))[0]!.data).toEqual(whole!.data);
    const q = (sel: string) => hub.graphql(`query($ids: [String!]!, $p: PurposeInput!) { persons(idNumbers: $ids, purpose: $p) { ${sel} } }`, consumer, { ids: [ALICE, BOB], p: purpose });
    const [a, b, c] = await Promise.all([q('name'), q('idNumber'), q('name ... on Person { provenance { version connector } }')]);
    expect(a.body.data!.persons).toEqual([{ name: '王丽' }, { name: '李强' }]);
    expect(b.body.data!.persons).toEqual([{ idNumber: ALICE }, { idNumber: BOB }]);
    // the same 信息项 with provenance (here in a fragment) in the same tick: read with it, by a loader of its own
    expect(c.body.data!.persons).toEqual([
      { name: '王丽', provenance: { version: whole!.version, connector: whole!.connectorId } },
      { name: '李强', provenance: { version: 1, connector: whole!.connectorId } },
    ]);
  });

  it('answers a granted read: only the selected 信息项, sensitive ones masked unless granted unmasked, with provenance and its audit id', async () => {
    const r = await hub.graphql(PERSON, consumer, { id: ALICE, p: purpose });
    expect(r.body.errors).toBeUndefined();
    expect(r.body.data!.person).toEqual({
      idNumber: ALICE, // granted unmasked
      name: '王丽',
      householdAddress: '北京市朝****', // sensitive, masked: the first third kept
      maritalStatus: '未婚',
      provenance: { resourceCode: DEMO_RESOURCES.population, sourceDepartment: DEMO_DEPARTMENTS[0].code, version: 1 },
    });
    const ids = (r.body as { extensions?: { auditIds?: string[] } }).extensions?.auditIds;
    expect(ids).toHaveLength(1);
    expect(await entry(ids![0]!)).toMatchObject({ operation: 'PERSON_READ', outcome: 'RETURNED', subject: ALICE, item_code: ITEM, case_id: 'FZ-2026-000123', operator: '窗口张三', fields: ['idNumber', 'name', 'householdAddress', 'maritalStatus'] });
  });

  it('answers null for an unknown subject, and records that read too', async () => {
    const r = await hub.graphql(PERSON, consumer, { id: NOBODY, p: purpose });
    expect(r.body.data!.person).toBeNull();
    const ids = (r.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds!;
    expect(await entry(ids[0]!)).toMatchObject({ outcome: 'NOT_FOUND', subject: NOBODY });
  });

  it('checks in the contract\'s order, recording each refusal', async () => {
    expect((await hub.graphql(PERSON, undefined, { id: 'nonsense', p: purpose })).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(code(await hub.graphql(PERSON, provider, { id: '110101199003077777', p: { itemCode: '' } }))).toMatchObject({ code: 'INVALID_ID_NUMBER' });
    expect(code(await hub.graphql(PERSON, provider, { id: ALICE, p: { itemCode: '' } }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(code(await hub.graphql(PERSON, consumer, { id: ALICE, p: { itemCode: '  ' } }))).toMatchObject({ code: 'PURPOSE_REQUIRED' });
    expect(code(await hub.graphql(PERSON, consumer, { id: ALICE, p: { itemCode: 'NOT-AN-ITEM' } }))).toMatchObject({ code: 'PURPOSE_REQUIRED' });
    const refused = await hub.graphql(PERSON, consumer, { id: '110101199003077777', p: purpose });
    expect(code(refused)).toMatchObject({ code: 'INVALID_ID_NUMBER' });
    const ids = (refused.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds!;
    expect(await entry(ids[0]!)).toMatchObject({ outcome: 'REFUSED', reason: 'INVALID_ID_NUMBER' });
  });

  it('refuses 信息项 outside the grant with GRANT_MISSING naming them', async () => {
    // the demo grants the social-insurance resource only some 信息项; here: a legal-person field the grant lacks is impossible, so narrow
    const sys = systemContext(tdb.database.db, log, DEMO_DEPARTMENTS[0].code);
    const grants = await rows<{ id: string }>(tdb.database.db, sql`select id from grants where resource_code = ${DEMO_RESOURCES.population} and revoked_at is null`);
    const { revokeGrant } = await import('../directory/access.ts');
    for (const g of grants) await revokeGrant(sys, g.id, '收窄授权');
    const { requestAccess, decideAccessRequest } = await import('../directory/access.ts');
    const asConsumer = { ...sys, principal: { ...sys.principal, clientId: 'demo-approval-system', department: DEMO_DEPARTMENTS[3].code, roles: ['consumer' as const] } };
    const req = await requestAccess(asConsumer, { resourceCode: DEMO_RESOURCES.population, fields: ['idNumber', 'name'], itemCodes: [ITEM], purpose: '核验身份' });
    await decideAccessRequest(sys, req.id, { approve: true, reason: '同意' });
    await expect
      .poll(async () => code(await hub.graphql(PERSON, consumer, { id: ALICE, p: purpose })), { timeout: 3000 })
      .toMatchObject({ code: 'GRANT_MISSING', missing: { resource: DEMO_RESOURCES.population, fields: ['householdAddress', 'maritalStatus'], itemCode: ITEM } });
    const masked = await hub.graphql(`query($p: PurposeInput!) { person(idNumber: "${ALICE}", purpose: $p) { idNumber name } }`, consumer, { p: purpose });
    expect(masked.body.data!.person).toEqual({ idNumber: '110105********002X', name: '王丽' }); // no longer granted unmasked
    const otherItem = await hub.graphql(`query($p: PurposeInput!) { person(idNumber: "${ALICE}", purpose: $p) { name } }`, consumer, { p: { itemCode: '350100-DJ-0006' } });
    expect(code(otherItem)).toMatchObject({ code: 'GRANT_MISSING', missing: { itemCode: '350100-DJ-0006' } });
  });

  it('answers what the hub held on an earlier date (asOf)', async () => {
    const before = new Date();
    await new Promise((r) => setTimeout(r, 20));
    writePop([personRecord(ALICE, { hyzk: '20' }), personRecord(BOB)]);
    expect((await runSync(tdb.database, 'pop-file', testSources({ importDir: dir }))).updated).toBe(1);
    const q = `query($p: PurposeInput!, $asOf: String) { person(idNumber: "${ALICE}", purpose: $p, asOf: $asOf) { name provenance { version } } }`;
    const now = await hub.graphql(q, consumer, { p: purpose });
    expect(now.body.data!.person).toEqual({ name: '王丽', provenance: { version: 2 } });
    const then = await hub.graphql(q, consumer, { p: purpose, asOf: before.toISOString() });
    expect(then.body.data!.person).toEqual({ name: '王丽', provenance: { version: 1 } });
  });

  it('reads up to 100 subjects at once, each its own audit entry, in the order asked', async () => {
    const r = await hub.graphql(`query($ids: [String!]!, $p: PurposeInput!) { persons(idNumbers: $ids, purpose: $p) { name } }`, consumer, { ids: [BOB, NOBODY, ALICE], p: purpose });
    expect(r.body.data!.persons).toEqual([{ name: '李强' }, null, { name: '王丽' }]);
    const auditIds = (r.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds!;
    expect(auditIds).toHaveLength(3);
    const [bob, nobody] = await Promise.all(auditIds.map(entry));
    expect(bob).toMatchObject({ subject: BOB, outcome: 'RETURNED', details: { asOf: null, unmasked: [], versions: [expect.stringMatching(new RegExp(`^${BOB}@\\d+$`))] } });
    expect(nobody).toMatchObject({ subject: NOBODY, outcome: 'NOT_FOUND', details: { asOf: null, unmasked: [], versions: [] } });
    // the details are written as canonical JSON by the read itself: the chain over every read so far (asOf ones too) holds
    expect(await verifyAuditLog(tdb.database.db, (kid) => auditPublicKey(tdb.database.db, kid))).toMatchObject({ ok: true });
    const tooMany = await hub.graphql(`query($ids: [String!]!, $p: PurposeInput!) { persons(idNumbers: $ids, purpose: $p) { name } }`, consumer, { ids: Array.from({ length: 101 }, () => ALICE), p: purpose });
    expect(code(tooMany)).toMatchObject({ code: 'BAD_USER_INPUT' });
  });

  it('refuses reads past the client\'s budget with RATE_LIMITED, recorded', async () => {
    const limited = await startTestHub(tdb.database, { env: { HUB_READ_RATE: '2' } });
    try {
      const q = `query($ids: [String!]!, $p: PurposeInput!) { persons(idNumbers: $ids, purpose: $p) { name } }`;
      const r = await limited.graphql(q, consumer, { ids: [ALICE, BOB, NOBODY], p: purpose });
      expect(code(r)).toMatchObject({ code: 'RATE_LIMITED', retryAfter: 1 });
      expect(r.body.data?.persons ?? null).toBeNull();
      const ids = (r.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds!;
      expect(await entry(ids[0]!)).toMatchObject({ outcome: 'REFUSED', reason: 'RATE_LIMITED' });
    } finally {
      await limited.close();
    }
  });

  it('returns no data when the audit entry cannot be written (fail closed)', async () => {
    const asOwner = async (q: string) => {
      if (driver === 'pg') {
        const pgm = await import('pg');
        const c = new pgm.default.Client({ connectionString: tdb.url });
        await c.connect();
        await c.query(q);
        await c.end();
      } else {
        await tdb.database.db.execute(sql`reset role`);
        await tdb.database.db.execute(sql.raw(q));
        await tdb.database.db.execute(sql`set role hub_app`);
      }
    };
    const NAME = `query($id: String!, $p: PurposeInput!) { person(idNumber: $id, purpose: $p) { name } }`;
    await asOwner('revoke insert on audit_entries from hub_app');
    try {
      const r = await hub.graphql(NAME, consumer, { id: ALICE, p: purpose });
      expect(r.body.data?.person ?? null).toBeNull();
      expect(r.body.errors?.[0]?.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(JSON.stringify(r.body)).not.toContain('王丽');
    } finally {
      await asOwner('grant insert on audit_entries to hub_app');
    }
    expect((await hub.graphql(NAME, consumer, { id: ALICE, p: purpose })).body.data?.person).toEqual({ name: '王丽' });
  });

  it('lets only a client with the withhold permission hide a read from the holder, recording the basis', async () => {
    const NAME = `query($id: String!, $p: PurposeInput!) { person(idNumber: $id, purpose: $p) { name } }`;
    const basis = '《刑事诉讼法》第一百五十二条：侦查期间暂不告知';
    expect(code(await hub.graphql(NAME, consumer, { id: BOB, p: { ...purpose, withholdBasis: basis } }))).toMatchObject({ code: 'FORBIDDEN' });
    const file = await hub.newClient(['consumer'], { department: DEMO_DEPARTMENTS[3].code, permissions: ['withhold'] });
    const sys = systemContext(tdb.database.db, log, DEMO_DEPARTMENTS[0].code);
    const { requestAccess, decideAccessRequest } = await import('../directory/access.ts');
    const req = await requestAccess({ ...sys, principal: { ...sys.principal, clientId: file.client_id, department: DEMO_DEPARTMENTS[3].code, roles: ['consumer'] } }, { resourceCode: DEMO_RESOURCES.population, fields: ['name'], itemCodes: [ITEM], purpose: '侦查协查' });
    await decideAccessRequest(sys, req.id, { approve: true, reason: '依法协查' });
    const investigator = await hub.token(file);
    const r = await hub.graphql(NAME, investigator, { id: BOB, p: { ...purpose, caseId: 'ZC-2026-7', withholdBasis: basis } });
    expect(r.body.data!.person).toEqual({ name: '李强' });
    const id = (r.body as { extensions?: { auditIds?: string[] } }).extensions!.auditIds![0]!;
    expect(await entry(id)).toMatchObject({ outcome: 'RETURNED', withhold_basis: basis, case_id: 'ZC-2026-7' });
    const { issueHolderToken } = await import('../auth/holders.ts');
    const bob = (await issueHolderToken({ db: hub.services.database.db, keys: hub.services.keys, issuer: 'http://hub.test', oidcIssuer: undefined }, BOB)).token;
    const mine = await hub.graphql('{ myAccessLog { edges { node { caseId } } } }', bob);
    const cases = (mine.body.data!.myAccessLog as { edges: { node: { caseId: string } }[] }).edges.map((e) => e.node.caseId);
    expect(cases).not.toContain('ZC-2026-7');
    expect(cases.length).toBeGreaterThan(0);
  });

  it('answers legal persons and credit profiles, repaired and expired entries off the lists', async () => {
    const lp = await hub.graphql(`query($p: PurposeInput!) { legalPerson(uscc: "${COMPANY}", purpose: $p) { name status registeredCapital legalRepresentative { name idNumber } } }`, consumer, { p: purpose });
    expect(lp.body.data!.legalPerson).toEqual({ name: '福州示例科技有限公司', status: 'EXISTING', registeredCapital: 500, legalRepresentative: { name: '王丽', idNumber: '110105********002X' } });
    expect(code(await hub.graphql(`query($p: PurposeInput!) { legalPerson(uscc: "911100001000000000", purpose: $p) { name } }`, consumer, { p: purpose }))).toMatchObject({ code: 'INVALID_USCC' });
    const cr = await hub.graphql(`query($p: PurposeInput!) { creditProfile(subjectCode: "${COMPANY}", purpose: $p) { blackList { entryId authority } permits { entryId } measures } }`, consumer, { p: purpose });
    expect(cr.body.data!.creditProfile).toEqual({ blackList: [{ entryId: 'C1', authority: '福州市税务局' }], permits: [{ entryId: 'C3' }], measures: ['JC-0101'] });
  });
});

describe('rate limits on reads', () => {
  it('refuses a client past its budget with RATE_LIMITED and retryAfter, in this process and across processes through Redis', async () => {
    const { createReadLimiter } = await import('../basedata/rate-limit.ts');
    const local = createReadLimiter({ pointsPerSecond: 3 });
    await local.consume('a', 3);
    const refused = await local.consume('a', 1).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', extensions: { code: 'RATE_LIMITED', retryAfter: 1 } });
    await local.consume('b', 3); // per client
    const url = redisUrl();
    if (!url) return expect(process.env.HUB_REQUIRE_SERVICES).not.toBe('1');
    const { Redis } = await import('ioredis');
    const r1 = new Redis(url);
    const r2 = new Redis(url);
    try {
      const client = `client-${Math.random()}`;
      const one = createReadLimiter({ pointsPerSecond: 5, redis: r1 });
      const two = createReadLimiter({ pointsPerSecond: 5, redis: r2 });
      await one.consume(client, 3);
      await expect(two.consume(client, 3)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    } finally {
      r1.disconnect();
      r2.disconnect();
    }
  });
});
