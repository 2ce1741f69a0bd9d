import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readClientFile } from '../auth/client-file.ts';
import { createLogger } from '../core/logger.ts';
import { rows } from '../db/index.ts';
import { DEMO_DEPARTMENTS, seedDemo } from '../db/seeds/demo.ts';
import { DEMO_HOLDERS } from '../db/seeds/demo-licences.ts';
import { DEMO_LICENCE_TYPES } from '../db/seeds/demo-directory.ts';
import { createTestDatabase, drivers, type TestDatabase } from './helpers/db.ts';
import { startTestHub, TEST_ISSUER, type TestHub } from './helpers/hub.ts';

const log = createLogger({ level: 'silent' });
const ITEM = '350100-DJ-0006';
const OTHER_ITEM = '350100-DJ-0001';
const LICENCES = `query($h: String!, $p: PurposeInput!) { licences(holderCode: $h, purpose: $p) { identifier typeCode } }`;

describe.each(drivers())('holder features of e-licences (%s)', (driver) => {
  let tdb: TestDatabase;
  let hub: TestHub;
  let dir: string;
  let admin: string;
  let police: string;
  let holder: string;
  let otherHolder: string;
  let strangerId: string;
  let stranger: string;
  let idCard: string;

  const gql = async (query: string, token: string, variables?: Record<string, unknown>) => (await hub.graphql(query, token, variables)).body;
  const ok = async <T>(query: string, token: string, variables?: Record<string, unknown>): Promise<T> => {
    const b = await gql(query, token, variables);
    if (b.errors) throw new Error(JSON.stringify(b.errors));
    return Object.values(b.data!)[0] as T;
  };
  const codeOf = (b: { errors?: { extensions?: Record<string, unknown> }[] }) => b.errors?.[0]?.extensions;
  const holderToken = (code: string) => ok<{ token: string }>(`mutation($c: String!) { issueHolderToken(code: $c) { token } }`, admin, { c: code }).then((t) => t.token);

  beforeAll(async () => {
    tdb = await createTestDatabase(driver);
    hub = await startTestHub(tdb.database);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-licence-holder-'));
    await seedDemo(tdb.database.db, { clientDir: dir, tokenEndpoint: `${TEST_ISSUER}/oauth/token`, logger: log, licence: { masterKey: hub.services.masterKey, issuer: TEST_ISSUER } });
    await hub.services.licence.pki.reload();
    admin = await hub.token(readClientFile(path.join(dir, 'demo-admin.json')));
    police = await hub.token(await hub.newClient(['issuer'], { department: DEMO_DEPARTMENTS[0].code }));
    holder = await holderToken(DEMO_HOLDERS.person.code);
    otherHolder = await holderToken(DEMO_HOLDERS.spouse.code);
    const file = await hub.newClient(['consumer'], { name: '区不动产登记系统' });
    strangerId = file.client_id;
    stranger = await hub.token(file);
    const mine = await ok<{ identifier: string; typeCode: string }[]>(`{ myLicences { identifier typeCode } }`, holder);
    idCard = mine.find((l) => l.typeCode === DEMO_LICENCE_TYPES.idCard)!.identifier;
  });
  afterAll(async () => {
    await hub?.close();
    await tdb?.drop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('授权用证: the holder lets one client use its licences for one item and case until a time, instead of a grant', async () => {
    const p = { itemCode: ITEM, caseId: 'BDC-2026-1' };
    expect(codeOf(await gql(LICENCES, stranger, { h: DEMO_HOLDERS.person.code, p }))).toMatchObject({ code: 'GRANT_MISSING' });
    const until = new Date(Date.now() + 3600_000).toISOString();
    const m = `mutation($i: LicenceAuthorisationInput!) { authoriseLicenceUse(input: $i) { id clientId itemCode caseId } }`;
    expect(codeOf(await gql(m, police, { i: { clientId: strangerId, itemCode: ITEM, validUntil: until } }))).toMatchObject({ code: 'FORBIDDEN' });
    expect(codeOf(await gql(m, holder, { i: { clientId: strangerId, itemCode: ITEM, validUntil: new Date(Date.now() + 200 * 86_400_000).toISOString() } }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'validUntil' });
    const a = await ok<{ id: string }>(m, holder, { i: { clientId: strangerId, itemCode: ITEM, caseId: 'BDC-2026-1', validUntil: until } });
    const found = await ok<{ identifier: string }[]>(LICENCES, stranger, { h: DEMO_HOLDERS.person.code, p });
    expect(found.map((l) => l.identifier)).toContain(idCard);
    const [entry] = await rows<{ details: Record<string, unknown> }>(tdb.database.db, sql`select details from audit_entries where operation = 'LICENCE_READ' and client_id = ${strangerId} and outcome = 'RETURNED'`);
    expect(entry!.details.authorisation).toBe(a.id);
    // another case, another item, another holder: not covered
    expect(codeOf(await gql(LICENCES, stranger, { h: DEMO_HOLDERS.person.code, p: { itemCode: ITEM, caseId: 'BDC-2026-2' } }))).toMatchObject({ code: 'GRANT_MISSING' });
    expect(codeOf(await gql(LICENCES, stranger, { h: DEMO_HOLDERS.person.code, p: { itemCode: OTHER_ITEM, caseId: 'BDC-2026-1' } }))).toMatchObject({ code: 'GRANT_MISSING' });
    expect(codeOf(await gql(LICENCES, stranger, { h: DEMO_HOLDERS.spouse.code, p }))).toMatchObject({ code: 'GRANT_MISSING' });
    const uses = await ok<{ clientId: string; itemCode: string; caseId: string }[]>(`{ myLicenceUses { clientId itemCode caseId } }`, holder);
    expect(uses).toContainEqual({ clientId: strangerId, itemCode: ITEM, caseId: 'BDC-2026-1' });
    expect(codeOf(await gql(`mutation($id: ID!) { revokeLicenceAuthorisation(id: $id) { id } }`, otherHolder, { id: a.id }))).toMatchObject({ code: 'NOT_FOUND' });
    await ok(`mutation($id: ID!) { revokeLicenceAuthorisation(id: $id) { revokedAt } }`, holder, { id: a.id });
    expect(codeOf(await gql(LICENCES, stranger, { h: DEMO_HOLDERS.person.code, p }))).toMatchObject({ code: 'GRANT_MISSING' });
    expect((await rows(tdb.database.db, sql`select 1 from audit_entries where operation in ('LICENCE_AUTHORISE', 'LICENCE_AUTHORISE_REVOKE') and subject = ${DEMO_HOLDERS.person.code}`)).length).toBe(2);
  });

  it('亮证: a one-time, short-lived link shows the face and validity once', async () => {
    expect(codeOf(await gql(`mutation($id: String!) { presentLicence(identifier: $id) { url } }`, otherHolder, { id: idCard }))).toMatchObject({ code: 'NOT_FOUND' });
    const p = await ok<{ url: string; qr: string; expiresAt: string }>(`mutation($id: String!) { presentLicence(identifier: $id, seconds: 60) { url qr expiresAt } }`, holder, { id: idCard });
    expect(p.url.startsWith(`${TEST_ISSUER}/licences/show/`)).toBe(true);
    expect(p.qr.startsWith('data:image/png;base64,')).toBe(true);
    const local = p.url.replace(TEST_ISSUER, hub.url);
    const first = await fetch(local);
    expect(first.status).toBe(200);
    const html = await first.text();
    expect(html).toContain('居民身份证');
    expect(html).toContain(DEMO_HOLDERS.person.name);
    expect(html).toContain('有效');
    expect(html).not.toContain('演武路1号'); // 住址 is sensitive: partly hidden
    expect((await fetch(local)).status).toBe(410);
    expect((await fetch(`${hub.url}/licences/show/not-a-token-at-all-xxxx`)).status).toBe(410);
    expect((await rows(tdb.database.db, sql`select 1 from audit_entries where operation = 'LICENCE_PRESENTATION_VIEW' and details->>'identifier' = ${idCard}`)).length).toBe(1);
  });

  it('异议: the holder objects to a field; the issuer rejects with a reason, or corrects by a new version', async () => {
    const m = `mutation($id: String!, $f: String!) { objectToLicence(identifier: $id, field: $f, reason: "住址有误") { id status } }`;
    expect(codeOf(await gql(m, holder, { id: idCard, f: 'NOPE' }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'field' });
    const o1 = await ok<{ id: string; status: string }>(m, holder, { id: idCard, f: 'ZZ' });
    expect(o1.status).toBe('PENDING');
    const state = () => ok<{ identifier: string; underObjection: boolean; status: string }[]>(`{ myLicences { identifier underObjection status } }`, holder).then((ls) => ls.find((l) => l.identifier === idCard));
    expect(await state()).toMatchObject({ underObjection: true });
    expect((await ok<{ id: string }[]>(`{ pendingLicenceObjections { id } }`, police)).map((o) => o.id)).toContain(o1.id);
    const decide = `mutation($id: ID!, $a: Boolean!, $r: String!, $f: JSON) { decideLicenceObjection(id: $id, accept: $a, reason: $r, face: $f) { status decisionReason newIdentifier } }`;
    expect(codeOf(await gql(decide, police, { id: o1.id, a: false, r: ' ' }))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'reason' });
    expect(await ok(decide, police, { id: o1.id, a: false, r: '与户籍登记一致' })).toMatchObject({ status: 'REJECTED', decisionReason: '与户籍登记一致', newIdentifier: null });
    expect(await state()).toMatchObject({ underObjection: false, status: 'VALID' });
    const o2 = await ok<{ id: string }>(m, holder, { id: idCard, f: 'ZZ' });
    const corrected = await ok<{ status: string; newIdentifier: string }>(decide, police, { id: o2.id, a: true, r: '核实后更正', f: { ZZ: '福建省厦门市思明区演武路2号' } });
    expect(corrected.status).toBe('CORRECTED');
    const mine = await ok<{ identifier: string; version: number; face: Record<string, unknown>; previousIdentifier: string }[]>(`{ myLicences { identifier version face previousIdentifier } }`, holder);
    expect(mine.find((l) => l.identifier === corrected.newIdentifier)).toMatchObject({ version: 2, previousIdentifier: idCard, face: { ZZ: '福建省厦门市思明区演武路2号' } });
    expect(mine.map((l) => l.identifier)).not.toContain(idCard); // SUPERSEDED
    expect(codeOf(await gql(decide, police, { id: o2.id, a: false, r: 'again' }))).toMatchObject({ code: 'CONFLICT' });
    expect((await rows(tdb.database.db, sql`select 1 from audit_entries where operation = 'LICENCE_OBJECTION_DECISION' and details->>'identifier' = ${idCard}`)).length).toBe(2);
  });
});
