import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { count } from 'drizzle-orm';
import type { HubContext, Role } from '../core/context.ts';
import { makeUscc } from '../core/ids.ts';
import { createLogger } from '../core/logger.ts';
import type { Db } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { exportCatalogue, importCatalogue, type GbtCatalogue } from '../directory/catalogue.ts';
import { createDepartment } from '../directory/departments.ts';
import { getCurrentResource, getResourceVersion, publishResource, registerResource, retireResource, type ResourceInput } from '../directory/resources.ts';
import { resources } from '../directory/schema.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';

const POLICE = DEMO_DEPARTMENTS[0];
const MARKET = DEMO_DEPARTMENTS[1];
const DATA_BUREAU = DEMO_DEPARTMENTS[4];

const log = createLogger({ level: 'silent' });

/** A context built by hand: resources.changed_by is plain text, so the client need not exist in `clients`. */
function ctxFor(db: Db, roles: Role[], department: string = DATA_BUREAU.code): HubContext {
  return { principal: { kind: 'client', clientId: `t-${roles.join('-')}`, name: 't', department, roles, permissions: [], tokenId: '', expiresAt: 0 }, db, requestId: 'r', log };
}

const POPULATION: ResourceInput = {
  code: '1-01-001/000001',
  name: '人口基础信息',
  category: 'BASE',
  baseKind: 'POPULATION',
  providerCode: POLICE.code,
  summary: '户籍人口的身份与出生信息',
  format: '库表',
  updateCycle: 'DAILY',
  sharingType: 'UNCONDITIONAL',
  sharingMethod: '接口调用',
  openType: 'NONE',
  relatedCodes: ['2-01-001/000001'],
  fields: [
    { code: 'id_number', name: '公民身份号码', dataType: 'C', length: 18, sensitive: true },
    { code: 'full_name', name: '姓名', dataType: 'C', length: 50, sensitive: true },
    { code: 'birth_date', name: '出生日期', dataType: 'D' },
  ],
};

const ENTERPRISE: ResourceInput = {
  code: '2-01-001/000001',
  name: '企业登记信息',
  category: 'THEME',
  providerCode: MARKET.code,
  format: 'API',
  updateCycle: 'HALF_YEARLY',
  sharingType: 'CONDITIONAL',
  sharingCondition: '仅限行政审批用途，按事项申请',
  sharingMethod: '接口调用',
  legalBasis: '《市场主体登记管理条例》',
  openType: 'CONDITIONAL',
  openCondition: '经申请后向社会开放',
  fields: [
    { code: 'uscc', name: '统一社会信用代码', dataType: 'C', length: 18 },
    { code: 'ent_name', name: '企业名称', dataType: 'C', length: 200 },
    { code: 'reg_capital', name: '注册资本', dataType: 'Y' },
  ],
};

const CASE_FILES: ResourceInput = {
  code: '3-01-001/000001',
  name: '刑事案件卷宗',
  category: 'DEPARTMENT',
  providerCode: POLICE.code,
  format: '文件',
  updateCycle: 'IRREGULAR',
  sharingType: 'NONE',
  legalBasis: '《中华人民共和国保守国家秘密法》第十三条',
  fields: [{ code: 'case_no', name: '案件编号', dataType: 'C', length: 32 }],
};

const ITEM_LIST: ResourceInput = {
  code: '3-01-002/000002',
  name: '行政审批事项公开清单',
  category: 'DEPARTMENT',
  providerCode: POLICE.code,
  format: 'FILE',
  updateCycle: 'REALTIME',
  sharingType: 'UNCONDITIONAL',
  openType: 'UNCONDITIONAL',
  fields: [
    { code: 'item_code', name: '事项编码', dataType: 'C', length: 40 },
    { code: 'item_name', name: '事项名称', dataType: 'C' },
  ],
};

const DRAFT: ResourceInput = {
  code: '3-02-001/000001',
  name: '个体工商户年报（草稿）',
  category: 'DEPARTMENT',
  providerCode: MARKET.code,
  sharingType: 'UNCONDITIONAL',
  fields: [{ code: 'report_year', name: '年报年度', dataType: 'I', length: 4 }],
};

const RETIRED: ResourceInput = {
  code: '3-02-002/000002',
  name: '旧版企业年报',
  category: 'DEPARTMENT',
  providerCode: MARKET.code,
  updateCycle: 'YEARLY',
  sharingType: 'UNCONDITIONAL',
  fields: [{ code: 'report_year', name: '年报年度', dataType: 'I', length: 4 }],
};

const PUBLISHED_CODES = [POPULATION, ENTERPRISE, CASE_FILES, ITEM_LIST].map((r) => r.code).sort();
const ALL_CODES = [...PUBLISHED_CODES, DRAFT.code, RETIRED.code].sort();

async function withDepartments(driver: Parameters<typeof createTestDatabase>[0]): Promise<TestDatabase> {
  const tdb = await createTestDatabase(driver);
  for (const d of DEMO_DEPARTMENTS) await createDepartment(tdb.database.db, d);
  return tdb;
}

const resourceCount = async (db: Db): Promise<number> => (await db.select({ n: count() }).from(resources))[0]!.n;

/** Sent between hubs as text: what arrives is the parsed JSON, not the exporter's objects. */
const overTheWire = <T>(doc: unknown): T => JSON.parse(JSON.stringify(doc)) as T;

const withoutTime = (doc: GbtCatalogue) => ({ ...doc, 导出时间: undefined });

describe.each(drivers())('resource catalogue export and import (%s)', (driver) => {
  let a: TestDatabase;
  let b: TestDatabase;
  let admin: HubContext;

  beforeAll(async () => {
    [a, b] = await Promise.all([withDepartments(driver), withDepartments(driver)]);
    admin = ctxFor(a.database.db, ['admin']);
    for (const input of [POPULATION, ENTERPRISE, CASE_FILES, ITEM_LIST, DRAFT, RETIRED]) await registerResource(admin, input);
    for (const input of [POPULATION, ENTERPRISE, CASE_FILES, ITEM_LIST, RETIRED]) await publishResource(admin, input.code);
    await retireResource(admin, RETIRED.code, '已由 3-02-001/000001 取代');
  });
  afterAll(async () => {
    await Promise.all([a?.drop(), b?.drop()]);
  });

  it('exports GB/T 21063.3 metadata names and values', async () => {
    const doc = (await exportCatalogue(admin, 'GBT21063')) as GbtCatalogue;
    expect(doc.标准).toBe('GB/T 21063.3-2007');
    expect(new Date(doc.导出时间).toISOString()).toBe(doc.导出时间);
    expect(doc.资源.map((r) => r.信息资源代码)).toEqual(ALL_CODES);
    const population = doc.资源.find((r) => r.信息资源代码 === POPULATION.code)!;
    expect(population).toMatchObject({
      信息资源分类: '基础',
      信息资源名称: '人口基础信息',
      信息资源提供方: POLICE.name,
      信息资源提供方代码: POLICE.code,
      信息资源格式: '库表',
      更新周期: '每日',
      关联资源代码: ['2-01-001/000001'],
      基础库类型: 'POPULATION',
      版本: 1,
      状态: 'PUBLISHED',
      共享属性: { 共享类型: '无条件共享', 共享方式: '接口调用' },
      开放属性: { 是否向社会开放: '否', 开放条件: null },
    });
    expect(population.发布日期).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(population.信息项信息[0]).toEqual({ 信息项名称: '公民身份号码', 信息项代码: 'id_number', 数据类型: 'C', 数据长度: 18, 是否敏感: '是' });
    expect(population.信息项信息[2]).toEqual({ 信息项名称: '出生日期', 信息项代码: 'birth_date', 数据类型: 'D', 数据长度: null, 是否敏感: '否' });
    const enterprise = doc.资源.find((r) => r.信息资源代码 === ENTERPRISE.code)!;
    expect(enterprise.共享属性).toEqual({ 共享类型: '有条件共享', 共享条件: '仅限行政审批用途，按事项申请', 共享方式: '接口调用', 不予共享依据: '《市场主体登记管理条例》' });
    expect(enterprise.开放属性).toMatchObject({ 是否向社会开放: '是', 开放条件: '经申请后向社会开放' });
    expect(enterprise.更新周期).toBe('每半年');
    expect(doc.资源.find((r) => r.信息资源代码 === CASE_FILES.code)!.共享属性).toMatchObject({ 共享类型: '不予共享', 不予共享依据: CASE_FILES.legalBasis });
    expect(doc.资源.find((r) => r.信息资源代码 === DRAFT.code)).toMatchObject({ 状态: 'DRAFT', 发布日期: null });
    expect(doc.资源.find((r) => r.信息资源代码 === RETIRED.code)).toMatchObject({ 状态: 'RETIRED', 停用原因: '已由 3-02-001/000001 取代' });
  });

  it('round-trips: export, import into a fresh hub, export again gives the same document', async () => {
    const first = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    const adminB = ctxFor(b.database.db, ['admin']);
    expect(await importCatalogue(adminB, first)).toEqual({ created: 6, updated: 0, unchanged: 0 });
    const second = (await exportCatalogue(adminB, 'GBT21063')) as GbtCatalogue;
    expect(withoutTime(overTheWire(second))).toEqual(withoutTime(first));
    const imported = await getCurrentResource(b.database.db, POPULATION.code);
    expect(imported).toMatchObject({ version: 1, current: true, status: 'PUBLISHED', changedBy: adminB.principal.clientId });
    expect(await getCurrentResource(b.database.db, DRAFT.code)).toMatchObject({ status: 'DRAFT', publishedAt: null });
  });

  it('counts an unchanged catalogue as unchanged and writes nothing', async () => {
    const doc = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    const before = await resourceCount(a.database.db);
    expect(await importCatalogue(admin, doc)).toEqual({ created: 0, updated: 0, unchanged: 6 });
    expect(await resourceCount(a.database.db)).toBe(before);
  });

  it('a changed published resource gets version 2, version 1 stays readable; a draft changes in place', async () => {
    const doc = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    doc.资源.find((r) => r.信息资源代码 === POPULATION.code)!.信息资源名称 = '人口基础信息（户籍）';
    doc.资源.find((r) => r.信息资源代码 === DRAFT.code)!.信息资源摘要 = '年报草稿';
    expect(await importCatalogue(admin, doc)).toEqual({ created: 0, updated: 2, unchanged: 4 });

    const current = await getCurrentResource(a.database.db, POPULATION.code);
    expect(current).toMatchObject({ version: 2, current: true, status: 'PUBLISHED', name: '人口基础信息（户籍）' });
    const v1 = await getResourceVersion(a.database.db, POPULATION.code, 1);
    expect(v1).toMatchObject({ version: 1, current: false, name: '人口基础信息' });
    expect(await getCurrentResource(a.database.db, DRAFT.code)).toMatchObject({ version: 1, status: 'DRAFT', summary: '年报草稿' });

    const again = (await exportCatalogue(admin, 'GBT21063')) as GbtCatalogue;
    expect(again.资源.find((r) => r.信息资源代码 === POPULATION.code)).toMatchObject({ 版本: 2, 信息资源名称: '人口基础信息（户籍）' });
  });

  it('refuses a bad entry, naming it, and writes nothing', async () => {
    const doc = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    const before = await resourceCount(a.database.db);
    // Entry 0 would be new (so a partial write would show), entry 1 has a 数据类型 outside GB/T 21063.
    doc.资源[0]!.信息资源代码 = '1-01-009/000009';
    doc.资源[1]!.信息项信息[0]!.数据类型 = 'VARCHAR2';
    await expect(importCatalogue(admin, doc)).rejects.toMatchObject({
      code: 'BAD_USER_INPUT',
      extensions: { field: '资源[1].fields[0].dataType' },
    });
    expect(await resourceCount(a.database.db)).toBe(before);

    const unknown = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    // A well-formed 统一社会信用代码 that no department here has.
    unknown.资源[2]!.信息资源提供方代码 = makeUscc('11', '350100', '00350099');
    await expect(importCatalogue(admin, unknown)).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: '资源[2].providerCode' } });

    const badCycle = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    badCycle.资源[3]!.更新周期 = '每两天';
    await expect(importCatalogue(admin, badCycle)).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: '资源[3].updateCycle' } });
    expect(await resourceCount(a.database.db)).toBe(before);
  });

  it('rolls the whole import back when a later entry cannot be written (a retired resource cannot change)', async () => {
    const doc = overTheWire<GbtCatalogue>(await exportCatalogue(admin, 'GBT21063'));
    const before = await resourceCount(a.database.db);
    const fresh = { ...doc.资源[0]!, 信息资源代码: '1-01-009/000009', 信息资源名称: '新增资源' };
    const retired = doc.资源.find((r) => r.信息资源代码 === RETIRED.code)!;
    retired.信息资源名称 = '旧版企业年报（改）';
    await expect(importCatalogue(admin, { ...doc, 资源: [fresh, ...doc.资源] })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await resourceCount(a.database.db)).toBe(before);
    expect(await getCurrentResource(a.database.db, '1-01-009/000009')).toBeUndefined();
  });

  it('lets only admins import', async () => {
    const doc = await exportCatalogue(admin, 'GBT21063');
    for (const roles of [['provider'], ['consumer', 'auditor']] as Role[][]) {
      await expect(importCatalogue(ctxFor(a.database.db, roles, POLICE.code), doc)).rejects.toMatchObject({ code: 'FORBIDDEN' });
    }
  });

  it('exports only published resources to non-admins', async () => {
    for (const roles of [['consumer'], ['provider']] as Role[][]) {
      // A provider's own draft stays out too: the catalogue leaves the hub.
      const doc = (await exportCatalogue(ctxFor(a.database.db, roles, MARKET.code), 'GBT21063')) as GbtCatalogue;
      expect(doc.资源.map((r) => r.信息资源代码)).toEqual(PUBLISHED_CODES);
      expect(doc.资源.every((r) => r.状态 === 'PUBLISHED')).toBe(true);
    }
  });

  it('exports DCAT-AP JSON-LD with EU authority-table URIs', async () => {
    const doc = overTheWire<Record<string, unknown>>(await exportCatalogue(ctxFor(a.database.db, ['consumer']), 'DCAT_AP'));
    expect(doc['@type']).toBe('dcat:Catalog');
    expect(doc['@context']).toMatchObject({
      dcat: 'http://www.w3.org/ns/dcat#',
      dct: 'http://purl.org/dc/terms/',
      foaf: 'http://xmlns.com/foaf/0.1/',
      xsd: 'http://www.w3.org/2001/XMLSchema#',
      hub: 'urn:hub:vocab#',
    });
    const datasets = doc['dcat:dataset'] as Record<string, unknown>[];
    expect(datasets.map((d) => d['dct:identifier'])).toEqual(PUBLISHED_CODES);
    expect(datasets.every((d) => d['@type'] === 'dcat:Dataset')).toBe(true);
    const byCode = (code: string) => datasets.find((d) => d['dct:identifier'] === code)!;
    const access = 'http://publications.europa.eu/resource/authority/access-right/';
    const frequency = 'http://publications.europa.eu/resource/authority/frequency/';

    const population = byCode(POPULATION.code);
    expect(population).toMatchObject({
      'dct:title': { '@value': '人口基础信息（户籍）', '@language': 'zh' },
      'dct:description': { '@value': POPULATION.summary, '@language': 'zh' },
      'dct:publisher': { '@type': 'foaf:Agent', 'foaf:name': POLICE.name, 'dct:identifier': POLICE.code },
      'dct:accessRights': { '@id': `${access}NON_PUBLIC` },
      'dct:accrualPeriodicity': { '@id': `${frequency}DAILY` },
      'dct:issued': { '@type': 'xsd:date' },
      'hub:sharingType': 'UNCONDITIONAL',
      'hub:version': 2,
    });
    expect((population['dct:conformsTo'] as { '@id': string })['@id']).toMatch(/^urn:.*21063\.3-2007$/);
    expect((population['dct:issued'] as { '@value': string })['@value']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(population['dcat:keyword']).toEqual(['公民身份号码', '姓名', '出生日期'].map((k) => ({ '@value': k, '@language': 'zh' })));
    expect((population['hub:fields'] as unknown[])[0]).toEqual({ 信息项名称: '公民身份号码', 信息项代码: 'id_number', 数据类型: 'C', 数据长度: 18, 是否敏感: '是' });

    expect(byCode(ENTERPRISE.code)).toMatchObject({
      'dct:accessRights': { '@id': `${access}RESTRICTED` },
      'dct:accrualPeriodicity': { '@id': `${frequency}ANNUAL_2` },
      'dct:publisher': { 'foaf:name': MARKET.name, 'dct:identifier': MARKET.code },
      'hub:sharingType': 'CONDITIONAL',
    });
    expect(byCode(ITEM_LIST.code)).toMatchObject({
      'dct:accessRights': { '@id': `${access}PUBLIC` },
      'dct:accrualPeriodicity': { '@id': `${frequency}UPDATE_CONT` },
    });
    expect(byCode(CASE_FILES.code)).toMatchObject({ 'dct:accrualPeriodicity': { '@id': `${frequency}IRREG` }, 'hub:sharingType': 'NONE' });
  });

  it('refuses an unknown export format', async () => {
    await expect(exportCatalogue(admin, 'CSV' as 'GBT21063')).rejects.toMatchObject({ code: 'BAD_USER_INPUT', extensions: { field: 'format' } });
  });
});
