import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { actEntry } from '../audit/acts.ts';
import { appendInTransaction, type AuditRecord } from '../audit/writer.ts';
import { actorOf, requireRole, type HubContext } from '../core/context.ts';
import { badInput, HubError, isUniqueViolation } from '../core/errors.ts';
import { shanghaiDate } from '../core/time.ts';
import { notify } from '../db/index.ts';
import { RESOURCES_CHANNEL, validateResourceInput, type Resource, type ResourceFieldInput, type ResourceInput, type ResourceStatus } from './resources.ts';
import { departments, resources, type ResourceField } from './schema.ts';

/**
 * 目录导出与导入: the resource directory as a document another hub (or a provincial 目录系统) can read. The GB/T
 * 21063.3-2007 form is the exchange format and round-trips; the DCAT-AP form is a read-only view for EU-style
 * portals and linked-data tools.
 */

export type CatalogueFormat = 'GBT21063' | 'DCAT_AP';
export const CATALOGUE_FORMATS: readonly CatalogueFormat[] = ['GBT21063', 'DCAT_AP'];

/** The standard the GBT21063 document names in 标准, and refuses others by. */
export const GBT21063_STANDARD = 'GB/T 21063.3-2007';
/** dct:conformsTo of every DCAT dataset: there is no registered URN namespace for Chinese standards, so the hub names one. */
export const GBT21063_URN = 'urn:std:gb-t:21063.3-2007';
export const HUB_VOCAB = 'urn:hub:vocab#';

/** 信息项: GB/T 21063.3 names the data-item metadata this way. */
export interface GbtField {
  信息项名称: string;
  信息项代码: string;
  数据类型: string;
  数据长度: number | null;
  是否敏感: '是' | '否';
}

/** One 信息资源 with the GB/T 21063.3 core metadata and the hub's extensions (基础库类型 onward). */
export interface GbtResource {
  信息资源分类: '基础' | '主题' | '部门';
  信息资源名称: string;
  信息资源代码: string;
  信息资源提供方: string;
  信息资源提供方代码: string;
  信息资源摘要: string | null;
  信息资源格式: '库表' | '接口' | '文件' | null;
  信息项信息: GbtField[];
  共享属性: {
    共享类型: '无条件共享' | '有条件共享' | '不予共享';
    共享条件: string | null;
    共享方式: string | null;
    /** The hub's legalBasis: the 依据 of 不予共享, and of 有条件共享 when the provider gives one. */
    不予共享依据: string | null;
  };
  开放属性: {
    是否向社会开放: '是' | '否';
    开放条件: string | null;
    /** Hub extension: 是/否 alone cannot tell 有条件开放 without a stated condition from 无条件开放. */
    开放类型: '无条件开放' | '有条件开放' | '不予开放';
  };
  更新周期: string | null;
  /** YYYY-MM-DD, the Asia/Shanghai date of publication; null for a draft. */
  发布日期: string | null;
  关联资源代码: string[];
  基础库类型: string | null;
  版本: number;
  状态: ResourceStatus;
  /** Hub extensions for a RETIRED resource, so an import rebuilds it as it was. */
  停用日期: string | null;
  停用原因: string | null;
}

export interface GbtCatalogue {
  标准: typeof GBT21063_STANDARD;
  导出时间: string;
  资源: GbtResource[];
}

export interface ImportReport {
  created: number;
  updated: number;
  unchanged: number;
}

// ——— Code lists: the hub's enums ↔ the Chinese terms of the 目录编制指南 ———

const CATEGORY_ZH = { BASE: '基础', THEME: '主题', DEPARTMENT: '部门' } as const;
const FORMAT_ZH = { TABLE: '库表', API: '接口', FILE: '文件' } as const;
const SHARING_ZH = { UNCONDITIONAL: '无条件共享', CONDITIONAL: '有条件共享', NONE: '不予共享' } as const;
const OPEN_ZH = { UNCONDITIONAL: '无条件开放', CONDITIONAL: '有条件开放', NONE: '不予开放' } as const;
const CYCLE_ZH = {
  REALTIME: '实时',
  DAILY: '每日',
  WEEKLY: '每周',
  MONTHLY: '每月',
  QUARTERLY: '每季度',
  HALF_YEARLY: '每半年',
  YEARLY: '每年',
  IRREGULAR: '不定期',
} as const;

/** EU access-right authority table: DCAT-AP's vocabulary for 开放属性 (open to the public or not), not 共享属性. */
const EU_ACCESS_RIGHT = 'http://publications.europa.eu/resource/authority/access-right/';
const ACCESS_RIGHT = { UNCONDITIONAL: 'PUBLIC', CONDITIONAL: 'RESTRICTED', NONE: 'NON_PUBLIC' } as const;
/** EU frequency authority table. */
const EU_FREQUENCY = 'http://publications.europa.eu/resource/authority/frequency/';
const FREQUENCY = {
  REALTIME: 'UPDATE_CONT',
  DAILY: 'DAILY',
  WEEKLY: 'WEEKLY',
  MONTHLY: 'MONTHLY',
  QUARTERLY: 'QUARTERLY',
  HALF_YEARLY: 'ANNUAL_2',
  YEARLY: 'ANNUAL',
  IRREGULAR: 'IRREG',
} as const;

function reverse<K extends string, V extends string>(map: Record<K, V>): Map<string, K> {
  return new Map(Object.entries(map).map(([k, v]) => [v as string, k as K]));
}
const CATEGORY_FROM_ZH = reverse(CATEGORY_ZH);
const SHARING_FROM_ZH = reverse(SHARING_ZH);
const OPEN_FROM_ZH = reverse(OPEN_ZH);
const CYCLE_FROM_ZH = reverse(CYCLE_ZH);

const lookup = <T extends string>(map: Record<string, T>, key: string | null): T | null => (key !== null && Object.hasOwn(map, key) ? map[key]! : null);

/** The Asia/Shanghai calendar date of an instant (China keeps no summer time, so a fixed +08:00 is exact). */
const dateOf = (at: Date | null): string | null => (at ? shanghaiDate(at) : null);

// ——— Export ———

type Row = Resource & { providerName: string };

/**
 * The current version of every resource the caller may list, in code order. Non-admins see PUBLISHED ones only: a
 * catalogue leaves the hub, so drafts (not yet decided) and retired resources (no new use) stay inside it.
 */
async function currentRows(ctx: HubContext): Promise<Row[]> {
  const admin = ctx.principal.roles.includes('admin');
  const rows = await ctx.db
    .select({ resource: resources, providerName: departments.name })
    .from(resources)
    .innerJoin(departments, eq(departments.code, resources.providerCode))
    .where(admin ? eq(resources.current, true) : and(eq(resources.current, true), eq(resources.status, 'PUBLISHED')))
    .orderBy(asc(resources.code));
  return rows.map((r) => ({ ...r.resource, providerName: r.providerName }));
}

function gbtFields(fields: ResourceField[]): GbtField[] {
  return fields.map((f) => ({ 信息项名称: f.name, 信息项代码: f.code, 数据类型: f.dataType, 数据长度: f.length ?? null, 是否敏感: f.sensitive ? '是' : '否' }));
}

function toGbt(r: Row): GbtResource {
  return {
    信息资源分类: CATEGORY_ZH[r.category],
    信息资源名称: r.name,
    信息资源代码: r.code,
    信息资源提供方: r.providerName,
    信息资源提供方代码: r.providerCode,
    信息资源摘要: r.summary,
    信息资源格式: lookup(FORMAT_ZH, r.format),
    信息项信息: gbtFields(r.fields),
    共享属性: { 共享类型: SHARING_ZH[r.sharingType], 共享条件: r.sharingCondition, 共享方式: r.sharingMethod, 不予共享依据: r.legalBasis },
    开放属性: { 是否向社会开放: r.openType === 'NONE' ? '否' : '是', 开放条件: r.openCondition, 开放类型: OPEN_ZH[r.openType] },
    // A cycle outside the code list (none today: validateResourceInput refuses them) is passed on rather than lost.
    更新周期: r.updateCycle === null ? null : (lookup(CYCLE_ZH, r.updateCycle) ?? r.updateCycle),
    发布日期: dateOf(r.publishedAt),
    关联资源代码: r.relatedCodes,
    基础库类型: r.baseKind,
    版本: r.version,
    状态: r.status,
    停用日期: dateOf(r.retiredAt),
    停用原因: r.retiredReason,
  };
}

const zh = (value: string) => ({ '@value': value, '@language': 'zh' });

function toDcat(r: Row): Record<string, unknown> {
  const dataset: Record<string, unknown> = {
    '@id': `urn:hub:resource:${r.code}`,
    '@type': 'dcat:Dataset',
    'dct:identifier': r.code,
    'dct:title': zh(r.name),
    'dct:publisher': { '@type': 'foaf:Agent', 'foaf:name': r.providerName, 'dct:identifier': r.providerCode },
    'dct:accessRights': { '@id': EU_ACCESS_RIGHT + ACCESS_RIGHT[r.openType] },
    'dct:conformsTo': { '@id': GBT21063_URN },
    'dcat:keyword': r.fields.map((f) => zh(f.name)),
    'hub:sharingType': r.sharingType,
    'hub:fields': gbtFields(r.fields),
    'hub:version': r.version,
    'hub:status': r.status,
  };
  if (r.summary) dataset['dct:description'] = zh(r.summary);
  const frequency = lookup(FREQUENCY, r.updateCycle);
  if (frequency) dataset['dct:accrualPeriodicity'] = { '@id': EU_FREQUENCY + frequency };
  const issued = dateOf(r.publishedAt);
  if (issued) dataset['dct:issued'] = { '@value': issued, '@type': 'xsd:date' };
  return dataset;
}

/**
 * The JSON-LD 1.1 context. hub:fields is declared a JSON literal (@json) so the 信息项 objects, whose keys are
 * Chinese names and not IRIs, survive expansion instead of being dropped.
 */
const DCAT_CONTEXT = {
  '@version': 1.1,
  dcat: 'http://www.w3.org/ns/dcat#',
  dct: 'http://purl.org/dc/terms/',
  foaf: 'http://xmlns.com/foaf/0.1/',
  xsd: 'http://www.w3.org/2001/XMLSchema#',
  hub: HUB_VOCAB,
  'hub:fields': { '@id': `${HUB_VOCAB}fields`, '@type': '@json' },
};

/**
 * exportCatalogue: the directory as one document, GBT21063 (which importCatalogue reads back) or DCAT_AP (JSON-LD,
 * export only). Any authenticated role may export: the catalogue is what consumers browse before they request.
 */
export async function exportCatalogue(ctx: HubContext, format: CatalogueFormat): Promise<unknown> {
  requireRole(ctx, 'consumer', 'provider', 'issuer', 'auditor', 'admin');
  if (!CATALOGUE_FORMATS.includes(format)) throw badInput('format', `format must be one of ${CATALOGUE_FORMATS.join(', ')} (got "${String(format)}")`);
  const rows = await currentRows(ctx);
  const exportedAt = new Date().toISOString();
  if (format === 'GBT21063') {
    const doc: GbtCatalogue = { 标准: GBT21063_STANDARD, 导出时间: exportedAt, 资源: rows.map(toGbt) };
    return doc;
  }
  return {
    '@context': DCAT_CONTEXT,
    '@type': 'dcat:Catalog',
    'dct:title': zh('政务信息资源目录'),
    'dct:modified': { '@value': exportedAt, '@type': 'xsd:dateTime' },
    'dct:conformsTo': { '@id': GBT21063_URN },
    'dcat:dataset': rows.map(toDcat),
  };
}

// ——— Import ———

/** Reads one member of a document object: absent and null are null, anything but a string is refused. */
function optString(obj: Record<string, unknown>, key: string, field: string): string | null {
  const v = obj[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw badInput(field, `${key} must be a string`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optObject(obj: Record<string, unknown>, key: string, field: string): Record<string, unknown> {
  const v = obj[key];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw badInput(field, `${key} must be an object`);
  return v;
}

/** A Chinese term → the hub's code; an unknown term is refused with the list, so a typo does not pass as null. */
function fromZh<T extends string>(map: Map<string, T>, value: string | null, field: string, label: string): string | null {
  if (value === null) return null;
  const code = map.get(value.trim());
  if (code) return code;
  throw badInput(field, `${label} must be one of ${[...map.keys()].join('、')} (got "${value}")`);
}

function parseSensitive(v: unknown, field: string): boolean {
  if (v === undefined || v === null || v === '否' || v === false) return false;
  if (v === '是' || v === true) return true;
  throw badInput(field, '是否敏感 must be 是 or 否');
}

function parseDate(value: string | null, field: string, label: string): Date | null {
  if (value === null) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value.trim());
  const at = m ? new Date(`${m[1]}-${m[2]}-${m[3]}T00:00:00+08:00`) : null;
  if (!at || Number.isNaN(at.getTime()) || dateOf(at) !== value.trim()) throw badInput(field, `${label} must be a date YYYY-MM-DD (got "${value}")`);
  return at;
}

interface ImportEntry {
  values: ReturnType<typeof validateResourceInput>;
  status: ResourceStatus;
  publishedAt: Date | null;
  retiredAt: Date | null;
  retiredReason: string | null;
}

/**
 * One 资源 entry → ResourceInput, plus what the hub extensions say about its state. Field names in errors are the
 * ResourceInput names (as validateResourceInput reports them); the caller prefixes the entry index.
 */
function readEntry(entry: unknown): { input: ResourceInput; status: ResourceStatus; publishedAt: Date | null; retiredAt: Date | null; retiredReason: string | null } {
  if (!isObject(entry)) throw badInput('', 'each 资源 entry must be an object');
  const sharing = optObject(entry, '共享属性', 'sharingType');
  const open = optObject(entry, '开放属性', 'openType');

  const openTypeZh = optString(open, '开放类型', 'openType');
  const isOpen = optString(open, '是否向社会开放', 'openType');
  const openCondition = optString(open, '开放条件', 'openCondition');
  if (isOpen !== null && isOpen !== '是' && isOpen !== '否') throw badInput('openType', `是否向社会开放 must be 是 or 否 (got "${isOpen}")`);
  let openType = fromZh(OPEN_FROM_ZH, openTypeZh, 'openType', '开放类型');
  if (openType === null) {
    // A catalogue from outside the hub has only 是/否: a stated 开放条件 makes it 有条件开放.
    openType = isOpen === '是' ? (openCondition?.trim() ? 'CONDITIONAL' : 'UNCONDITIONAL') : 'NONE';
  } else if (isOpen !== null && (isOpen === '否') !== (openType === 'NONE')) {
    throw badInput('openType', `是否向社会开放 ${isOpen} contradicts 开放类型 ${openTypeZh}`);
  }

  const rawFields = entry['信息项信息'];
  if (!Array.isArray(rawFields)) throw badInput('fields', '信息项信息 must be an array of 信息项');
  const fields: ResourceFieldInput[] = rawFields.map((f, i) => {
    const at = `fields[${i}]`;
    if (!isObject(f)) throw badInput(at, 'each 信息项 must be an object');
    const length = f['数据长度'];
    if (length !== undefined && length !== null && typeof length !== 'number') throw badInput(`${at}.length`, '数据长度 must be a number');
    return {
      code: optString(f, '信息项代码', `${at}.code`) ?? '',
      name: optString(f, '信息项名称', `${at}.name`) ?? '',
      dataType: optString(f, '数据类型', `${at}.dataType`) ?? '',
      length: length ?? null,
      sensitive: parseSensitive(f['是否敏感'], `${at}.sensitive`),
    };
  });

  const related = entry['关联资源代码'];
  if (related !== undefined && related !== null && (!Array.isArray(related) || related.some((c) => typeof c !== 'string'))) {
    throw badInput('relatedCodes', '关联资源代码 must be an array of 资源代码');
  }

  const statusRaw = optString(entry, '状态', 'status');
  const status: ResourceStatus = statusRaw === null ? 'PUBLISHED' : (statusRaw as ResourceStatus);
  if (!['DRAFT', 'PUBLISHED', 'RETIRED'].includes(status)) throw badInput('status', `状态 must be DRAFT, PUBLISHED or RETIRED (got "${statusRaw}")`);
  const version = entry['版本'];
  if (version !== undefined && version !== null && !(Number.isInteger(version) && (version as number) >= 1)) throw badInput('version', '版本 must be a positive integer');

  const input: ResourceInput = {
    code: optString(entry, '信息资源代码', 'code') ?? '',
    name: optString(entry, '信息资源名称', 'name') ?? '',
    category: fromZh(CATEGORY_FROM_ZH, optString(entry, '信息资源分类', 'category'), 'category', '信息资源分类') ?? '',
    baseKind: optString(entry, '基础库类型', 'baseKind'),
    providerCode: (optString(entry, '信息资源提供方代码', 'providerCode') ?? '').trim().toUpperCase(),
    summary: optString(entry, '信息资源摘要', 'summary'),
    // 库表/接口/文件 (and TABLE/API/FILE) are validateResourceInput's own aliases.
    format: optString(entry, '信息资源格式', 'format'),
    updateCycle: fromZh(CYCLE_FROM_ZH, optString(entry, '更新周期', 'updateCycle'), 'updateCycle', '更新周期'),
    sharingType: fromZh(SHARING_FROM_ZH, optString(sharing, '共享类型', 'sharingType'), 'sharingType', '共享类型') ?? '',
    sharingCondition: optString(sharing, '共享条件', 'sharingCondition'),
    sharingMethod: optString(sharing, '共享方式', 'sharingMethod'),
    legalBasis: optString(sharing, '不予共享依据', 'legalBasis'),
    openType,
    openCondition,
    relatedCodes: (related as string[] | null | undefined) ?? [],
    fields,
  };
  const publishedAt = status === 'DRAFT' ? null : parseDate(optString(entry, '发布日期', 'publishedAt'), 'publishedAt', '发布日期');
  const retiredAt = status === 'RETIRED' ? parseDate(optString(entry, '停用日期', 'retiredAt'), 'retiredAt', '停用日期') : null;
  const retiredReason = status === 'RETIRED' ? (optString(entry, '停用原因', 'retiredReason')?.trim() || '目录导入时已停用') : null;
  return { input, status, publishedAt, retiredAt, retiredReason };
}

/** The same error, its field prefixed with the entry: 资源[1].fields[0].dataType tells the editor where to look. */
function atEntry(error: unknown, index: number, code: string | null): unknown {
  if (!(error instanceof HubError)) return error;
  const inner = typeof error.extensions.field === 'string' ? error.extensions.field : '';
  const field = `资源[${index}]${inner ? `.${inner}` : ''}`;
  const message = `资源[${index}]${code ? ` (${code})` : ''}: ${error.message}`;
  return new HubError(error.code, message, { ...error.extensions, field }, { cause: error });
}

/**
 * The validated content compared field by field: jsonb does not keep key order, so the row's 信息项 are rebuilt in
 * a fixed shape before comparing.
 */
function contentKey(v: ImportEntry['values'] | Resource): string {
  return JSON.stringify([
    v.code,
    v.name,
    v.category,
    v.baseKind,
    v.providerCode,
    v.summary,
    v.format,
    v.updateCycle,
    v.sharingType,
    v.sharingCondition,
    v.sharingMethod,
    v.legalBasis,
    v.openType,
    v.openCondition,
    v.relatedCodes,
    v.fields.map((f) => [f.code, f.name, f.dataType, f.length ?? null, Boolean(f.sensitive)]),
  ]);
}

/**
 * importCatalogue: loads a GBT21063 document (admin only). Every entry is read and validated before anything is
 * written, and all writes share one transaction, so a catalogue goes in whole or not at all. A new code arrives as
 * version 1 in its exported state; a changed one follows updateResource (a draft in place, otherwise a new
 * published version with the old one kept readable); a retired one cannot change (CONFLICT).
 */
export async function importCatalogue(ctx: HubContext, document: unknown): Promise<ImportReport> {
  requireRole(ctx, 'admin');
  if (!isObject(document)) throw badInput('资源', 'the catalogue must be a GBT21063 document (an object with 资源)');
  const standard = document['标准'];
  if (standard !== undefined && standard !== GBT21063_STANDARD) {
    throw badInput('标准', `the catalogue follows ${String(standard)}; this hub reads ${GBT21063_STANDARD} documents (export with format GBT21063)`);
  }
  const list = document['资源'];
  if (!Array.isArray(list)) throw badInput('资源', '资源 must be an array of resources');

  const entries: ImportEntry[] = [];
  const seen = new Map<string, number>();
  list.forEach((raw, i) => {
    let code: string | null = null;
    try {
      const { input, ...state } = readEntry(raw);
      code = input.code || null;
      const values = validateResourceInput(input);
      const first = seen.get(values.code);
      if (first !== undefined) throw badInput('code', `资源代码 ${values.code} appears already as 资源[${first}]`);
      seen.set(values.code, i);
      entries.push({ values, ...state });
    } catch (error) {
      throw atEntry(error, i, code);
    }
  });

  const providers = [...new Set(entries.map((e) => e.values.providerCode))];
  const known = new Set(
    providers.length === 0
      ? []
      : (await ctx.db.select({ code: departments.code }).from(departments).where(inArray(departments.code, providers))).map((d) => d.code),
  );
  entries.forEach((e, i) => {
    if (!known.has(e.values.providerCode)) {
      throw atEntry(badInput('providerCode', `department ${e.values.providerCode} is not registered; register it before importing`), i, e.values.code);
    }
  });

  const report: ImportReport = { created: 0, updated: 0, unchanged: 0 };
  const changedBy = ctx.principal.clientId;
  const actor = actorOf(ctx);
  const acts: AuditRecord[] = [];
  try {
    await ctx.db.transaction(async (tx) => {
      for (const [i, e] of entries.entries()) {
        const code = e.values.code;
        // Lock the current version, as updateResource does, so a concurrent edit cannot also make version N+1.
        const [current] = await tx
          .select()
          .from(resources)
          .where(and(eq(resources.code, code), eq(resources.current, true)))
          .for('update');
        if (!current) {
          await tx.insert(resources).values({
            ...e.values,
            version: 1,
            current: true,
            status: e.status,
            publishedAt: e.status === 'DRAFT' ? null : (e.publishedAt ?? sql`now()`),
            retiredAt: e.status === 'RETIRED' ? (e.retiredAt ?? sql`now()`) : null,
            retiredReason: e.retiredReason,
            changedBy,
          });
          report.created++;
          acts.push(actEntry(actor, 'RESOURCE_IMPORT', { resourceCode: code, details: { version: 1, status: e.status, providerCode: e.values.providerCode, baseKind: e.values.baseKind } }));
        } else if (contentKey(current) === contentKey(e.values)) {
          report.unchanged++;
          continue;
        } else if (current.status === 'RETIRED') {
          throw atEntry(new HubError('CONFLICT', `resource ${code} is retired and cannot change`), i, code);
        } else if (current.status === 'DRAFT') {
          await tx
            .update(resources)
            .set({ ...e.values, changedBy, updatedAt: sql`now()` })
            .where(and(eq(resources.code, code), eq(resources.version, current.version)));
          report.updated++;
          acts.push(actEntry(actor, 'RESOURCE_IMPORT', { resourceCode: code, details: { version: current.version, status: 'DRAFT', providerCode: e.values.providerCode, baseKind: e.values.baseKind } }));
        } else {
          await tx.update(resources).set({ current: false, updatedAt: sql`now()` }).where(and(eq(resources.code, code), eq(resources.version, current.version)));
          await tx.insert(resources).values({
            ...e.values,
            version: current.version + 1,
            current: true,
            status: 'PUBLISHED',
            publishedAt: sql`now()`,
            changedBy,
          });
          report.updated++;
          acts.push(actEntry(actor, 'RESOURCE_IMPORT', { resourceCode: code, details: { version: current.version + 1, previousVersion: current.version, status: 'PUBLISHED', providerCode: e.values.providerCode, baseKind: e.values.baseKind } }));
        }
        await notify(tx, RESOURCES_CHANNEL, code);
      }
      // each resource the catalogue created or changed, in the import's transaction (a provider changed here changes
      // who is the authoritative source of a base kind)
      await appendInTransaction(tx, acts);
    });
  } catch (error) {
    if (isUniqueViolation(error)) throw new HubError('CONFLICT', 'a resource in the catalogue was registered meanwhile; import again', {}, { cause: error });
    throw error;
  }
  ctx.log.info({ ...report, requestId: ctx.requestId }, 'resource catalogue imported');
  return report;
}
