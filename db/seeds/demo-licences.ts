import { systemContext } from '../../core/context.ts';
import { idNumberCheckChar } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import { issueLicence, type IssueLicenceInput } from '../../licence/issue.ts';
import { LicencePki } from '../../licence/pki.ts';
import { getLicenceType, registerLicenceType, type LicenceTypeInput } from '../../licence/types.ts';
import type { Db } from '../index.ts';
import { DEMO_LICENCE_TYPES } from './demo-directory.ts';

type Issuers = { police: string; market: string; nhc: string; nr: string; mca: string };

const f = (code: string, name: string, dataType = 'C', length: number | null = null, sensitive = false) => ({ code, name, dataType, length, sensitive });

/** The demo's licence types (证照目录), defined by national bodies and issued by the demo's 福州 departments. */
export function demoLicenceTypes(d: Issuers): LicenceTypeInput[] {
  const T = DEMO_LICENCE_TYPES;
  const body = (code: string) => code.slice(0, 18);
  return [
    {
      code: T.idCard, name: '居民身份证', definingDepartment: body(T.idCard), holderKind: 'PERSON', issuers: [d.police], validityYears: 20, numberIsPersonalId: true,
      faceFields: [f('XM', '姓名', 'C', 50), f('XB', '性别', 'C', 2), f('MZ', '民族', 'C', 20), f('CSRQ', '出生日期', 'D'), f('ZZ', '住址', 'C', 200, true), f('GMSFHM', '公民身份号码', 'C', 18, true), f('QFJG', '签发机关', 'C', 100)],
    },
    {
      code: T.businessLicence, name: '营业执照', definingDepartment: body(T.businessLicence), holderKind: 'LEGAL_PERSON', issuers: [d.market],
      faceFields: [f('MC', '名称', 'C', 200), f('LX', '类型', 'C', 50), f('FDDBR', '法定代表人', 'C', 50), f('ZCZB', '注册资本', 'C', 50), f('CLRQ', '成立日期', 'D'), f('ZS', '住所', 'C', 200), f('JYFW', '经营范围', 'M'), f('DJJG', '登记机关', 'C', 100)],
    },
    {
      code: T.birthCertificate, name: '出生医学证明', definingDepartment: body(T.birthCertificate), holderKind: 'PERSON', issuers: [d.nhc],
      faceFields: [f('XSEXM', '新生儿姓名', 'C', 50), f('XB', '性别', 'C', 2), f('CSSJ', '出生时间', 'C', 30), f('CSDD', '出生地点', 'C', 200), f('MQXM', '母亲姓名', 'C', 50), f('MQSFZH', '母亲身份证件号码', 'C', 18, true), f('FQXM', '父亲姓名', 'C', 50), f('FQSFZH', '父亲身份证件号码', 'C', 18, true), f('QFJG', '签发机构', 'C', 100)],
      optionalFields: ['FQXM', 'FQSFZH'],
    },
    {
      code: T.marriageCertificate, name: '结婚证', definingDepartment: body(T.marriageCertificate), holderKind: 'PERSON', issuers: [d.mca],
      faceFields: [f('CZRXM', '持证人', 'C', 50), f('DJRQ', '登记日期', 'D'), f('POXM', '配偶姓名', 'C', 50), f('POSFZH', '配偶身份证件号码', 'C', 18, true), f('DJJG', '登记机关', 'C', 100), f('BZ', '备注', 'C', 200)],
      optionalFields: ['BZ'],
    },
    {
      code: T.propertyCertificate, name: '不动产权证书', definingDepartment: body(T.propertyCertificate), holderKind: 'PERSON', issuers: [d.nr],
      faceFields: [f('QLR', '权利人', 'C', 100), f('GYQK', '共有情况', 'C', 50), f('ZL', '坐落', 'C', 200), f('BDCDYH', '不动产单元号', 'C', 28), f('QLXZ', '权利性质', 'C', 50), f('YT', '用途', 'C', 50), f('MJ', '面积（平方米）', 'N'), f('SYQX', '使用期限', 'C', 100)],
    },
  ];
}

/** 莫萱兰, the demo person of the README (in the population simulator), and a company and newborn of the demo. */
export const DEMO_HOLDERS = {
  person: { code: '350203195207237981', name: '莫萱兰' },
  spouse: { code: '11010519491231002X', name: '王丽' },
  company: { code: '91350100M000100Y43', name: '福州示例科技有限公司' },
  newborn: { code: `35010220260601001${idNumberCheckChar('35010220260601001')}`, name: '莫小安' },
};

function demoLicences(): { issuer: keyof Issuers; input: IssueLicenceInput }[] {
  const T = DEMO_LICENCE_TYPES;
  const H = DEMO_HOLDERS;
  return [
    { issuer: 'police', input: { typeCode: T.idCard, number: H.person.code, holderName: H.person.name, holderCode: H.person.code, validFrom: '2016-05-20', validUntil: '2036-05-19', face: { XM: H.person.name, XB: '女', MZ: '汉', CSRQ: '1952-07-23', ZZ: '福建省厦门市思明区演武路1号', GMSFHM: H.person.code, QFJG: '厦门市公安局思明分局' } } },
    { issuer: 'market', input: { typeCode: T.businessLicence, number: H.company.code, holderName: H.company.name, holderCode: H.company.code, validFrom: '2018-03-01', face: { MC: H.company.name, LX: '有限责任公司（自然人投资或控股）', FDDBR: H.spouse.name, ZCZB: '伍佰万元整', CLRQ: '2018-03-01', ZS: '福州市鼓楼区五四路100号', JYFW: '软件开发；信息技术咨询服务', DJJG: '福州市市场监督管理局' } } },
    { issuer: 'nhc', input: { typeCode: T.birthCertificate, number: 'Q350100261234', holderName: H.newborn.name, holderCode: H.newborn.code, validFrom: '2026-06-01', face: { XSEXM: H.newborn.name, XB: '男', CSSJ: '2026-06-01 08:30', CSDD: '福建省福州市鼓楼区', MQXM: H.person.name, MQSFZH: H.person.code, QFJG: '福建省妇幼保健院' } } },
    { issuer: 'mca', input: { typeCode: T.marriageCertificate, number: 'J350100-2020-000518', holderName: H.person.name, holderCode: H.person.code, validFrom: '2020-05-20', face: { CZRXM: H.person.name, DJRQ: '2020-05-20', POXM: '李明', POSFZH: '360426199101010071', DJJG: '福州市鼓楼区民政局' } } },
    { issuer: 'nr', input: { typeCode: T.propertyCertificate, number: '闽（2021）福州市不动产权第0012345号', holderName: H.person.name, holderCode: H.person.code, validFrom: '2021-09-10', face: { QLR: H.person.name, GYQK: '单独所有', ZL: '福州市鼓楼区温泉街道东街1号1#楼1203', BDCDYH: '350102001001GB00001F00011203', QLXZ: '出让/商品房', YT: '城镇住宅用地/住宅', MJ: 89.56, SYQX: '2004年01月01日起2074年01月01日止' } } },
  ];
}

/**
 * Registers the demo licence types and, given the master key, issues the demo licences (idempotent: the types
 * and the 证照编号 already on record are left as they are), so 免提交 can resolve materials against them.
 */
export async function seedDemoLicences(db: Db, log: Logger, d: Issuers, licence?: { masterKey: Buffer; issuer: string }): Promise<{ types: number; issued: number }> {
  let types = 0;
  for (const t of demoLicenceTypes(d)) {
    if (await getLicenceType(db, t.code)) continue;
    await registerLicenceType(systemContext(db, log, t.definingDepartment, 'hub-seed'), t);
    types++;
  }
  if (!licence) return { types, issued: 0 };
  const pki = await LicencePki.load(db, licence.masterKey);
  const ports = { pki, masterKey: licence.masterKey, issuer: licence.issuer };
  let issued = 0;
  const started = new Date(Date.now() - 1000);
  for (const l of demoLicences()) {
    const ctx = systemContext(db, log, d[l.issuer], 'hub-seed');
    ctx.principal.roles = ['issuer'];
    const row = await issueLicence(ctx, ports, l.input);
    if (row.createdAt >= started) issued++;
  }
  return { types, issued };
}
