import http from 'node:http';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../core/context.ts';
import { createLogger } from '../core/logger.ts';
import { openDatabase, rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS } from '../db/seeds/demo.ts';
import { listAccessRequests, markOverdueRequests, requestAccess } from '../directory/access.ts';
import { loadWorkingCalendar } from '../directory/calendar.ts';
import { STATE_COUNCIL_CALENDARS } from '../directory/calendar-data.ts';
import { registerServiceItem } from '../directory/items.ts';
import { deliverNotifications } from '../directory/notifications.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, type TestHub } from './helpers/hub.ts';

const [POLICE, MARKET, , APPROVAL, DATA] = DEMO_DEPARTMENTS.map((d) => d.code);
const log = createLogger({ level: 'silent' });

const RESOURCE_FIELDS = 'code version current name status sharingType baseKind providerCode fields { code name sensitive } legalBasis';

function resourceInput(code: string, over: Record<string, unknown> = {}) {
  return {
    code,
    name: '人口基础信息',
    category: 'BASE',
    baseKind: 'POPULATION',
    providerCode: POLICE,
    summary: '户籍人口的身份与户籍登记信息',
    format: 'API',
    updateCycle: 'DAILY',
    sharingType: 'CONDITIONAL',
    sharingCondition: '办理事项时核验身份',
    fields: [
      { code: 'idNumber', name: '公民身份号码', dataType: 'C', length: 18, sensitive: true },
      { code: 'name', name: '姓名', dataType: 'C', length: 50 },
      { code: 'maritalStatus', name: '婚姻状况', dataType: 'C', length: 2 },
    ],
    ...over,
  };
}

describe.each(drivers())('the resource directory (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let police: string; // provider token of 公安
  let market: string; // provider token of 市场监管
  let consumer: string;
  let consumerId: string;
  let admin: string;

  const gql = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const { body } = await hub.graphql(query, token, variables);
    return body;
  };
  const ok = async (token: string, query: string, variables?: Record<string, unknown>) => {
    const body = await gql(token, query, variables);
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data!;
  };
  const code = async (token: string, query: string, variables?: Record<string, unknown>) => (await gql(token, query, variables)).errors?.[0]?.extensions;

  const REGISTER = `mutation($input: ResourceInput!) { registerResource(input: $input) { ${RESOURCE_FIELDS} } }`;
  const PUBLISH = `mutation($code: String!) { publishResource(code: $code) { code status } }`;
  const REQUEST = `mutation($input: AccessRequestInput!) { requestAccess(input: $input) { id status reason fields fullFields dueAt overdue } }`;
  const DECIDE = `mutation($id: ID!, $approve: Boolean!, $reason: String, $fields: [String!]) { decideAccessRequest(id: $id, approve: $approve, reason: $reason, fields: $fields) { id status reason fields } }`;

  // a department drafts its base resource; the operator puts a BASE one in force (it names the kind's source)
  const publish = async (input: Record<string, unknown>) => {
    await ok(police, REGISTER, { input });
    await ok(input.category === 'DEPARTMENT' ? police : admin, PUBLISH, { code: input.code });
  };

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    // the webhook catcher below listens on loopback: the operator lists it
    hub = await startTestHub(tdb.database, { env: { HUB_EGRESS_ALLOW: '127.0.0.1' } });
    police = await hub.token(await hub.newClient(['provider'], { department: POLICE! }));
    market = await hub.token(await hub.newClient(['provider'], { department: MARKET! }));
    const c = await hub.newClient(['consumer'], { department: APPROVAL! });
    consumerId = c.client_id;
    consumer = await hub.token(c);
    admin = await hub.token(await hub.newClient(['admin'], { department: DATA! }));
    const sys = systemContext(tdb.database.db, log, DATA!);
    for (const [itemCode, name] of [['350100-DJ-0001', '企业设立登记'], ['350100-DJ-0006', '不动产转移登记']]) {
      await registerServiceItem(sys, { code: itemCode!, name: name!, departmentCode: MARKET!, materials: [{ code: 'M01', name: '身份证明', sources: [{ kind: 'SUBMIT' }] }] });
    }
    await loadWorkingCalendar(tdb.database.db, { year: 2026, ...STATE_COUNCIL_CALENDARS[2026]! });
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
  });

  it('registers a draft, publishes it, and a change to a published resource makes a new version keeping the old', async () => {
    const r = await ok(police, REGISTER, { input: resourceInput('1-01-001/000101') });
    expect(r.registerResource).toMatchObject({ code: '1-01-001/000101', version: 1, current: true, status: 'DRAFT' });
    // a draft changes in place
    const draftEdit = await ok(police, `mutation($input: ResourceInput!) { updateResource(code: "1-01-001/000101", input: $input) { version status summary } }`, {
      input: resourceInput('1-01-001/000101', { summary: '修订摘要' }),
    });
    expect(draftEdit.updateResource).toEqual({ version: 1, status: 'DRAFT', summary: '修订摘要' });
    // a BASE resource goes into force, and changes once in force, by the operator alone
    expect(await code(police, PUBLISH, { code: '1-01-001/000101' })).toMatchObject({ code: 'FORBIDDEN', reason: 'BASE_RESOURCE' });
    await ok(admin, PUBLISH, { code: '1-01-001/000101' });
    expect(await code(police, `mutation($input: ResourceInput!) { updateResource(code: "1-01-001/000101", input: $input) { version } }`, { input: resourceInput('1-01-001/000101', { name: 'x' }) })).toMatchObject({
      code: 'FORBIDDEN',
      reason: 'BASE_RESOURCE',
    });
    const edited = await ok(admin, `mutation($input: ResourceInput!) { updateResource(code: "1-01-001/000101", input: $input) { version status current name } }`, {
      input: resourceInput('1-01-001/000101', { name: '人口基础信息（2026版）' }),
    });
    expect(edited.updateResource).toEqual({ version: 2, status: 'PUBLISHED', current: true, name: '人口基础信息（2026版）' });
    const old = await ok(consumer, `{ resource(code: "1-01-001/000101", version: 1) { version current name status } current: resource(code: "1-01-001/000101") { version versions { version } } }`);
    expect(old.resource).toEqual({ version: 1, current: false, name: '人口基础信息', status: 'PUBLISHED' });
    expect(old.current).toEqual({ version: 2, versions: [{ version: 1 }, { version: 2 }] });
  });

  it('lets providers manage only their own department\'s resources', async () => {
    await publish(resourceInput('1-01-001/000102'));
    expect(await code(market, REGISTER, { input: resourceInput('1-01-001/000103') })).toMatchObject({ code: 'FORBIDDEN' });
    expect(await code(market, `mutation { publishResource(code: "1-01-001/000102") { code } }`)).toMatchObject({ code: 'FORBIDDEN' });
    expect(await code(market, `mutation { retireResource(code: "1-01-001/000102", reason: "x") { code } }`)).toMatchObject({ code: 'FORBIDDEN' });
    expect(await code(consumer, REGISTER, { input: resourceInput('1-01-001/000104') })).toMatchObject({ code: 'FORBIDDEN' });
    // admins manage all
    expect((await ok(admin, `mutation { retireResource(code: "1-01-001/000102", reason: "superseded by 000101") { status } }`)).retireResource).toEqual({ status: 'RETIRED' });
  });

  it('refuses a duplicate code with CONFLICT and bad input with BAD_USER_INPUT naming the field, writing nothing', async () => {
    await ok(police, REGISTER, { input: resourceInput('1-01-001/000105') });
    expect(await code(police, REGISTER, { input: resourceInput('1-01-001/000105') })).toMatchObject({ code: 'CONFLICT' });
    const count = async () => (await rows<{ n: number }>(tdb.database.db, sql`select count(*)::int8 as n from resources`))[0]!.n;
    const before = await count();
    const cases: [Record<string, unknown>, string][] = [
      [resourceInput('1-01-001/000106', { fields: [{ code: 'a', name: 'A', dataType: 'C' }, { code: 'a', name: 'B', dataType: 'C' }] }), 'fields[1].code'],
      [resourceInput('1-01-001/000107', { fields: [{ code: 'a', name: 'A', dataType: 'VARCHAR' }] }), 'fields[0].dataType'],
      [resourceInput('2-01-001/000108'), 'code'],
      [resourceInput('1-01-001/000109', { sharingType: 'NONE' }), 'legalBasis'],
      [resourceInput('1-01-001/000110', { sharingCondition: null }), 'sharingCondition'],
      [resourceInput('1-01-001/000111', { baseKind: null }), 'baseKind'],
      [resourceInput('1-01-001/000112', { updateCycle: 'SOMETIMES' }), 'updateCycle'],
      [resourceInput('1-01-001/000113', { fields: [] }), 'fields'],
    ];
    for (const [input, field] of cases) {
      expect(await code(police, REGISTER, { input }), field).toMatchObject({ code: 'BAD_USER_INPUT', field });
    }
    expect(await count()).toBe(before);
    // a malformed provider code is INVALID_USCC, checked before the role
    expect(await code(consumer, REGISTER, { input: resourceInput('1-01-001/000114', { providerCode: '911100001000000000' }) })).toMatchObject({ code: 'INVALID_USCC' });
  });

  it('searches Chinese text of one, two and more characters, with filters', async () => {
    await publish(resourceInput('1-01-002/000201', { name: '婚姻登记信息', summary: '结婚登记与离婚登记记录', baseKind: 'POPULATION' }));
    await publish(
      resourceInput('3-07-001/000202', {
        name: '社会保险参保缴费信息',
        category: 'DEPARTMENT',
        baseKind: null,
        sharingType: 'UNCONDITIONAL',
        fields: [{ code: 'paidMonths', name: '累计缴费月数', dataType: 'I' }],
      }),
    );
    const search = async (q: string, filter?: Record<string, unknown>) =>
      ((await ok(consumer, `query($q: String, $f: ResourceFilter) { resources(query: $q, filter: $f, first: 50) { totalCount edges { node { code } } } }`, { q, f: filter }))
        .resources as { edges: { node: { code: string } }[] }).edges.map((e) => e.node.code);
    expect(await search('婚')).toContain('1-01-002/000201');
    expect(await search('婚')).not.toContain('3-07-001/000202');
    expect(await search('离婚')).toEqual(['1-01-002/000201']);
    expect(await search('缴费月数')).toEqual(['3-07-001/000202']); // a 信息项 name
    expect(await search('社会保险参保')).toEqual(['3-07-001/000202']);
    expect(await search('登记 结婚')).toEqual(['1-01-002/000201']); // every term must match
    expect(await search('', { sharingType: 'UNCONDITIONAL', department: POLICE })).toEqual(['3-07-001/000202']);
    expect(await search('婚姻', { status: 'RETIRED' })).toEqual(['1-01-001/000102']); // retired earlier; its 信息项 婚姻状况 matches
    expect(await search('离婚', { status: 'RETIRED' })).toEqual([]);
    // drafts of another department stay hidden
    await ok(police, REGISTER, { input: resourceInput('1-01-002/000203', { name: '婚姻草稿' }) });
    expect(await search('婚姻草稿')).toEqual([]);
    // pagination is keyset on code
    const page1 = await ok(consumer, `{ resources(first: 2) { pageInfo { hasNextPage endCursor } edges { node { code } } } }`);
    const p1 = page1.resources as { pageInfo: { endCursor: string; hasNextPage: boolean }; edges: { node: { code: string } }[] };
    expect(p1.pageInfo.hasNextPage).toBe(true);
    const page2 = await ok(consumer, `query($a: String) { resources(first: 2, after: $a) { edges { node { code } } } }`, { a: p1.pageInfo.endCursor });
    const codes2 = (page2.resources as { edges: { node: { code: string } }[] }).edges.map((e) => e.node.code);
    expect(codes2[0]! > p1.edges[1]!.node.code).toBe(true);
  });

  describe('access requests and grants', () => {
    const POP = '1-01-003/000301';
    const OPEN = '1-02-003/000302';
    const CLOSED = '3-01-003/000303';
    beforeAll(async () => {
      await publish(resourceInput(POP));
      await publish(resourceInput(OPEN, { name: '法人单位基础信息', baseKind: 'LEGAL_PERSON', sharingType: 'UNCONDITIONAL', sharingCondition: null }));
      await publish(resourceInput(CLOSED, { name: '户籍档案影像', category: 'DEPARTMENT', baseKind: null, sharingType: 'NONE', legalBasis: '《户口登记条例》：档案原件不对外提供' }));
    });
    const ask = (resourceCode: string, over: Record<string, unknown> = {}) =>
      ok(consumer, REQUEST, { input: { resourceCode, fields: ['idNumber', 'name'], itemCodes: ['350100-DJ-0001'], purpose: '核验申请人身份', ...over } });

    it('grants 无条件共享 at once, holds 有条件共享 for the provider, refuses 不予共享 with its basis', async () => {
      const open = (await ask(OPEN)).requestAccess as { status: string; dueAt: string | null };
      expect(open).toMatchObject({ status: 'APPROVED', dueAt: null });
      const pending = (await ask(POP)).requestAccess as { status: string; dueAt: string };
      expect(pending.status).toBe('PENDING');
      expect(pending.dueAt).toMatch(/T15:59:59\.999Z$/); // the end of a day in Asia/Shanghai
      const refused = (await ask(CLOSED)).requestAccess as { status: string; reason: string };
      expect(refused).toMatchObject({ status: 'REFUSED', reason: '不予共享: 《户口登记条例》：档案原件不对外提供' });
      // sensitive fields unmasked need the provider even when sharing is unconditional
      expect(((await ask(OPEN, { fullFields: ['idNumber'] })).requestAccess as { status: string }).status).toBe('PENDING');
      const allowed = await ok(consumer, `{ allowedResources { resource { code } fields itemCodes unmaskedFields } }`);
      expect(allowed.allowedResources).toEqual([{ resource: { code: OPEN }, fields: ['idNumber', 'name'], itemCodes: ['350100-DJ-0001'], unmaskedFields: [] }]);
    });

    it('refuses requests naming unknown 信息项 or unregistered items', async () => {
      expect(await code(consumer, REQUEST, { input: { resourceCode: POP, fields: ['salary'], itemCodes: ['350100-DJ-0001'], purpose: 'x' } })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'fields' });
      expect(await code(consumer, REQUEST, { input: { resourceCode: POP, fields: ['name'], itemCodes: ['NO-SUCH-ITEM'], purpose: 'x' } })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'itemCodes' });
      expect(await code(consumer, REQUEST, { input: { resourceCode: POP, fields: ['name'], fullFields: ['name'], itemCodes: ['350100-DJ-0001'], purpose: 'x' } })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'fullFields' });
      expect(await code(police, REQUEST, { input: { resourceCode: POP, fields: ['name'], itemCodes: ['350100-DJ-0001'], purpose: 'x' } })).toMatchObject({ code: 'FORBIDDEN' });
    });

    it('lets the provider narrow on approval, never widen, and refuse only with a reason', async () => {
      const req = (await ask(POP, { fields: ['idNumber', 'name', 'maritalStatus'], itemCodes: ['350100-DJ-0006'] })).requestAccess as { id: string };
      expect(await code(market, DECIDE, { id: req.id, approve: true })).toMatchObject({ code: 'FORBIDDEN' });
      expect(await code(police, DECIDE, { id: req.id, approve: true, fields: ['name', 'gender'] })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'fields' });
      expect(await code(police, DECIDE, { id: req.id, approve: false })).toMatchObject({ code: 'BAD_USER_INPUT', field: 'reason' });
      const decided = await ok(police, DECIDE, { id: req.id, approve: true, reason: '同意，婚姻状况除外', fields: ['idNumber', 'name'] });
      expect(decided.decideAccessRequest).toMatchObject({ status: 'APPROVED', fields: ['idNumber', 'name'] });
      expect(await code(police, DECIDE, { id: req.id, approve: false, reason: 'again' })).toMatchObject({ code: 'CONFLICT' });

      const checker = hub.services.grants;
      await expect(checker.check({ clientId: consumerId }, POP, ['name'], '350100-DJ-0006')).resolves.toMatchObject({ unmaskedFields: new Set() });
      const missing = await checker.check({ clientId: consumerId }, POP, ['name', 'maritalStatus'], '350100-DJ-0006').catch((e: unknown) => e);
      expect(missing).toMatchObject({ code: 'GRANT_MISSING', extensions: { missing: { resource: POP, fields: ['maritalStatus'], itemCode: '350100-DJ-0006' } } });
      const wrongItem = await checker.check({ clientId: consumerId }, POP, ['name'], '350100-DJ-0001').catch((e: unknown) => e);
      expect(wrongItem).toMatchObject({ code: 'GRANT_MISSING', extensions: { missing: { itemCode: '350100-DJ-0001' } } });
    });

    it('refuses a revoked grant at once in a second app instance on the same database', async () => {
      const second = await startTestHub(tdb.url ? await openDatabase({ databaseUrl: tdb.url, poolSize: 2, appRole: true }) : tdb.database);
      try {
        await expect(second.services.grants.check({ clientId: consumerId }, OPEN, ['name'], '350100-DJ-0001')).resolves.toBeTruthy();
        const grants = (await ok(police, `{ grants(resourceCode: "${OPEN}", active: true) { id clientId } }`)).grants as { id: string; clientId: string }[];
        const grant = grants.find((g) => g.clientId === consumerId)!;
        await ok(police, `mutation($id: ID!) { revokeGrant(id: $id, reason: "用途已变更") { revokedAt } }`, { id: grant.id });
        await expect
          .poll(async () => (await second.services.grants.check({ clientId: consumerId }, OPEN, ['name'], '350100-DJ-0001').catch((e: { code: string }) => e.code)), { timeout: 2000, interval: 20 })
          .toBe('GRANT_MISSING');
      } finally {
        await second.close();
        if (tdb.url) await second.services.database.close();
      }
    });

    it('expires a grant at its validUntil', async () => {
      const sys = systemContext(tdb.database.db, log, DATA!);
      const asConsumer = { ...sys, principal: { ...sys.principal, clientId: consumerId, department: APPROVAL!, roles: ['consumer' as const] } };
      const open2 = '1-02-003/000304';
      await publish(resourceInput(open2, { name: '个体工商户信息', baseKind: 'LEGAL_PERSON', sharingType: 'UNCONDITIONAL', sharingCondition: null }));
      const soon = new Date(Date.now() + 60_000);
      await requestAccess(asConsumer, { resourceCode: open2, fields: ['name'], itemCodes: ['350100-DJ-0001'], purpose: '核验', validUntil: soon.toISOString() });
      const checker = hub.services.grants;
      await expect(checker.check({ clientId: consumerId }, open2, ['name'], '350100-DJ-0001')).resolves.toBeTruthy();
      const later = await checker.check({ clientId: consumerId }, open2, ['name'], '350100-DJ-0001', soon.getTime() + 1).catch((e: { code: string }) => e.code);
      expect(later).toBe('GRANT_MISSING');
    });

    it('dates a reply 10 working days ahead over a holiday and a make-up Saturday, lists it overdue, and notifies the provider once', async () => {
      const sys = systemContext(tdb.database.db, log, DATA!);
      const asConsumer = { ...sys, principal: { ...sys.principal, clientId: consumerId, department: APPROVAL!, roles: ['consumer' as const] } };
      // Friday 2026-09-18: 9/21–25 (5), 9/25–27 中秋 off, 9/28–30 (8), 10/1–7 国庆 off, Sat 10/10 a make-up day… 10/8, 10/9 → 10
      const r = await requestAccess(asConsumer, { resourceCode: POP, fields: ['name'], itemCodes: ['350100-DJ-0001'], purpose: '核验' }, new Date('2026-09-18T10:00:00+08:00'));
      expect(r.dueAt!.toISOString()).toBe('2026-10-09T15:59:59.999Z');
      expect(r.dueProvisional).toBe(false);
      const overdue = await listAccessRequests(sys, { overdue: true }, 100);
      expect(overdue.map((x) => x.id)).toContain(r.id);
      const listed = await ok(police, `{ accessRequests(filter: { overdue: true }) { id overdue } }`);
      expect(listed.accessRequests).toContainEqual({ id: r.id, overdue: true });

      // the provider's webhook receives a signed notice, once
      const received: { body: string; signature: string }[] = [];
      const server = http.createServer((req, res) => {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          received.push({ body, signature: String(req.headers['x-hub-signature']) });
          res.end('ok');
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const hook = await ok(police, `mutation($d: String!, $u: String!) { setWebhook(department: $d, url: $u) { url secret } }`, {
          d: POLICE,
          u: `http://127.0.0.1:${(server.address() as { port: number }).port}/hub`,
        });
        const secret = (hook.setWebhook as { secret: string }).secret;
        expect(await markOverdueRequests(tdb.database.db)).toBeGreaterThanOrEqual(1);
        expect(await markOverdueRequests(tdb.database.db)).toBe(0);
        const first = await deliverNotifications(tdb.database.db, hub.services.masterKey, hub.services.egress, log);
        expect(first.failed).toBe(0);
        const overdueNotice = received.map((x) => ({ ...x, json: JSON.parse(x.body) })).find((x) => x.json.kind === 'ACCESS_REQUEST_OVERDUE' && x.json.requestId === r.id)!;
        expect(overdueNotice.json).toMatchObject({ resourceCode: POP, consumerClientId: consumerId, dueAt: '2026-10-09T15:59:59.999Z' });
        const { signWebhook } = await import('../directory/notifications.ts');
        const t = Number(/t=(\d+)/.exec(overdueNotice.signature)![1]);
        expect(overdueNotice.signature).toBe(signWebhook(secret, t, overdueNotice.body));
        expect(received.some((x) => JSON.parse(x.body).kind === 'ACCESS_REQUEST_NEW')).toBe(true);
        const again = await deliverNotifications(tdb.database.db, hub.services.masterKey, hub.services.egress, log);
        expect(again.delivered).toBe(0);
        const notices = await ok(police, `{ notifications { kind subjectId deliveredAt } }`);
        expect((notices.notifications as { kind: string; subjectId: string; deliveredAt: string | null }[]).filter((n) => n.subjectId === r.id)).toEqual([
          expect.objectContaining({ kind: 'ACCESS_REQUEST_OVERDUE', deliveredAt: expect.any(String) }),
          expect.objectContaining({ kind: 'ACCESS_REQUEST_NEW', deliveredAt: expect.any(String) }),
        ]);
      } finally {
        server.close();
      }
    });
  });
});
