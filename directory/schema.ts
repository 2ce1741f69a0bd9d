import { boolean, check, date, index, integer, jsonb, pgTable, primaryKey, text, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { at, createdAt, updatedAt } from '../db/columns.ts';

/** 部门: a department, named everywhere by its 统一社会信用代码. */
export const departments = pgTable(
  'departments',
  {
    code: text('code').primaryKey(),
    name: text('name').notNull(),
    /** 6-digit 行政区划代码 */
    region: text('region').notNull(),
    /** 省 / 市 / 县 */
    level: text('level', { enum: ['PROVINCE', 'CITY', 'COUNTY'] }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check('departments_region_ck', sql`${t.region} ~ '^[0-9]{6}$'`),
    check('departments_level_ck', sql`${t.level} in ('PROVINCE', 'CITY', 'COUNTY')`),
  ],
);

/** 工作日历: the State Council's yearly holiday notice — holidays, and 调休 make-up working days (often Saturdays). */
export const workingCalendar = pgTable(
  'working_calendar',
  {
    day: date('day', { mode: 'string' }).primaryKey(),
    kind: text('kind', { enum: ['HOLIDAY', 'WORKDAY'] }).notNull(),
    name: text('name').notNull(),
  },
  (t) => [check('working_calendar_kind_ck', sql`${t.kind} in ('HOLIDAY', 'WORKDAY')`)],
);

/** Which years' notices are loaded: outside them only weekends count as rest days, and due dates say so. */
export const calendarYears = pgTable('calendar_years', {
  year: integer('year').primaryKey(),
  source: text('source').notNull(),
  loadedAt: createdAt(),
});

export const RESOURCE_CATEGORIES = ['BASE', 'THEME', 'DEPARTMENT'] as const;
export const BASE_KINDS = ['POPULATION', 'LEGAL_PERSON', 'CREDIT', 'LICENCE', 'GEO', 'MACRO'] as const;
export const SHARING_TYPES = ['UNCONDITIONAL', 'CONDITIONAL', 'NONE'] as const;
export const OPEN_TYPES = ['UNCONDITIONAL', 'CONDITIONAL', 'NONE'] as const;
export const RESOURCE_STATUSES = ['DRAFT', 'PUBLISHED', 'RETIRED'] as const;

/** 信息项: one data item of a resource. */
export interface ResourceField {
  code: string;
  name: string;
  dataType: string;
  length: number | null;
  /** 敏感: masked unless a grant allows it unmasked */
  sensitive: boolean;
}

/**
 * 政务信息资源: one row per version. Editing a draft changes it in place; editing a published resource adds a new
 * version and the old one stays readable (`current` marks the one in force).
 */
export const resources = pgTable(
  'resources',
  {
    code: text('code').notNull(),
    version: integer('version').notNull(),
    current: boolean('current').notNull(),
    name: text('name').notNull(),
    category: text('category', { enum: RESOURCE_CATEGORIES }).notNull(),
    baseKind: text('base_kind', { enum: BASE_KINDS }),
    providerCode: text('provider_code')
      .notNull()
      .references(() => departments.code),
    summary: text('summary'),
    format: text('format'),
    updateCycle: text('update_cycle'),
    sharingType: text('sharing_type', { enum: SHARING_TYPES }).notNull(),
    sharingCondition: text('sharing_condition'),
    sharingMethod: text('sharing_method'),
    /** 不予共享 / 有条件共享的依据 */
    legalBasis: text('legal_basis'),
    openType: text('open_type', { enum: OPEN_TYPES }).notNull().default('NONE'),
    openCondition: text('open_condition'),
    relatedCodes: text('related_codes').array().notNull().default(sql`'{}'::text[]`),
    fields: jsonb('fields').$type<ResourceField[]>().notNull(),
    status: text('status', { enum: RESOURCE_STATUSES }).notNull(),
    publishedAt: at('published_at'),
    retiredAt: at('retired_at'),
    retiredReason: text('retired_reason'),
    /** name, summary, 信息项 names and codes: what `resources(query)` searches (pg_trgm index, ILIKE) */
    searchText: text('search_text').notNull(),
    changedBy: text('changed_by').notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ columns: [t.code, t.version] }),
    uniqueIndex('resources_current_uq').on(t.code).where(sql`${t.current}`),
    index('resources_provider_idx').on(t.providerCode),
    index('resources_search_trgm').using('gin', sql`${t.searchText} gin_trgm_ops`),
    check('resources_category_ck', sql`${t.category} in ('BASE', 'THEME', 'DEPARTMENT')`),
    check('resources_sharing_ck', sql`${t.sharingType} in ('UNCONDITIONAL', 'CONDITIONAL', 'NONE')`),
    check('resources_open_ck', sql`${t.openType} in ('UNCONDITIONAL', 'CONDITIONAL', 'NONE')`),
    check('resources_status_ck', sql`${t.status} in ('DRAFT', 'PUBLISHED', 'RETIRED')`),
  ],
);

export const REQUEST_STATUSES = ['PENDING', 'APPROVED', 'REFUSED'] as const;

/** 共享申请: a consumer's request for a resource's 信息项, for named service items. */
export const accessRequests = pgTable(
  'access_requests',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    resourceCode: text('resource_code').notNull(),
    resourceVersion: integer('resource_version').notNull(),
    /** → clients.client_id (foreign key in the custom migration: auth/ imports this room, not the reverse) */
    clientId: text('client_id').notNull(),
    departmentCode: text('department_code').notNull(),
    providerCode: text('provider_code').notNull(),
    fields: text('fields').array().notNull(),
    fullFields: text('full_fields').array().notNull(),
    itemCodes: text('item_codes').array().notNull(),
    /** 调用权限 on the licence base resource: the 证照类型 asked for (null for any other resource) */
    licenceTypes: text('licence_types').array(),
    purpose: text('purpose').notNull(),
    legalBasis: text('legal_basis'),
    validUntil: at('valid_until'),
    status: text('status', { enum: REQUEST_STATUSES }).notNull(),
    reason: text('reason'),
    dueAt: at('due_at'),
    dueProvisional: boolean('due_provisional').notNull().default(false),
    decidedBy: text('decided_by'),
    decidedAt: at('decided_at'),
    overdueNotifiedAt: at('overdue_notified_at'),
    createdAt: createdAt(),
  },
  (t) => [
    index('access_requests_provider_idx').on(t.providerCode, t.status),
    index('access_requests_client_idx').on(t.clientId),
    check('access_requests_status_ck', sql`${t.status} in ('PENDING', 'APPROVED', 'REFUSED')`),
  ],
);

/** 授权: what one client may read of one resource, for which items, until when. */
export const grants = pgTable(
  'grants',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    requestId: uuid('request_id').references(() => accessRequests.id),
    /** → clients.client_id (foreign key in the custom migration: auth/ imports this room, not the reverse) */
    clientId: text('client_id').notNull(),
    resourceCode: text('resource_code').notNull(),
    fields: text('fields').array().notNull(),
    unmaskedFields: text('unmasked_fields').array().notNull(),
    itemCodes: text('item_codes').array().notNull(),
    /** 调用权限 on the licence base resource: the 证照类型 it opens, and no other (null for any other resource) */
    licenceTypes: text('licence_types').array(),
    expiresAt: at('expires_at'),
    grantedBy: text('granted_by').notNull(),
    createdAt: createdAt(),
    revokedAt: at('revoked_at'),
    revokedBy: text('revoked_by'),
    revokeReason: text('revoke_reason'),
  },
  (t) => [index('grants_client_idx').on(t.clientId, t.resourceCode), index('grants_resource_idx').on(t.resourceCode)],
);

/** 政务服务事项 */
export const serviceItems = pgTable('service_items', {
  code: text('code').primaryKey(),
  name: text('name').notNull(),
  departmentCode: text('department_code')
    .notNull()
    .references(() => departments.code),
  /** 联合奖惩 measure codes that apply to applicants of this item */
  measureCodes: text('measure_codes').array().notNull().default(sql`'{}'::text[]`),
  searchText: text('search_text').notNull(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** Where a material can come from, in order of preference. */
export type MaterialSource =
  | { kind: 'LICENCE'; licenceTypeCode: string }
  | { kind: 'DATA'; resourceCode: string; fields: string[] }
  | { kind: 'SUBMIT' };

/** 申请材料 of a service item. */
export const materials = pgTable(
  'materials',
  {
    itemCode: text('item_code')
      .notNull()
      .references(() => serviceItems.code),
    code: text('code').notNull(),
    name: text('name').notNull(),
    position: integer('position').notNull(),
    sources: jsonb('sources').$type<MaterialSource[]>().notNull(),
    /** NONE, 容缺 (may be missing at acceptance, due within toleranceDays working days), 告知承诺 */
    tolerance: text('tolerance', { enum: ['NONE', 'RONGQUE', 'COMMITMENT'] }).notNull().default('NONE'),
    toleranceDays: integer('tolerance_days'),
    commitmentText: text('commitment_text'),
  },
  (t) => [primaryKey({ columns: [t.itemCode, t.code] }), check('materials_tolerance_ck', sql`${t.tolerance} in ('NONE', 'RONGQUE', 'COMMITMENT')`)],
);

/** "一件事": several items applied for together, with one set of materials. */
export const bundles = pgTable('bundles', {
  code: text('code').primaryKey(),
  name: text('name').notNull(),
  createdAt: createdAt(),
});

export const bundleItems = pgTable(
  'bundle_items',
  {
    bundleCode: text('bundle_code')
      .notNull()
      .references(() => bundles.code),
    itemCode: text('item_code')
      .notNull()
      .references(() => serviceItems.code),
    position: integer('position').notNull(),
  },
  (t) => [primaryKey({ columns: [t.bundleCode, t.itemCode] })],
);

/** Notices to a department (new and overdue requests), listed in GraphQL and sent to its webhook when it has one. */
export const notifications = pgTable(
  'notifications',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    departmentCode: text('department_code').notNull(),
    kind: text('kind').notNull(),
    subjectId: text('subject_id').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    deliveredAt: at('delivered_at'),
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
  },
  (t) => [
    index('notifications_department_idx').on(t.departmentCode, t.createdAt),
    uniqueIndex('notifications_once_uq').on(t.kind, t.subjectId),
  ],
);

/** A department's webhook; the signing secret is sealed under HUB_MASTER_KEY. */
export const departmentWebhooks = pgTable('department_webhooks', {
  departmentCode: text('department_code')
    .primaryKey()
    .references(() => departments.code),
  url: text('url').notNull(),
  secretEnc: text('secret_enc').notNull(),
  updatedAt: updatedAt(),
});
