/**
 * Word lists for the department source simulators: real county-level region codes (GB/T 2260) with their names,
 * Chinese names, company name parts, business scopes, credit authorities and measures.
 * Built once at module load; records pick from them by index.
 */

interface RegionDef {
  /** 6-digit GB/T 2260 code of a county-level division */
  code: string;
  province: string;
  city: string;
  county: string;
  /** district of a city (区) or county / county-level city (县, 县级市) */
  district: boolean;
  /** relative frequency of the region among generated people and companies (the hub is a Fuzhou one) */
  weight: number;
  customs: string;
}

export interface Region extends RegionDef {
  /** 福建省福州市鼓楼区, 北京市朝阳区 */
  full: string;
  /** how local bodies are named: 福州市鼓楼区, 北京市朝阳区, but 闽侯县 and 晋江市 on their own */
  local: string;
  /** 福州 from 福州市 */
  cityShort: string;
  /** 福建 from 福建省, 北京 from 北京市 */
  provinceShort: string;
  /** province-level name of bodies: 福建省, but 北京市 */
  provincial: string;
  /** the public security body under which a household is registered, without the station: 福州市公安局鼓楼分局 / 闽侯县公安局 */
  police: string;
}

const REGION_DEFS: readonly RegionDef[] = [
  { code: '350102', province: '福建省', city: '福州市', county: '鼓楼区', district: true, weight: 3, customs: '福州海关' },
  { code: '350103', province: '福建省', city: '福州市', county: '台江区', district: true, weight: 3, customs: '福州海关' },
  { code: '350104', province: '福建省', city: '福州市', county: '仓山区', district: true, weight: 3, customs: '福州海关' },
  { code: '350105', province: '福建省', city: '福州市', county: '马尾区', district: true, weight: 2, customs: '福州海关' },
  { code: '350111', province: '福建省', city: '福州市', county: '晋安区', district: true, weight: 3, customs: '福州海关' },
  { code: '350112', province: '福建省', city: '福州市', county: '长乐区', district: true, weight: 2, customs: '福州海关' },
  { code: '350121', province: '福建省', city: '福州市', county: '闽侯县', district: false, weight: 2, customs: '福州海关' },
  { code: '350122', province: '福建省', city: '福州市', county: '连江县', district: false, weight: 1, customs: '福州海关' },
  { code: '350203', province: '福建省', city: '厦门市', county: '思明区', district: true, weight: 2, customs: '厦门海关' },
  { code: '350206', province: '福建省', city: '厦门市', county: '湖里区', district: true, weight: 1, customs: '厦门海关' },
  { code: '350302', province: '福建省', city: '莆田市', county: '城厢区', district: true, weight: 1, customs: '福州海关' },
  { code: '350503', province: '福建省', city: '泉州市', county: '丰泽区', district: true, weight: 1, customs: '厦门海关' },
  { code: '350582', province: '福建省', city: '泉州市', county: '晋江市', district: false, weight: 1, customs: '厦门海关' },
  { code: '110105', province: '北京市', city: '北京市', county: '朝阳区', district: true, weight: 1, customs: '北京海关' },
  { code: '110108', province: '北京市', city: '北京市', county: '海淀区', district: true, weight: 1, customs: '北京海关' },
  { code: '310104', province: '上海市', city: '上海市', county: '徐汇区', district: true, weight: 1, customs: '上海海关' },
  { code: '310115', province: '上海市', city: '上海市', county: '浦东新区', district: true, weight: 1, customs: '上海海关' },
  { code: '320106', province: '江苏省', city: '南京市', county: '鼓楼区', district: true, weight: 1, customs: '南京海关' },
  { code: '330106', province: '浙江省', city: '杭州市', county: '西湖区', district: true, weight: 1, customs: '杭州海关' },
  { code: '360426', province: '江西省', city: '九江市', county: '德安县', district: false, weight: 1, customs: '南昌海关' },
  { code: '420106', province: '湖北省', city: '武汉市', county: '武昌区', district: true, weight: 1, customs: '武汉海关' },
  { code: '440106', province: '广东省', city: '广州市', county: '天河区', district: true, weight: 1, customs: '广州海关' },
  { code: '440305', province: '广东省', city: '深圳市', county: '南山区', district: true, weight: 1, customs: '深圳海关' },
  { code: '510107', province: '四川省', city: '成都市', county: '武侯区', district: true, weight: 1, customs: '成都海关' },
];

/** 鼓楼 from 鼓楼区, 浦东 from 浦东新区 */
function countyShort(r: RegionDef): string {
  return r.county.endsWith('新区') ? r.county.slice(0, -2) : r.county.slice(0, -1);
}

export const REGIONS: readonly Region[] = REGION_DEFS.map((r) => ({
  ...r,
  full: r.province === r.city ? r.city + r.county : r.province + r.city + r.county,
  local: r.district ? r.city + r.county : r.county,
  cityShort: r.city.slice(0, -1),
  provinceShort: r.province.slice(0, -1),
  provincial: r.province === r.city ? r.city : r.province,
  police: r.district ? `${r.city}公安局${countyShort(r)}分局` : `${r.county}公安局`,
}));

/** Region slots weighted by `weight`: slot → region index, and which copy of that region it is. */
export const REGION_SLOTS: readonly number[] = REGIONS.flatMap((r, i) => Array.from({ length: r.weight }, () => i));
export const REGION_SLOT_VARIANT: readonly number[] = REGIONS.flatMap((r) => Array.from({ length: r.weight }, (_, v) => v));
export const MAX_REGION_WEIGHT = Math.max(...REGIONS.map((r) => r.weight));

// Common surnames, the most frequent repeated so that they come up more often (陈, 林 in Fujian).
export const SURNAMES: readonly string[] = [
  ...'王李张刘陈杨黄赵吴周王李张刘陈林陈林黄郑'.split(''),
  ...'徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤翁游'.split(''),
  '欧阳',
  '司马',
  '诸葛',
];

export const GIVEN_MALE: readonly string[] = '伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆帅旭宁龙林阳建国志文海峰亮成东晨子轩睿博然泽铭昊天思远晓嘉航振荣德良清'.split('');
export const GIVEN_FEMALE: readonly string[] = '芳娜敏静丽艳娟霞秀玲桂英燕萍红雪琳晶倩婷颖洁琴云莉兰梅慧欣怡涵萱雨佳悦诗琪梦瑶璐彤妍馨思晓雅美丹清'.split('');

export const STREETS: readonly string[] = [
  '五四路', '东街', '八一七北路', '华林路', '杨桥中路', '工业路', '湖东路', '福新路', '六一中路', '金山大道',
  '人民路', '中山路', '解放路', '建设路', '和平路', '新华路', '文化路', '学府路', '滨江路', '长安路',
  '朝阳路', '幸福路', '光明路', '迎宾大道', '望江路', '南湖路', '北环路', '西二环路', '东浦路', '白马路',
];

export const ESTATES: readonly string[] = [
  '阳光', '融侨', '金辉', '世茂', '万科', '碧桂园', '香江', '天元', '紫阳', '温泉', '左海', '三盛', '正祥', '恒丰', '建发', '永同昌',
];

export const STATIONS: readonly string[] = [
  '东街', '南街', '温泉', '华大', '鼓东', '鼓西', '安泰', '水部', '五凤', '洪山', '新港', '上海', '瀛洲', '苍霞', '城门', '金山',
];

export const TOWNS: readonly string[] = ['城关', '上街', '南屿', '甘蔗', '青口', '白沙', '荆溪', '丹阳', '琯头', '新店', '东岭', '大湖'];
export const VILLAGES: readonly string[] = ['新村', '东山', '溪头', '后洋', '前坪', '山边', '湖头', '岭下', '洋里', '岐头', '坂中', '石门'];

/** 字号 of company names */
export const TRADE_NAMES: readonly string[] = [
  '恒信', '华通', '鑫源', '瑞祥', '闽发', '海峡', '榕城', '东方', '天成', '宏达', '金鼎', '博瑞', '中联', '安泰', '新锐', '卓越',
  '永盛', '长城', '嘉禾', '明德', '聚力', '云帆', '星辰', '锦程', '远航', '信达', '诚益', '同创', '和睿', '万川', '峰泰', '福瑞',
  '祥云', '德润', '鸿运', '旭日', '朗润', '青禾', '蓝海', '智汇', '优品', '众诚', '启明', '康达', '宝丰', '金源', '宏图', '汇通',
  '天宇', '海纳', '百川', '鼎盛', '中恒', '润泽', '华信', '正元', '益民', '鑫达', '晟华', '禾丰', '榕鑫', '闽江', '左海', '三山',
];

export interface Industry {
  word: string;
  scopes: readonly string[];
}

export const INDUSTRIES: readonly Industry[] = [
  { word: '科技', scopes: ['软件开发', '信息技术咨询服务', '信息系统集成服务', '数据处理和存储支持服务', '技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广', '计算机系统服务', '人工智能应用软件开发'] },
  { word: '贸易', scopes: ['日用百货销售', '五金产品批发', '电子产品销售', '服装服饰批发', '建筑材料销售', '货物进出口', '技术进出口'] },
  { word: '建设工程', scopes: ['建设工程施工', '住宅室内装饰装修', '园林绿化工程施工', '土石方工程施工', '市政设施管理', '建筑劳务分包'] },
  { word: '餐饮管理', scopes: ['餐饮服务', '餐饮管理', '食品销售', '外卖递送服务', '食品互联网销售'] },
  { word: '物流', scopes: ['道路货物运输（不含危险货物）', '普通货物仓储服务（不含危险化学品等需许可审批的项目）', '国内货物运输代理', '装卸搬运', '供应链管理服务'] },
  { word: '文化传媒', scopes: ['广告设计、代理', '组织文化艺术交流活动', '会议及展览服务', '图文设计制作', '数字内容制作服务（不含出版发行）'] },
  { word: '医疗器械', scopes: ['第一类医疗器械销售', '第二类医疗器械销售', '第三类医疗器械经营', '医护人员防护用品批发', '消毒剂销售（不含危险化学品）'] },
  { word: '机械设备', scopes: ['通用设备制造（不含特种设备制造）', '机械设备销售', '机械设备租赁', '专用设备修理', '普通机械设备安装服务'] },
  { word: '食品', scopes: ['食品生产', '食品销售', '农副产品销售', '初级农产品收购', '食用农产品批发'] },
  { word: '物业管理', scopes: ['物业管理', '停车场服务', '家政服务', '城市绿化管理', '专业保洁、清洗、消毒服务'] },
  { word: '企业管理咨询', scopes: ['企业管理咨询', '信息咨询服务（不含许可类信息咨询服务）', '市场调查（不含涉外调查）', '财务咨询', '企业形象策划'] },
  { word: '新能源科技', scopes: ['太阳能发电技术服务', '新能源汽车整车销售', '充电桩销售', '电池销售', '储能技术服务'] },
];

export interface Shop {
  word: string;
  scopes: readonly string[];
}

/** 个体工商户 */
export const SHOPS: readonly Shop[] = [
  { word: '小吃店', scopes: ['小餐饮', '食品销售（仅销售预包装食品）'] },
  { word: '便利店', scopes: ['食品销售（仅销售预包装食品）', '日用百货销售', '烟草制品零售'] },
  { word: '五金店', scopes: ['五金产品零售', '建筑材料销售', '电线、电缆经营'] },
  { word: '理发店', scopes: ['理发服务', '美容服务'] },
  { word: '水果店', scopes: ['新鲜水果零售', '食用农产品零售'] },
  { word: '服装店', scopes: ['服装服饰零售', '鞋帽零售'] },
  { word: '汽车修理厂', scopes: ['机动车修理和维护', '汽车零配件零售'] },
  { word: '茶叶店', scopes: ['茶叶零售', '茶具销售', '食品销售（仅销售预包装食品）'] },
  { word: '早餐店', scopes: ['小餐饮', '餐饮服务'] },
  { word: '日用品商行', scopes: ['日用百货销售', '日用杂品销售', '化妆品零售'] },
];

/** 农民专业合作社 */
export const COOP_PRODUCTS: readonly string[] = ['果蔬', '茶叶', '食用菌', '水产养殖', '花卉', '生猪养殖', '稻米', '中药材'];

export const SCOPE_SUFFIX = '（依法须经批准的项目，经相关部门批准后方可开展经营活动）';

/** 联合奖惩措施 codes the credit platform attaches to its entries (JC 惩戒 for BLACK, JL 激励 for RED). */
export const CREDIT_MEASURES: Readonly<Record<string, string>> = {
  'JC-0101': '限制高消费',
  'JC-0102': '限制乘坐飞机、列车软卧、G字头动车组列车全部座位和其他动车组列车一等以上座位',
  'JC-0103': '限制出境',
  'JC-0201': '禁止参与政府采购活动',
  'JC-0202': '限制参与工程招标投标',
  'JC-0205': '限制取得政府供应土地',
  'JC-0301': '限制担任企业法定代表人、董事、监事、高级管理人员',
  'JC-0401': '限制申请财政补助资金',
  'JL-0101': '行政审批“绿色通道”',
  'JL-0102': '容缺受理',
  'JL-0201': '减少日常监督检查频次',
  'JL-0301': '优先安排财政补助资金',
};
