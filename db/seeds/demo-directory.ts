import { and, eq } from 'drizzle-orm';
import { systemContext, type HubContext } from '../../core/context.ts';
import { makeUscc } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import { decideAccessRequest, requestAccess } from '../../directory/access.ts';
import { calendarYear, loadWorkingCalendar } from '../../directory/calendar.ts';
import { STATE_COUNCIL_CALENDARS } from '../../directory/calendar-data.ts';
import { registerBundle, registerServiceItem, type ServiceItemInput } from '../../directory/items.ts';
import { getCurrentResource, publishResource, registerResource, type ResourceInput } from '../../directory/resources.ts';
import { accessRequests } from '../../directory/schema.ts';
import type { Db } from '../index.ts';

/** National bodies that define licence types (their codes are demo values with valid check characters). */
const NATIONAL = {
  mps: '11100000000013338W', // the DOMAIN.md vector, used here as the 居民身份证 defining body
  samr: makeUscc('11', '100000', '00000013'),
  nhc: makeUscc('11', '100000', '00000021'),
  mca: makeUscc('11', '100000', '00000038'),
  mnr: makeUscc('11', '100000', '00000046'),
};

/** 电子证照类型代码 = defining body's USCC + 3-character sequence (GB/T 36904). */
export const DEMO_LICENCE_TYPES = {
  idCard: `${NATIONAL.mps}001`, // 居民身份证
  businessLicence: `${NATIONAL.samr}001`, // 营业执照
  birthCertificate: `${NATIONAL.nhc}001`, // 出生医学证明
  marriageCertificate: `${NATIONAL.mca}001`, // 结婚证
  propertyCertificate: `${NATIONAL.mnr}001`, // 不动产权证书
};

export const DEMO_RESOURCES = {
  population: '1-01-001/000001',
  legalPerson: '1-02-001/000001',
  licence: '1-03-001/000001',
  credit: '1-05-001/000001',
  socialInsurance: '3-07-001/000001',
  householdArchive: '3-01-002/000001',
};

type Departments = {
  police: string;
  market: string;
  credit: string;
  approval: string;
  data: string;
  hrss: string;
};

function resourceInputs(d: Departments): ResourceInput[] {
  const f = (code: string, name: string, dataType = 'C', length: number | null = null, sensitive = false) => ({ code, name, dataType, length, sensitive });
  return [
    {
      code: DEMO_RESOURCES.population,
      name: '人口基础信息',
      category: 'BASE',
      baseKind: 'POPULATION',
      providerCode: d.police,
      summary: '户籍人口的身份、出生、婚姻与户籍登记信息，供依申请事项核验申请人身份与户籍状况。',
      format: 'API',
      updateCycle: 'DAILY',
      sharingType: 'CONDITIONAL',
      sharingCondition: '仅限办理政务服务事项时核验申请人身份，按事项申请共享',
      sharingMethod: '接口',
      legalBasis: '《中华人民共和国居民身份证法》《政务数据共享条例》',
      fields: [
        f('idNumber', '公民身份号码', 'C', 18, true),
        f('name', '姓名', 'C', 50),
        f('gender', '性别', 'C', 1),
        f('ethnicity', '民族', 'C', 2),
        f('birthDate', '出生日期', 'D'),
        f('birthPlace', '出生地', 'C', 200),
        f('householdAddress', '户籍地址', 'C', 200, true),
        f('registrationAuthority', '户籍登记机关', 'C', 100),
        f('maritalStatus', '婚姻状况', 'C', 2),
        f('deceased', '死亡标识', 'L'),
      ],
    },
    {
      code: DEMO_RESOURCES.legalPerson,
      name: '法人单位基础信息',
      category: 'BASE',
      baseKind: 'LEGAL_PERSON',
      providerCode: d.market,
      summary: '企业、个体工商户等市场主体的登记信息：统一社会信用代码、名称、法定代表人、注册资本、住所、经营范围、登记状态。',
      format: 'API',
      updateCycle: 'REALTIME',
      sharingType: 'UNCONDITIONAL',
      sharingMethod: '接口',
      openType: 'UNCONDITIONAL',
      fields: [
        f('uscc', '统一社会信用代码', 'C', 18),
        f('name', '机构名称', 'C', 200),
        f('orgType', '机构类型', 'C', 50),
        f('legalRepresentative', '法定代表人', 'C', 100, true),
        f('registeredCapital', '注册资本', 'Y'),
        f('establishedOn', '成立日期', 'D'),
        f('address', '住所', 'C', 200),
        f('businessScope', '经营范围', 'M'),
        f('registrationAuthority', '登记机关', 'C', 100),
        f('status', '登记状态', 'C', 20),
        f('approvedOn', '核准日期', 'D'),
      ],
    },
    {
      code: DEMO_RESOURCES.licence,
      name: '电子证照目录信息',
      category: 'BASE',
      baseKind: 'LICENCE',
      providerCode: d.data,
      summary: '各部门签发的电子证照元数据与照面信息，用于免提交纸质证照。',
      format: 'API',
      updateCycle: 'REALTIME',
      sharingType: 'UNCONDITIONAL',
      sharingMethod: '接口',
      fields: [
        f('identifier', '证照标识', 'C', 100),
        f('typeCode', '证照类型代码', 'C', 21),
        f('number', '证照编号', 'C', 100),
        f('holderName', '持证主体', 'C', 200),
        f('holderCode', '持证主体代码', 'C', 18, true),
        f('issuerName', '颁发机构', 'C', 200),
        f('validUntil', '有效期截止日期', 'D'),
        f('status', '证照状态', 'C', 10),
        f('face', '照面信息', 'M', null, true), // its sensitive fields (住址, 配偶身份证件号码 …) leave masked unless granted unmasked
      ],
    },
    {
      code: DEMO_RESOURCES.credit,
      name: '公共信用信息',
      category: 'BASE',
      baseKind: 'CREDIT',
      providerCode: d.credit,
      summary: '守信激励红名单、失信惩戒黑名单、行政许可与行政处罚双公示信息、联合奖惩措施。',
      format: 'API',
      updateCycle: 'DAILY',
      sharingType: 'CONDITIONAL',
      sharingCondition: '用于办理事项时实施联合奖惩，须列明事项编码',
      sharingMethod: '接口',
      fields: [
        f('subjectCode', '主体代码', 'C', 18, true),
        f('redList', '红名单', 'M'),
        f('blackList', '黑名单', 'M'),
        f('sanctions', '行政处罚', 'M'),
        f('permits', '行政许可', 'M'),
        f('measures', '联合奖惩措施', 'M'),
      ],
    },
    {
      code: DEMO_RESOURCES.socialInsurance,
      name: '社会保险参保缴费信息',
      category: 'DEPARTMENT',
      providerCode: d.hrss,
      summary: '个人与单位的社会保险参保状态、缴费月数，可替代社保缴交证明。',
      format: 'API',
      updateCycle: 'MONTHLY',
      sharingType: 'CONDITIONAL',
      sharingCondition: '用于购房、落户、就业创业等事项的社保缴交核验',
      sharingMethod: '接口',
      fields: [
        f('idNumber', '公民身份号码', 'C', 18, true),
        f('insuredStatus', '参保状态', 'C', 2),
        f('insuranceTypes', '参保险种', 'C', 50),
        f('paidMonths', '累计缴费月数', 'I'),
        f('lastPaidMonth', '最近缴费年月', 'C', 6),
      ],
    },
    {
      code: DEMO_RESOURCES.householdArchive,
      name: '户籍档案影像',
      category: 'DEPARTMENT',
      providerCode: d.police,
      summary: '户籍档案原始纸质材料的扫描影像。',
      format: 'FILE',
      updateCycle: 'IRREGULAR',
      sharingType: 'NONE',
      legalBasis: '《户口登记条例》及公安机关档案管理规定：户籍档案原件影像不对外提供，仅可出具证明',
      fields: [f('idNumber', '公民身份号码', 'C', 18, true), f('archiveImages', '档案影像', 'G')],
    },
  ];
}

function serviceItemInputs(d: Departments & { nhc: string; nr: string }): ServiceItemInput[] {
  const { population, legalPerson, socialInsurance } = DEMO_RESOURCES;
  const T = DEMO_LICENCE_TYPES;
  return [
    {
      code: '350100-DJ-0001',
      name: '企业设立登记',
      departmentCode: d.market,
      measureCodes: ['JC-0101', 'JC-0205'],
      materials: [
        {
          code: 'M01',
          name: '法定代表人身份证明',
          sources: [{ kind: 'LICENCE', licenceTypeCode: T.idCard }, { kind: 'DATA', resourceCode: population, fields: ['idNumber', 'name'] }, { kind: 'SUBMIT' }],
        },
        { code: 'M02', name: '住所使用证明', sources: [{ kind: 'LICENCE', licenceTypeCode: T.propertyCertificate }, { kind: 'SUBMIT' }], tolerance: 'COMMITMENT', commitmentText: '本人承诺所提供的住所真实、合法、可用，如有不实愿承担法律责任。' },
        { code: 'M03', name: '公司章程', sources: [{ kind: 'SUBMIT' }] },
      ],
    },
    {
      code: '350100-BA-0002',
      name: '公章刻制备案',
      departmentCode: d.police,
      materials: [
        { code: 'M01', name: '营业执照', sources: [{ kind: 'LICENCE', licenceTypeCode: T.businessLicence }, { kind: 'DATA', resourceCode: legalPerson, fields: ['uscc', 'name', 'status'] }, { kind: 'SUBMIT' }] },
        { code: 'M02', name: '法定代表人身份证明', sources: [{ kind: 'LICENCE', licenceTypeCode: T.idCard }, { kind: 'DATA', resourceCode: population, fields: ['idNumber', 'name'] }, { kind: 'SUBMIT' }] },
      ],
    },
    {
      code: '350100-DJ-0003',
      name: '单位参保登记',
      departmentCode: d.hrss,
      materials: [
        { code: 'M01', name: '营业执照', sources: [{ kind: 'LICENCE', licenceTypeCode: T.businessLicence }, { kind: 'DATA', resourceCode: legalPerson, fields: ['uscc', 'name', 'status'] }, { kind: 'SUBMIT' }] },
        { code: 'M02', name: '银行开户信息', sources: [{ kind: 'SUBMIT' }], tolerance: 'RONGQUE', toleranceDays: 5 },
      ],
    },
    {
      code: '350100-QR-0004',
      name: '出生登记（户口登记）',
      departmentCode: d.police,
      materials: [
        { code: 'M01', name: '出生医学证明', sources: [{ kind: 'LICENCE', licenceTypeCode: T.birthCertificate }, { kind: 'SUBMIT' }] },
        { code: 'M02', name: '父母居民身份证', sources: [{ kind: 'LICENCE', licenceTypeCode: T.idCard }, { kind: 'DATA', resourceCode: population, fields: ['idNumber', 'name', 'householdAddress'] }, { kind: 'SUBMIT' }] },
        { code: 'M03', name: '父母结婚证', sources: [{ kind: 'LICENCE', licenceTypeCode: T.marriageCertificate }, { kind: 'DATA', resourceCode: population, fields: ['maritalStatus'] }, { kind: 'SUBMIT' }], tolerance: 'COMMITMENT', commitmentText: '本人承诺婚姻状况属实。' },
      ],
    },
    {
      code: '350100-GF-0005',
      name: '城乡居民医保参保登记（新生儿）',
      departmentCode: d.hrss,
      materials: [
        { code: 'M01', name: '出生医学证明', sources: [{ kind: 'LICENCE', licenceTypeCode: T.birthCertificate }, { kind: 'SUBMIT' }] },
        { code: 'M02', name: '监护人居民身份证', sources: [{ kind: 'LICENCE', licenceTypeCode: T.idCard }, { kind: 'DATA', resourceCode: population, fields: ['idNumber', 'name'] }, { kind: 'SUBMIT' }] },
      ],
    },
    {
      code: '350100-DJ-0006',
      name: '不动产转移登记（二手房）',
      departmentCode: d.nr,
      measureCodes: ['JC-0301'],
      materials: [
        { code: 'M01', name: '不动产权证书', sources: [{ kind: 'LICENCE', licenceTypeCode: T.propertyCertificate }, { kind: 'SUBMIT' }] },
        { code: 'M02', name: '买卖双方身份证明', sources: [{ kind: 'LICENCE', licenceTypeCode: T.idCard }, { kind: 'DATA', resourceCode: population, fields: ['idNumber', 'name'] }, { kind: 'SUBMIT' }] },
        { code: 'M03', name: '婚姻状况证明', sources: [{ kind: 'DATA', resourceCode: population, fields: ['maritalStatus'] }, { kind: 'LICENCE', licenceTypeCode: T.marriageCertificate }, { kind: 'SUBMIT' }], tolerance: 'COMMITMENT', commitmentText: '本人承诺所申报的婚姻状况真实。' },
        { code: 'M04', name: '购房资格（社保缴交）证明', sources: [{ kind: 'DATA', resourceCode: socialInsurance, fields: ['idNumber', 'paidMonths', 'insuredStatus'] }, { kind: 'SUBMIT' }] },
        { code: 'M05', name: '契税完税凭证', sources: [{ kind: 'SUBMIT' }], tolerance: 'RONGQUE', toleranceDays: 10 },
      ],
    },
  ];
}

export const DEMO_BUNDLES = [
  { code: 'YJS-QYKB', name: '企业开办一件事', itemCodes: ['350100-DJ-0001', '350100-BA-0002', '350100-DJ-0003'] },
  { code: 'YJS-XSECS', name: '新生儿出生一件事', itemCodes: ['350100-QR-0004', '350100-GF-0005'] },
];

/**
 * The demo's directory: the State Council calendars, the base resources and a few department ones, 事项 with
 * materials, 一件事 bundles, and the demo approval system's grants (asked and decided as the real flow does).
 * Idempotent: what exists is left as it is.
 */
export async function seedDemoDirectory(
  db: Db,
  log: Logger,
  d: Departments & { nhc: string; nr: string },
  consumer: { clientId: string; department: string; name: string },
): Promise<{ resources: number; items: number; grants: number }> {
  const admin = systemContext(db, log, d.data, 'hub-seed');
  for (const [year, cal] of Object.entries(STATE_COUNCIL_CALENDARS)) {
    if (!(await calendarYear(db, Number(year))).loadedAt) await loadWorkingCalendar(db, { year: Number(year), ...cal });
  }
  let resources = 0;
  for (const input of resourceInputs(d)) {
    if (await getCurrentResource(db, input.code)) continue;
    await registerResource(admin, input);
    await publishResource(admin, input.code);
    resources++;
  }
  for (const item of serviceItemInputs(d)) await registerServiceItem(admin, item);
  for (const b of DEMO_BUNDLES) await registerBundle(admin, b);

  const asConsumer: HubContext = {
    ...admin,
    principal: { kind: 'client', clientId: consumer.clientId, name: consumer.name, department: consumer.department, roles: ['consumer'], permissions: [], tokenId: '', expiresAt: 0 },
  };
  const allItems = serviceItemInputs(d).map((i) => i.code);
  const wanted = [
    { resourceCode: DEMO_RESOURCES.population, fields: ['idNumber', 'name', 'gender', 'ethnicity', 'birthDate', 'birthPlace', 'householdAddress', 'registrationAuthority', 'maritalStatus', 'deceased'], fullFields: ['idNumber'] },
    { resourceCode: DEMO_RESOURCES.legalPerson, fields: ['uscc', 'name', 'orgType', 'legalRepresentative', 'registeredCapital', 'establishedOn', 'address', 'businessScope', 'registrationAuthority', 'status', 'approvedOn'], fullFields: [] },
    { resourceCode: DEMO_RESOURCES.licence, fields: ['identifier', 'typeCode', 'number', 'holderName', 'holderCode', 'issuerName', 'validUntil', 'status', 'face'], fullFields: [] },
    { resourceCode: DEMO_RESOURCES.credit, fields: ['subjectCode', 'redList', 'blackList', 'sanctions', 'permits', 'measures'], fullFields: [] },
    { resourceCode: DEMO_RESOURCES.socialInsurance, fields: ['idNumber', 'insuredStatus', 'paidMonths'], fullFields: [] },
  ];
  let grants = 0;
  for (const w of wanted) {
    const [existing] = await db
      .select({ id: accessRequests.id })
      .from(accessRequests)
      .where(and(eq(accessRequests.clientId, consumer.clientId), eq(accessRequests.resourceCode, w.resourceCode)));
    if (existing) continue;
    const request = await requestAccess(asConsumer, { ...w, itemCodes: allItems, purpose: '一窗受理：核验申请人信息，免于提交证明材料', legalBasis: '《政务数据共享条例》' });
    if (request.status === 'PENDING') await decideAccessRequest(admin, request.id, { approve: true, reason: '同意：用于一窗受理事项办理' });
    grants++;
  }
  return { resources, items: allItems.length, grants };
}
