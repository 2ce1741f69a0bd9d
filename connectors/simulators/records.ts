/**
 * The records of the department source systems, in their own field names (pinyin abbreviations), generated from
 * (seed, index, generation) alone: nothing is stored per record. Generation 0 is the initial load; a record that
 * changed last in generation g is drawn again with the changing fields taken from (seed, index, g).
 */
import { buildUscc, ID_CHECK, ID_WEIGHTS, idCheck, orgCheck, USCC_CHARS, usccCheck } from './codes.ts';
import { civilFromDays, compactDay, DAY_MS, daysFromCivil, hash, isoDay, pad, Permutation, Rng } from './hash.ts';
import {
  CREDIT_MEASURES,
  COOP_PRODUCTS,
  ESTATES,
  GIVEN_FEMALE,
  GIVEN_MALE,
  INDUSTRIES,
  MAX_REGION_WEIGHT,
  REGION_SLOT_VARIANT,
  REGION_SLOTS,
  REGIONS,
  SCOPE_SUFFIX,
  SHOPS,
  STATIONS,
  STREETS,
  SURNAMES,
  TOWNS,
  TRADE_NAMES,
  VILLAGES,
  type Region,
} from './words.ts';

export type SourceKind = 'population' | 'legal_person' | 'credit';
export const SOURCE_KINDS: readonly SourceKind[] = ['population', 'legal_person', 'credit'];

/** 2026-01-01T00:00:00Z: generation 0's first update time. */
export const T0 = Date.UTC(2026, 0, 1);
/** Generation g's changes are stamped from T0 + g · 30 days. */
export const GENERATION_SPAN_MS = 30 * DAY_MS;
/** Records per timestamp: groups of this many consecutive records share their gxsj. */
export const RECORDS_PER_MS = 5;
/** The ID numbers are unique for indexes below 2^22 (region × birth date × sequence). */
export const MAX_RECORDS = 1 << 22;

export const ID_PREFIX: Readonly<Record<SourceKind, string>> = { population: 'P', legal_person: 'L', credit: 'C' };
const ID_DIGITS = 7;

const DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(1000 + i).slice(1));
const DIGITS4 = Array.from({ length: 10_000 }, (_, i) => String(10_000 + i).slice(1));

/** The source id of index i: P0000001 for index 0 (zero-padded, so string order is index order). */
export function recordId(kind: SourceKind, index: number): string {
  const n = index + 1;
  if (n >= 10_000_000) throw new RangeError(`no record ${index}`);
  const lo = n % 10_000;
  return ID_PREFIX[kind] + DIGITS3[(n - lo) / 10_000]! + DIGITS4[lo]!;
}


/** The index of a source id of this kind, or null when it is not one. */
export function indexOfId(kind: SourceKind, id: string): number | null {
  if (id.length !== ID_DIGITS + 1 || id[0] !== ID_PREFIX[kind] || !/^\d+$/.test(id.slice(1))) return null;
  const n = Number(id.slice(1));
  return n >= 1 ? n - 1 : null;
}

/** 公安 人口基础信息 */
export interface PopulationRecord {
  id: string;
  /** 公民身份号码 */
  sfzh: string;
  /** 姓名 */
  xm: string;
  /** 性别: 1 男, 2 女 (the parity of the ID's sequence) */
  xb: '1' | '2';
  /** 民族 01..56 (GB 3304) */
  mz: string;
  /** 出生日期 YYYYMMDD */
  csrq: string;
  /** 出生地 */
  csd: string;
  /** 户籍地址 */
  hjdz: string;
  /** 户籍登记机关 */
  hjdjjg: string;
  /** 婚姻状况: 10 未婚, 20 已婚, 30 丧偶, 40 离婚 */
  hyzk: '10' | '20' | '30' | '40';
  /** 死亡标识 */
  swbs: '0' | '1';
  /** 更新时间 */
  gxsj: string;
}

export type OrgType = '有限责任公司' | '股份有限公司' | '个体工商户' | '农民专业合作社';
export type RegistrationStatus = '存续' | '在业' | '吊销' | '注销' | '迁出';

/** 市场监管 法人单位基础信息 */
export interface LegalPersonRecord {
  id: string;
  /** 统一社会信用代码 */
  tyshxydm: string;
  /** 机构名称 */
  qymc: string;
  /** 机构类型 */
  qylx: OrgType;
  /** 法定代表人 (经营者, 负责人) */
  fddbr: string;
  /** 法定代表人证件号码 */
  fddbrzjhm: string;
  /** 注册资本 (万元) */
  zczb: number;
  /** 成立日期 YYYY-MM-DD */
  clrq: string;
  /** 住所 */
  zs: string;
  /** 经营范围 */
  jyfw: string;
  /** 登记机关 */
  djjg: string;
  /** 登记状态 */
  djzt: RegistrationStatus;
  /** 核准日期 YYYY-MM-DD */
  hzrq: string;
  gxsj: string;
}

export type CreditListType = 'RED' | 'BLACK' | 'PERMIT' | 'SANCTION';

/** 信用平台 公共信用信息 */
export interface CreditRecord {
  id: string;
  /** 主体代码: 统一社会信用代码 or 公民身份号码 */
  ztdm: string;
  /** 主体名称 */
  ztmc: string;
  /** 类别: RED 守信激励, BLACK 失信惩戒, PERMIT 行政许可, SANCTION 行政处罚 */
  lb: CreditListType;
  /** 列入机关 / 决定机关 */
  lrjg: string;
  /** 列入原因 / 事由 */
  lryy: string;
  /** 依据 */
  yj: string;
  /** 列入日期 / 决定日期 YYYY-MM-DD */
  lrrq: string;
  /** 有效期至 YYYY-MM-DD */
  yxq: string | null;
  /** 信用修复日期 YYYY-MM-DD */
  xfrq: string | null;
  /** 联合奖惩措施 codes (CREDIT_MEASURES) */
  cs: string[];
  gxsj: string;
}

export interface RecordOf {
  population: PopulationRecord;
  legal_person: LegalPersonRecord;
  credit: CreditRecord;
}
export type SourceRecord = RecordOf[SourceKind];

/** Field order of each kind (JSON key order, CSV columns). */
export const SOURCE_FIELDS: { readonly [K in SourceKind]: readonly (keyof RecordOf[K])[] } = {
  population: ['id', 'sfzh', 'xm', 'xb', 'mz', 'csrq', 'csd', 'hjdz', 'hjdjjg', 'hyzk', 'swbs', 'gxsj'],
  legal_person: ['id', 'tyshxydm', 'qymc', 'qylx', 'fddbr', 'fddbrzjhm', 'zczb', 'clrq', 'zs', 'jyfw', 'djjg', 'djzt', 'hzrq', 'gxsj'],
  credit: ['id', 'ztdm', 'ztmc', 'lb', 'lrjg', 'lryy', 'yj', 'lrrq', 'yxq', 'xfrq', 'cs', 'gxsj'],
};

/** Why a record is invalid as the source holds it (about 1% of generation 0; fixed when the record changes). */
export type InvalidReason =
  | 'ID_CHECK_DIGIT' // population: sfzh has a wrong check character
  | 'ID_BIRTH_DATE' // population: sfzh carries an impossible birth date (month + 12), check character right
  | 'EMPTY_NAME' // population xm / legal_person qymc is empty
  | 'USCC_CHECK_DIGIT' // legal_person: the final check character is wrong
  | 'USCC_ORG_CODE' // legal_person: the embedded organisation code's check is wrong, the final check right
  | 'SUBJECT_CHECK_DIGIT' // credit: ztdm (USCC or ID number) has a wrong last character
  | 'EMPTY_AUTHORITY'; // credit: lrjg is empty

const INVALID_REASONS: Readonly<Record<SourceKind, readonly InvalidReason[]>> = {
  population: ['ID_CHECK_DIGIT', 'ID_BIRTH_DATE', 'EMPTY_NAME'],
  legal_person: ['USCC_CHECK_DIGIT', 'USCC_ORG_CODE', 'EMPTY_NAME'],
  credit: ['SUBJECT_CHECK_DIGIT', 'EMPTY_AUTHORITY'],
};

const SALT = {
  invalid: { population: 11, legal_person: 12, credit: 13 } as Record<SourceKind, number>,
  change: { population: 21, legal_person: 22, credit: 23 } as Record<SourceKind, number>,
  personPerm: 31,
  personId: 32,
  personBase: 33,
  personChange: 34,
  death: 35,
  orgPerm: 41,
  orgBase: 42,
  orgChange: 43,
  cancel: 44,
  credit: 51,
  creditChange: 52,
  repair: 53,
};

const INVALID_PER_MILLE = 10;

/** The reason a record of generation `generation` is invalid, or null. Only generation 0 holds invalid records. */
export function invalidReason(kind: SourceKind, seed: number, index: number, generation: number): InvalidReason | null {
  if (generation !== 0) return null;
  const h = hash(seed, SALT.invalid[kind], index);
  if (h % 1000 >= INVALID_PER_MILLE) return null;
  const reasons = INVALID_REASONS[kind];
  return reasons[(h >>> 10) % reasons.length]!;
}

/** Whether `index` is chosen to change when generation `generation` starts (a fraction `share` of all). */
export function changesIn(kind: SourceKind, seed: number, index: number, generation: number, share: number): boolean {
  return hash(seed, SALT.change[kind], index, generation) < share * 4294967296;
}

/** The day (days since 1970-01-01) on which generation g's changes happen. */
export function generationDay(generation: number): number {
  return Math.floor((T0 + generation * GENERATION_SPAN_MS) / DAY_MS);
}

const ID_CHECK_CHARS = '0123456789X';

function wrongChar(chars: string, right: string, h: number): string {
  const i = chars.indexOf(right);
  return chars[(i + 1 + (h % (chars.length - 1))) % chars.length]!;
}

const pad2 = (n: number) => (n < 10 ? `0${n}` : String(n));
const round2 = (x: number) => Math.round(x * 100) / 100;
const TODAY_YEAR = 2026;

// --------------------------------------------------------------------------------------------------------------
// People

const BIRTH_FIRST_DAY = daysFromCivil(1930, 1, 1);
const BIRTH_DAYS = daysFromCivil(2025, 1, 1) - BIRTH_FIRST_DAY;
const PERSON_BITS = 22;
// index → permuted p < 2^22 → (region slot, birth day, r); the sequence number carries (slot variant, r) so that
// (region, birth date, sequence) never repeats.
const R_MAX = Math.ceil((1 << PERSON_BITS) / (REGION_SLOTS.length * BIRTH_DAYS));
const U_MAX = MAX_REGION_WEIGHT * R_MAX;
const K_MAX = Math.floor(999 / U_MAX);
if (K_MAX < 2) throw new Error('too many region slots for unique ID numbers');

// Partial GB 11643 sums of the ID's parts: region (positions 1-6), birth date (7-14), sequence (15-17).
const idSum = (digits: string, from: number) => {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) sum += (digits.charCodeAt(i) - 48) * ID_WEIGHTS[from + i]!;
  return sum;
};
const REGION_ID_SUM = REGIONS.map((r) => idSum(r.code, 0));
const SEQ3 = Array.from({ length: 1000 }, (_, i) => pad(i, 3));
const SEQ_ID_SUM = SEQ3.map((s) => idSum(s, 14));
let birthSums: Uint16Array | null = null;
function birthIdSum(day: number): number {
  if (!birthSums) {
    birthSums = new Uint16Array(BIRTH_DAYS);
    for (let d = 0; d < BIRTH_DAYS; d++) birthSums[d] = idSum(compactDay(BIRTH_FIRST_DAY + d), 6);
  }
  return birthSums[day]!;
}

export interface PersonIdentity {
  region: Region;
  regionIndex: number;
  /** days since 1970-01-01 */
  birthDay: number;
  birthYear: number;
  /** YYYYMMDD */
  birth: string;
  seq: number;
  male: boolean;
  /** the first 17 characters of the (valid) ID number */
  first17: string;
  sfzh: string;
  surname: string;
  xm: string;
}

function personName(rng: Rng, male: boolean): { surname: string; xm: string } {
  const surname = rng.pick(SURNAMES);
  const chars = male ? GIVEN_MALE : GIVEN_FEMALE;
  const given = rng.chance(0.7) ? rng.pick(chars) + rng.pick(chars) : rng.pick(chars);
  return { surname, xm: surname + given };
}

function maritalStatus(rng: Rng, age: number): PopulationRecord['hyzk'] {
  const x = rng.next();
  if (age < 20) return '10';
  if (age < 22) return x < 0.9 ? '10' : '20';
  if (age < 30) return x < 0.55 ? '10' : x < 0.97 ? '20' : '40';
  if (age < 60) return x < 0.08 ? '10' : x < 0.88 ? '20' : x < 0.98 ? '40' : '30';
  return x < 0.03 ? '10' : x < 0.73 ? '20' : x < 0.93 ? '30' : '40';
}

// Address pieces, built once: region + street, "12号", estate + 花园/小区, "3座", "1502室", police station names.
const numbered = (n: number, unit: string) => Array.from({ length: n + 1 }, (_, i) => `${i}${unit}`);
const HAO = numbered(300, '号');
const ZUO = numbered(30, '座');
const ZU = numbered(12, '组');
const CENG = numbered(30, '层');
const ROOMS = Array.from({ length: 34 * 4 }, (_, i) => `${Math.floor(i / 4) + 1}0${(i % 4) + 1}室`);
const OFFICES = Array.from({ length: 20 * 20 }, (_, i) => `${Math.floor(i / 20) + 1}${pad2((i % 20) + 1)}室`);
const STREET_PREFIX = REGIONS.map((r) => STREETS.map((s) => r.full + s));
const TOWN_PREFIX = REGIONS.map((r) => TOWNS.map((t) => `${r.full}${t}镇`));
const VILLAGE_CUN = VILLAGES.map((v) => `${v}村`);
const ESTATE_NAMES = ESTATES.flatMap((e) => [`${e}花园`, `${e}小区`]);
const TOWER_NAMES = TRADE_NAMES.map((t) => `${t}大厦`);
const STATION_OFFICE = REGIONS.map((r) => STATIONS.map((s) => `${r.police}${s}派出所`));
const TOWN_OFFICE = REGIONS.map((r) => TOWNS.map((t) => `${r.police}${t}派出所`));

function homeAddress(rng: Rng, region: Region, regionIndex: number): { address: string; office: string } {
  if (!region.district && rng.chance(0.5)) {
    const town = rng.int(TOWNS.length);
    return {
      address: TOWN_PREFIX[regionIndex]![town]! + rng.pick(VILLAGE_CUN) + ZU[1 + rng.int(12)] + HAO[1 + rng.int(120)],
      office: TOWN_OFFICE[regionIndex]![town]!,
    };
  }
  const s = rng.int(STREETS.length);
  const office = STATION_OFFICE[regionIndex]![(s + regionIndex * 7) % STATIONS.length]!;
  const street = STREET_PREFIX[regionIndex]![s]! + HAO[1 + rng.int(300)];
  if (rng.chance(0.3)) return { address: street, office };
  return { address: street + rng.pick(ESTATE_NAMES) + ZUO[1 + rng.int(30)] + ROOMS[rng.int(ROOMS.length)], office };
}

function officeAddress(rng: Rng, region: Region, regionIndex: number): string {
  if (!region.district && rng.chance(0.3)) return TOWN_PREFIX[regionIndex]![rng.int(TOWNS.length)]! + rng.pick(VILLAGE_CUN) + HAO[1 + rng.int(120)];
  const street = STREET_PREFIX[regionIndex]![rng.int(STREETS.length)]! + HAO[1 + rng.int(300)];
  return rng.chance(0.4) ? street : street + rng.pick(TOWER_NAMES) + CENG[1 + rng.int(30)] + OFFICES[rng.int(OFFICES.length)];
}

export class PopulationGenerator {
  private readonly perm: Permutation;
  constructor(readonly seed: number) {
    this.perm = new Permutation(seed, SALT.personPerm, PERSON_BITS);
  }

  /** The person behind index i, with the valid ID number (the invalid ones are made from it). */
  identity(index: number): PersonIdentity {
    const p = this.perm.apply(index);
    const slot = p % REGION_SLOTS.length;
    const q = (p - slot) / REGION_SLOTS.length;
    const day = q % BIRTH_DAYS;
    const r = (q - day) / BIRTH_DAYS;
    const regionIndex = REGION_SLOTS[slot]!;
    const region = REGIONS[regionIndex]!;
    const rng = new Rng(hash(this.seed, SALT.personId, index));
    const seq = 1 + U_MAX * rng.int(K_MAX) + REGION_SLOT_VARIANT[slot]! * R_MAX + r;
    const birthDay = BIRTH_FIRST_DAY + day;
    const birth = compactDay(birthDay);
    const first17 = region.code + birth + SEQ3[seq];
    const male = seq % 2 === 1;
    const sum = REGION_ID_SUM[regionIndex]! + birthIdSum(day) + SEQ_ID_SUM[seq]!;
    const { surname, xm } = personName(rng, male);
    return {
      region,
      regionIndex,
      birthDay,
      birthYear: civilFromDays(birthDay)[0],
      birth,
      seq,
      male,
      first17,
      sfzh: first17 + ID_CHECK[sum % 11],
      surname,
      xm,
    };
  }

  record(index: number, generation: number, gxsj: string): PopulationRecord {
    const who = this.identity(index);
    const rng = new Rng(hash(this.seed, SALT.personBase, index));
    const mz = rng.chance(0.91) ? '01' : pad2(2 + rng.int(55));
    const csd = rng.chance(0.85) ? who.region.full : rng.pick(REGIONS).full;
    const age = TODAY_YEAR - who.birthYear;
    let hyzk = maritalStatus(rng, age);
    let home = homeAddress(rng, who.region, who.regionIndex);
    let dead = who.birthYear < 1945 && rng.chance(0.1);
    if (generation > 0) {
      const change = new Rng(hash(this.seed, SALT.personChange, index, generation));
      home = homeAddress(change, who.region, who.regionIndex);
      if (change.chance(0.5)) hyzk = maritalStatus(change, age);
      // once dead, dead in every later generation
      if (generation >= 1 + (hash(this.seed, SALT.death, index) % (who.birthYear < 1950 ? 8 : 40))) dead = true;
    }
    let sfzh = who.sfzh;
    let xm = who.xm;
    switch (invalidReason('population', this.seed, index, generation)) {
      case 'ID_CHECK_DIGIT':
        sfzh = who.first17 + wrongChar(ID_CHECK_CHARS, sfzh[17]!, hash(this.seed, SALT.invalid.population, index, 1));
        break;
      case 'ID_BIRTH_DATE': {
        const bad = who.first17.slice(0, 10) + pad2(Number(who.birth.slice(4, 6)) + 12) + who.first17.slice(12);
        sfzh = bad + idCheck(bad);
        break;
      }
      case 'EMPTY_NAME':
        xm = '';
        break;
      default:
    }
    return {
      id: recordId('population', index),
      sfzh,
      xm,
      xb: who.male ? '1' : '2',
      mz,
      csrq: who.birth,
      csd,
      hjdz: home.address,
      hjdjjg: home.office,
      hyzk,
      swbs: dead ? '1' : '0',
      gxsj,
    };
  }
}

// --------------------------------------------------------------------------------------------------------------
// Legal persons

const ORG_BITS = 26; // < 10^8 (8-digit pre-2015 organisation codes) and < 31^6 ('MA' + 6 characters)
const FOUNDING_FIRST_DAY = daysFromCivil(1995, 1, 1);
const LAST_BASE_DAY = daysFromCivil(2025, 12, 31);
const USCC_ERA_DAY = daysFromCivil(2015, 10, 1);
const COMPANY_CAPITALS = [3, 5, 10, 10, 20, 30, 50, 50, 100, 100, 100, 200, 200, 300, 500, 500, 1000, 1000, 2000, 5000];
const SHARE_CAPITALS = [1000, 2000, 3000, 5000, 5000, 6000, 8000, 10000, 12000, 20000, 50000];

/**
 * A list of business scope items with every jyfw text made of it: 2..4 consecutive items (wrapping) from each
 * start, in the older wording and in the one used since 2021 (一般项目：…).
 */
interface ScopeTexts {
  length: number;
  texts: string[];
}

const MODERN_SCOPE_DAY = daysFromCivil(2021, 1, 1);

function scopeTexts(items: readonly string[]): ScopeTexts {
  const texts: string[] = [];
  for (let start = 0; start < items.length; start++)
    for (let count = 2; count <= 4; count++) {
      const chosen: string[] = [];
      for (let k = 0; k < Math.min(count, items.length); k++) chosen.push(items[(start + k) % items.length]!);
      texts.push(`${chosen.join('；')}。${SCOPE_SUFFIX}`, `一般项目：${chosen.join('；')}。（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）`);
    }
  return { length: items.length, texts };
}

const INDUSTRY_SCOPES = new Map(INDUSTRIES.map((i) => [i, scopeTexts(i.scopes)]));
const SHOP_SCOPES = new Map(SHOPS.map((s) => [s, scopeTexts(s.scopes)]));
const COOP_SCOPES = COOP_PRODUCTS.map((p) => scopeTexts([`组织收购、销售成员生产的${p}产品`, '引进新技术、新品种，开展技术培训、技术交流和咨询服务', `${p}种养殖技术推广`]));
const CITY_MARKET = REGIONS.map((r) => `${r.city}市场监督管理局`);
const LOCAL_MARKET = REGIONS.map((r) => `${r.local}市场监督管理局`);

export interface LegalPersonBase {
  region: Region;
  regionIndex: number;
  qylx: OrgType;
  orgBody: string;
  authorityAndCategory: string;
  /** the valid code */
  tyshxydm: string;
  qymc: string;
  rep: PersonIdentity;
  /** the business scope texts this legal person's jyfw is chosen from */
  scopes: ScopeTexts;
  clrqDay: number;
  rng: Rng;
}

function base31(n: number, width: number): string {
  let s = '';
  for (let i = 0; i < width; i++) {
    s = USCC_CHARS[n % 31]! + s;
    n = Math.floor(n / 31);
  }
  return s;
}

export class LegalPersonGenerator {
  private readonly perm: Permutation;
  constructor(
    readonly seed: number,
    private readonly people: PopulationGenerator,
    /** legal representatives are people with indexes below this (so they join the population source) */
    private readonly linkPeople: number,
  ) {
    this.perm = new Permutation(seed, SALT.orgPerm, ORG_BITS);
  }

  /** The unchanging part of legal person i, and the generator positioned after it for the rest. */
  base(index: number): LegalPersonBase {
    const rng = new Rng(hash(this.seed, SALT.orgBase, index));
    const t = rng.next();
    const qylx: OrgType = t < 0.68 ? '有限责任公司' : t < 0.72 ? '股份有限公司' : t < 0.97 ? '个体工商户' : '农民专业合作社';
    const slot = rng.int(REGION_SLOTS.length);
    const regionIndex = REGION_SLOTS[slot]!;
    const region = REGIONS[regionIndex]!;
    // more companies were founded recently
    const clrqDay = FOUNDING_FIRST_DAY + Math.floor((LAST_BASE_DAY - FOUNDING_FIRST_DAY) * Math.sqrt(rng.next()));
    const p = this.perm.apply(index);
    const orgBody = clrqDay < USCC_ERA_DAY ? pad(p, 8) : `MA${base31(p, 6)}`;
    const authorityAndCategory = qylx === '个体工商户' ? '92' : qylx === '农民专业合作社' ? '93' : '91';
    const rep = this.people.identity(rng.int(this.linkPeople));
    let qymc: string;
    let scopes: ScopeTexts;
    if (qylx === '个体工商户') {
      const shop = rng.pick(SHOPS);
      qymc = `${region.local}${rep.surname}记${shop.word}`;
      scopes = SHOP_SCOPES.get(shop)!;
    } else if (qylx === '农民专业合作社') {
      const product = rng.int(COOP_PRODUCTS.length);
      qymc = `${region.local}${rng.pick(TRADE_NAMES)}${COOP_PRODUCTS[product]}专业合作社`;
      scopes = COOP_SCOPES[product]!;
    } else {
      const industry = rng.pick(INDUSTRIES);
      qymc =
        qylx === '股份有限公司'
          ? `${region.provinceShort}${rng.pick(TRADE_NAMES)}${industry.word}股份有限公司`
          : `${region.cityShort}${rng.pick(TRADE_NAMES)}${industry.word}有限公司`;
      scopes = INDUSTRY_SCOPES.get(industry)!;
    }
    return {
      region,
      regionIndex,
      qylx,
      orgBody,
      authorityAndCategory,
      tyshxydm: buildUscc(authorityAndCategory, region.code, orgBody),
      qymc,
      rep,
      scopes,
      clrqDay,
      rng,
    };
  }

  record(index: number, generation: number, gxsj: string): LegalPersonRecord {
    const b = this.base(index);
    const rng = b.rng;
    let zczb =
      b.qylx === '个体工商户'
        ? round2(0.5 + rng.next() * 50)
        : b.qylx === '农民专业合作社'
          ? round2(10 + rng.next() * 490)
          : b.qylx === '股份有限公司'
            ? rng.pick(SHARE_CAPITALS)
            : rng.chance(0.8)
              ? rng.pick(COMPANY_CAPITALS)
              : round2(1 + rng.next() * 3000);
    let zs = officeAddress(rng, b.region, b.regionIndex);
    // 2..4 consecutive items of the list, in the wording of the year of founding
    const start = rng.int(b.scopes.length);
    const count = Math.min(b.scopes.length, 2 + rng.int(3));
    const jyfw = b.scopes.texts[((start * 3 + count - 2) << 1) + (b.clrqDay >= MODERN_SCOPE_DAY ? 1 : 0)]!;
    const djjg = b.qylx === '股份有限公司' ? CITY_MARKET[b.regionIndex]! : LOCAL_MARKET[b.regionIndex]!;
    const s = rng.next();
    let djzt: RegistrationStatus = s < 0.6 ? '存续' : s < 0.9 ? '在业' : s < 0.94 ? '吊销' : s < 0.98 ? '注销' : '迁出';
    let hzrqDay = b.clrqDay + Math.floor((LAST_BASE_DAY - b.clrqDay) * rng.next());
    if (generation > 0) {
      const change = new Rng(hash(this.seed, SALT.orgChange, index, generation));
      const newCapital = change.chance(0.5);
      if (newCapital) zczb = round2(zczb * (1.5 + change.int(4)));
      if (!newCapital || change.chance(0.5)) zs = officeAddress(change, b.region, b.regionIndex);
      // once cancelled, cancelled in every later generation
      if (djzt !== '注销' && generation >= 1 + (hash(this.seed, SALT.cancel, index) % 25)) djzt = '注销';
      hzrqDay = generationDay(generation);
    }
    let tyshxydm = b.tyshxydm;
    let qymc = b.qymc;
    switch (invalidReason('legal_person', this.seed, index, generation)) {
      case 'USCC_CHECK_DIGIT':
        tyshxydm = tyshxydm.slice(0, 17) + wrongChar(USCC_CHARS, tyshxydm[17]!, hash(this.seed, SALT.invalid.legal_person, index, 1));
        break;
      case 'USCC_ORG_CODE': {
        // only the organisation code check fails: the final check is computed over the wrong one
        const right = orgCheck(b.orgBody);
        const first17 = b.authorityAndCategory + b.region.code + b.orgBody + wrongChar(ID_CHECK_CHARS, right, hash(this.seed, SALT.invalid.legal_person, index, 2));
        tyshxydm = first17 + usccCheck(first17);
        break;
      }
      case 'EMPTY_NAME':
        qymc = '';
        break;
      default:
    }
    return {
      id: recordId('legal_person', index),
      tyshxydm,
      qymc,
      qylx: b.qylx,
      fddbr: b.rep.xm,
      fddbrzjhm: b.rep.sfzh,
      zczb,
      clrq: isoDay(b.clrqDay),
      zs,
      jyfw,
      djjg,
      djzt,
      hzrq: isoDay(hzrqDay),
      gxsj,
    };
  }
}

// --------------------------------------------------------------------------------------------------------------
// Credit

interface CreditTemplate {
  authority: (r: Region) => string;
  reasons: readonly string[];
  basis: string;
  /** validity in years from lrrq; null: none; 'sanction': 1 or 3 years or none */
  years: number | null | 'sanction';
  measures: readonly string[];
  optional?: readonly string[];
}


const COURT: CreditTemplate = {
  authority: (r) => `${r.local}人民法院`,
  reasons: ['有履行能力而拒不履行生效法律文书确定的义务', '以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行', '违反财产报告制度'],
  basis: '《最高人民法院关于公布失信被执行人名单信息的若干规定》第一条',
  years: null,
  measures: ['JC-0101', 'JC-0102'],
};
const LABOUR: CreditTemplate = {
  authority: (r) => `${r.city}人力资源和社会保障局`,
  reasons: ['拖欠农民工工资情节严重'],
  basis: '《保障农民工工资支付条例》第四十八条',
  years: 3,
  measures: ['JC-0201', 'JC-0401'],
};

const TEMPLATES: Readonly<Record<CreditListType, { org: readonly CreditTemplate[]; person: readonly CreditTemplate[] }>> = {
  BLACK: {
    org: [
      { ...COURT, optional: ['JC-0201', 'JC-0301'] },
      {
        authority: (r) => `国家税务总局${r.local}税务局`,
        reasons: ['重大税收违法失信主体：虚开增值税专用发票', '重大税收违法失信主体：逃避追缴欠税', '重大税收违法失信主体：骗取出口退税'],
        basis: '《重大税收违法失信主体信息公布管理办法》第六条',
        years: 3,
        measures: ['JC-0201', 'JC-0205'],
        optional: ['JC-0301', 'JC-0401'],
      },
      {
        authority: (r) => `${r.city}市场监督管理局`,
        reasons: ['被列入经营异常名录届满3年仍未履行相关义务', '提交虚假材料取得市场主体登记且情节严重'],
        basis: '《市场监督管理严重违法失信名单管理办法》第十三条',
        years: 3,
        measures: ['JC-0201', 'JC-0202'],
        optional: ['JC-0301'],
      },
      LABOUR,
    ],
    person: [{ ...COURT, optional: ['JC-0103', 'JC-0301'] }, COURT, LABOUR],
  },
  RED: {
    org: [
      {
        authority: (r) => `国家税务总局${r.provincial}税务局`,
        reasons: ['纳税信用A级纳税人'],
        basis: '《纳税信用管理办法》第二十九条',
        years: 1,
        measures: ['JL-0101'],
        optional: ['JL-0102', 'JL-0201'],
      },
      {
        authority: (r) => r.customs,
        reasons: ['海关高级认证企业'],
        basis: '《中华人民共和国海关注册登记和备案企业信用管理办法》第三十四条',
        years: 3,
        measures: ['JL-0101', 'JL-0201'],
      },
      {
        authority: (r) => `${r.provincial}市场监督管理局`,
        reasons: ['守合同重信用企业'],
        basis: '《关于开展守合同重信用企业公示活动的通知》',
        years: 2,
        measures: ['JL-0101'],
        optional: ['JL-0301'],
      },
    ],
    person: [
      {
        authority: (r) => `${r.provincial}卫生健康委员会`,
        reasons: ['全国无偿献血奉献奖获得者'],
        basis: '《中华人民共和国献血法》第十七条',
        years: 3,
        measures: ['JL-0101'],
        optional: ['JL-0102'],
      },
      {
        authority: (r) => `${r.city}精神文明建设委员会办公室`,
        reasons: ['五星级志愿者'],
        basis: '《志愿服务条例》第三十二条',
        years: 2,
        measures: ['JL-0101'],
      },
    ],
  },
  PERMIT: {
    org: [
      { authority: (r) => `${r.local}市场监督管理局`, reasons: ['食品经营许可'], basis: '《中华人民共和国食品安全法》第三十五条', years: 5, measures: [] },
      { authority: (r) => `${r.city}生态环境局`, reasons: ['排污许可'], basis: '《排污许可管理条例》第三条', years: 5, measures: [] },
      { authority: (r) => `${r.local}住房和城乡建设局`, reasons: ['建筑工程施工许可'], basis: '《中华人民共和国建筑法》第七条', years: null, measures: [] },
      { authority: (r) => `${r.city}交通运输局`, reasons: ['道路运输经营许可'], basis: '《中华人民共和国道路运输条例》第二十四条', years: 4, measures: [] },
    ],
    person: [
      { authority: (r) => `${r.city}卫生健康委员会`, reasons: ['医师执业注册'], basis: '《中华人民共和国医师法》第十三条', years: null, measures: [] },
      {
        authority: (r) => (r.province === r.city ? `${r.city}司法局` : `${r.province}司法厅`),
        reasons: ['律师执业许可'],
        basis: '《中华人民共和国律师法》第六条',
        years: null,
        measures: [],
      },
    ],
  },
  SANCTION: {
    org: [
      {
        authority: (r) => `${r.local}市场监督管理局`,
        reasons: ['经营不符合食品安全标准的食品'],
        basis: '《中华人民共和国食品安全法》第一百二十四条',
        years: 'sanction',
        measures: [],
      },
      {
        authority: (r) => `${r.city}生态环境局`,
        reasons: ['超过大气污染物排放标准排放大气污染物'],
        basis: '《中华人民共和国大气污染防治法》第九十九条',
        years: 'sanction',
        measures: [],
      },
      {
        authority: (r) => `${r.city}应急管理局`,
        reasons: ['未按照规定对从业人员进行安全生产教育和培训'],
        basis: '《中华人民共和国安全生产法》第九十七条',
        years: 'sanction',
        measures: [],
      },
      {
        authority: (r) => `国家税务总局${r.local}税务局`,
        reasons: ['未按照规定期限办理纳税申报和报送纳税资料'],
        basis: '《中华人民共和国税收征收管理法》第六十二条',
        years: 'sanction',
        measures: [],
      },
    ],
    person: [
      {
        authority: (r) => `国家税务总局${r.local}税务局`,
        reasons: ['未按照规定期限办理个人所得税纳税申报'],
        basis: '《中华人民共和国税收征收管理法》第六十二条',
        years: 'sanction',
        measures: [],
      },
      {
        authority: (r) => `${r.local}城市管理和综合执法局`,
        reasons: ['未取得建设工程规划许可证进行建设'],
        basis: '《中华人民共和国城乡规划法》第六十四条',
        years: 'sanction',
        measures: [],
      },
    ],
  },
};

const FINES = [500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
const PERMIT_KINDS = ['新办', '延续', '变更'];
const CREDIT_FIRST_DAY = daysFromCivil(2018, 1, 1);

function plusYears(day: number, years: number): number {
  const [y, m, d] = civilFromDays(day);
  return daysFromCivil(y + years, m, m === 2 && d === 29 ? 28 : d);
}

export class CreditGenerator {
  constructor(
    readonly seed: number,
    private readonly people: PopulationGenerator,
    private readonly orgs: LegalPersonGenerator,
    private readonly linkPeople: number,
    private readonly linkOrgs: number,
  ) {}

  record(index: number, generation: number, gxsj: string): CreditRecord {
    const rng = new Rng(hash(this.seed, SALT.credit, index));
    const org = rng.chance(0.7);
    let ztdm: string;
    let ztmc: string;
    let region: Region;
    if (org) {
      const b = this.orgs.base(rng.int(this.linkOrgs));
      ztdm = b.tyshxydm;
      ztmc = b.qymc;
      region = b.region;
    } else {
      const p = this.people.identity(rng.int(this.linkPeople));
      ztdm = p.sfzh;
      ztmc = p.xm;
      region = p.region;
    }
    const t = rng.next();
    const lb: CreditListType = org
      ? t < 0.12 ? 'RED' : t < 0.24 ? 'BLACK' : t < 0.68 ? 'PERMIT' : 'SANCTION'
      : t < 0.08 ? 'RED' : t < 0.48 ? 'BLACK' : t < 0.7 ? 'PERMIT' : 'SANCTION';
    const template = rng.pick(TEMPLATES[lb][org ? 'org' : 'person']);
    let lrjg = template.authority(region);
    let lryy = rng.pick(template.reasons);
    if (lb === 'PERMIT') lryy = `准予行政许可：${lryy}（${rng.pick(PERMIT_KINDS)}）`;
    if (lb === 'SANCTION') lryy = `${lryy}，${rng.chance(0.2) ? '给予警告' : `罚款人民币${rng.pick(FINES)}元`}`;
    const lrrqDay = CREDIT_FIRST_DAY + rng.int(LAST_BASE_DAY - CREDIT_FIRST_DAY + 1);
    const years = template.years === 'sanction' ? (rng.chance(0.4) ? null : rng.chance(0.5) ? 1 : 3) : template.years;
    let yxqDay: number | null = years === null ? null : plusYears(lrrqDay, years);
    const cs = [...template.measures];
    for (const m of template.optional ?? []) if (rng.chance(0.4)) cs.push(m);
    let xfrq: string | null = null;
    if (generation > 0) {
      const change = new Rng(hash(this.seed, SALT.creditChange, index, generation));
      // a BLACK entry is repaired in a generation of its own and stays repaired from then on
      const repairedIn = 1 + (hash(this.seed, SALT.repair, index) % 6);
      if (lb === 'BLACK' && generation >= repairedIn) xfrq = isoDay(generationDay(repairedIn));
      else yxqDay = yxqDay === null ? plusYears(generationDay(generation), 1 + change.int(3)) : plusYears(yxqDay, 1 + change.int(2));
    }
    switch (invalidReason('credit', this.seed, index, generation)) {
      case 'SUBJECT_CHECK_DIGIT':
        ztdm = ztdm.slice(0, 17) + wrongChar(org ? USCC_CHARS : ID_CHECK_CHARS, ztdm[17]!, hash(this.seed, SALT.invalid.credit, index, 1));
        break;
      case 'EMPTY_AUTHORITY':
        lrjg = '';
        break;
      default:
    }
    return {
      id: recordId('credit', index),
      ztdm,
      ztmc,
      lb,
      lrjg,
      lryy,
      yj: template.basis,
      lrrq: isoDay(lrrqDay),
      yxq: yxqDay === null ? null : isoDay(yxqDay),
      xfrq,
      cs,
      gxsj,
    };
  }
}

/** Every measure code used is in CREDIT_MEASURES (checked once at load). */
for (const list of Object.values(TEMPLATES))
  for (const t of [...list.org, ...list.person])
    for (const m of [...t.measures, ...(t.optional ?? [])]) if (!(m in CREDIT_MEASURES)) throw new Error(`unknown measure ${m}`);

export interface GeneratorOptions {
  seed: number;
  /** legal representatives and credit subjects are drawn from population indexes below this */
  linkPeople: number;
  /** credit subjects that are organisations are drawn from legal_person indexes below this */
  linkOrgs: number;
}

export interface RecordGenerator<K extends SourceKind = SourceKind> {
  readonly kind: K;
  readonly seed: number;
  record(index: number, generation: number, gxsj: string): RecordOf[K];
}

export function createGenerator<K extends SourceKind>(kind: K, options: GeneratorOptions): RecordGenerator<K> {
  const people = new PopulationGenerator(options.seed);
  const orgs = new LegalPersonGenerator(options.seed, people, options.linkPeople);
  const impl =
    kind === 'population'
      ? people
      : kind === 'legal_person'
        ? orgs
        : new CreditGenerator(options.seed, people, orgs, options.linkPeople, options.linkOrgs);
  return {
    kind,
    seed: options.seed,
    record: (index, generation, gxsj) => impl.record(index, generation, gxsj) as RecordOf[K],
  };
}
