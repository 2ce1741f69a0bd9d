import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idNumberCheckChar, idNumberProblem, isValidIdNumber, isValidUscc, usccProblem } from '../core/ids.ts';
import {
  authHeaders,
  CREDIT_MEASURES,
  csvField,
  CursorError,
  GENERATION_SPAN_MS,
  isInvalid,
  recordInvalidReason,
  REGIONS,
  signRequest,
  SOURCE_FIELDS,
  SourceData,
  startSimulator,
  T0,
  writeSnapshot,
  type CreditRecord,
  type LegalPersonRecord,
  type PageCursor,
  type PopulationRecord,
  type Simulator,
  type SimulatorAuth,
  type SourceKind,
  type SourceRecord,
} from '../connectors/simulators/index.ts';

const BEARER: SimulatorAuth = { type: 'bearer', token: 'population-token' };
const APIKEY: SimulatorAuth = { type: 'apikey', header: 'X-Api-Key', key: 'market-key' };
const HMAC: SimulatorAuth = { type: 'hmac', keyId: 'credit-1', secret: 'credit-secret' };

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

/** GET with the headers `auth` needs (signed over the path with its query, as sent). */
function get(sim: Simulator, auth: SimulatorAuth, pathWithQuery: string, signal?: AbortSignal): Promise<Response> {
  return fetch(sim.url + pathWithQuery, { headers: authHeaders(auth, 'GET', pathWithQuery), signal });
}

function recordsPath(cursor: PageCursor | null, limit?: number): string {
  const params = new URLSearchParams();
  if (cursor?.updatedSince) params.set('updatedSince', cursor.updatedSince);
  if (cursor?.afterId) params.set('afterId', cursor.afterId);
  if (limit !== undefined) params.set('limit', String(limit));
  const q = params.toString();
  return q ? `/records?${q}` : '/records';
}

interface PageBody<R = SourceRecord> {
  records: R[];
  next: { updatedSince: string; afterId: string } | null;
}

/** Pulls every page from `start` on; returns the records and the cursor after the last one (for the next pull). */
async function walk<R extends SourceRecord>(sim: Simulator, auth: SimulatorAuth, limit: number, start: PageCursor | null = null) {
  const records: R[] = [];
  let cursor = start;
  let pages = 0;
  for (;;) {
    const res = await get(sim, auth, recordsPath(cursor, limit));
    expect(res.status).toBe(200);
    const body = (await res.json()) as PageBody<R>;
    pages++;
    expect(body.records.length).toBeLessThanOrEqual(limit);
    records.push(...body.records);
    if (!body.next) break;
    expect(body.records.length).toBe(limit);
    expect(body.next).toEqual({ updatedSince: body.records.at(-1)!.gxsj, afterId: body.records.at(-1)!.id });
    cursor = body.next;
  }
  const last = records.at(-1);
  return { records, pages, cursor: last ? { updatedSince: last.gxsj, afterId: last.id } : start };
}

const key = (r: SourceRecord) => `${r.gxsj}|${r.id}`;
function expectOrdered(records: SourceRecord[]) {
  for (let i = 1; i < records.length; i++) expect(key(records[i - 1]!) < key(records[i]!)).toBe(true);
}

const post = (sim: Simulator, p: string, body: unknown) =>
  fetch(sim.url + p, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('generated records', () => {
  it('are deterministic per seed and differ between seeds', () => {
    for (const kind of ['population', 'legal_person', 'credit'] as const) {
      const a = new SourceData({ kind, records: 5000, seed: 7 });
      const b = new SourceData({ kind, records: 5000, seed: 7 });
      const c = new SourceData({ kind, records: 5000, seed: 8 });
      const sample = range(50, 1000);
      expect(sample.map((i) => a.current(i))).toEqual(sample.map((i) => b.current(i)));
      const same = sample.filter((i) => JSON.stringify({ ...a.current(i), gxsj: '' }) === JSON.stringify({ ...c.current(i), gxsj: '' }));
      expect(same.length).toBe(0);
      // changes too
      a.advance(0.2);
      b.advance(0.2);
      expect(a.changedIn(1)).toEqual(b.changedIn(1));
      expect(a.changedIn(1).slice(0, 20).map((i) => a.current(i))).toEqual(b.changedIn(1).slice(0, 20).map((i) => b.current(i)));
    }
  });

  it('have ids in index order and groups of five sharing an update time', () => {
    const s = new SourceData({ kind: 'population', records: 20 });
    expect(range(7).map((i) => s.current(i).id)).toEqual(['P0000001', 'P0000002', 'P0000003', 'P0000004', 'P0000005', 'P0000006', 'P0000007']);
    expect(s.current(4).gxsj).toBe('2026-01-01T00:00:00.000Z');
    expect(s.current(5).gxsj).toBe('2026-01-01T00:00:00.001Z');
    expect(new SourceData({ kind: 'legal_person', records: 1 }).current(0).id).toBe('L0000001');
    expect(new SourceData({ kind: 'credit', records: 1 }).current(0).id).toBe('C0000001');
  });

  it('population: valid ID numbers consistent with sex and birth date, except ~1% invalid for the stated reason', () => {
    const n = 20_000;
    const s = new SourceData({ kind: 'population', records: n });
    const reasons: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = s.current(i) as PopulationRecord;
      const reason = s.invalidReason(i);
      expect(reason).toBe(recordInvalidReason('population', i, 0));
      expect(['1', '2']).toContain(r.xb);
      expect(Number(r.mz)).toBeGreaterThanOrEqual(1);
      expect(Number(r.mz)).toBeLessThanOrEqual(56);
      expect(r.mz).toMatch(/^\d\d$/);
      expect(['10', '20', '30', '40']).toContain(r.hyzk);
      expect(['0', '1']).toContain(r.swbs);
      expect(r.csrq >= '19300101' && r.csrq <= '20241231').toBe(true);
      expect(r.hjdjjg).toMatch(/公安局.*派出所$/);
      expect(r.hjdz.startsWith(REGIONS.find((g) => g.code === r.sfzh.slice(0, 6))!.full)).toBe(true);
      if (reason === null) {
        expect(isValidIdNumber(r.sfzh)).toBe(true);
        expect(r.xm).not.toBe('');
        expect(r.csrq).toBe(r.sfzh.slice(6, 14));
        expect(Number(r.sfzh[16]) % 2 === 1 ? '1' : '2').toBe(r.xb);
        continue;
      }
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (reason === 'ID_CHECK_DIGIT') expect(idNumberProblem(r.sfzh)).toBe('CHECK_DIGIT');
      else if (reason === 'ID_BIRTH_DATE') {
        expect(idNumberProblem(r.sfzh)).toBe('BIRTH_DATE');
        // only the date is wrong (month + 12): the check character is right over the 17 digits as they stand
        expect(Number(r.sfzh.slice(10, 12))).toBe(Number(r.csrq.slice(4, 6)) + 12);
        expect(r.sfzh.slice(12, 14)).toBe(r.csrq.slice(6, 8));
        expect(idNumberCheckChar(r.sfzh.slice(0, 17))).toBe(r.sfzh[17]);
      } else {
        expect(reason).toBe('EMPTY_NAME');
        expect(r.xm).toBe('');
        expect(isValidIdNumber(r.sfzh)).toBe(true);
      }
      if (reason !== 'EMPTY_NAME') expect(r.xm).not.toBe('');
    }
    const invalid = Object.values(reasons).reduce((a, b) => a + b, 0);
    expect(invalid / n).toBeGreaterThan(0.006);
    expect(invalid / n).toBeLessThan(0.014);
    expect(Object.keys(reasons).sort()).toEqual(['EMPTY_NAME', 'ID_BIRTH_DATE', 'ID_CHECK_DIGIT']);
  });

  it('legal persons: valid USCCs and representatives, except ~1% invalid for the stated reason', () => {
    const n = 20_000;
    const s = new SourceData({ kind: 'legal_person', records: n });
    const reasons: Record<string, number> = {};
    const types: Record<string, number> = {};
    const statuses: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = s.current(i) as LegalPersonRecord;
      types[r.qylx] = (types[r.qylx] ?? 0) + 1;
      statuses[r.djzt] = (statuses[r.djzt] ?? 0) + 1;
      expect(isValidIdNumber(r.fddbrzjhm)).toBe(true);
      expect(r.fddbr).not.toBe('');
      expect(Math.round(r.zczb * 100) / 100).toBe(r.zczb);
      expect(r.zczb).toBeGreaterThan(0);
      expect(r.clrq).toMatch(/^\d{4}-\d\d-\d\d$/);
      expect(r.hzrq >= r.clrq).toBe(true);
      expect(r.jyfw.length).toBeGreaterThan(10);
      expect(r.djjg).toMatch(/市场监督管理局$/);
      expect(r.tyshxydm.slice(0, 2)).toBe(r.qylx === '个体工商户' ? '92' : r.qylx === '农民专业合作社' ? '93' : '91');
      const reason = s.invalidReason(i);
      if (reason === null) {
        expect(isValidUscc(r.tyshxydm)).toBe(true);
        expect(r.qymc).not.toBe('');
        continue;
      }
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (reason === 'USCC_CHECK_DIGIT') expect(usccProblem(r.tyshxydm)).toBe('CHECK_DIGIT');
      else if (reason === 'USCC_ORG_CODE') expect(usccProblem(r.tyshxydm)).toBe('ORG_CODE');
      else {
        expect(reason).toBe('EMPTY_NAME');
        expect(r.qymc).toBe('');
        expect(isValidUscc(r.tyshxydm)).toBe(true);
      }
    }
    const invalid = Object.values(reasons).reduce((a, b) => a + b, 0);
    expect(invalid / n).toBeGreaterThan(0.006);
    expect(invalid / n).toBeLessThan(0.014);
    expect(Object.keys(reasons).sort()).toEqual(['EMPTY_NAME', 'USCC_CHECK_DIGIT', 'USCC_ORG_CODE']);
    expect(Object.keys(types).sort()).toEqual(['个体工商户', '农民专业合作社', '有限责任公司', '股份有限公司'].sort());
    expect(statuses['存续']! + statuses['在业']!).toBeGreaterThan(0.85 * n);
    expect(Object.keys(statuses).length).toBe(5);
  });

  it('credit: valid subject codes (~70% USCC), measures by list type, except ~1% invalid for the stated reason', () => {
    const n = 20_000;
    const s = new SourceData({ kind: 'credit', records: n });
    const reasons: Record<string, number> = {};
    let uscc = 0;
    const lists: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = s.current(i) as CreditRecord;
      lists[r.lb] = (lists[r.lb] ?? 0) + 1;
      expect(['RED', 'BLACK', 'PERMIT', 'SANCTION']).toContain(r.lb);
      expect(r.ztmc).not.toBe('');
      expect(r.yj).toMatch(/^《.+》/);
      expect(r.lrrq).toMatch(/^20(1[89]|2[0-5])-\d\d-\d\d$/);
      if (r.yxq !== null) expect(r.yxq > r.lrrq).toBe(true);
      expect(r.xfrq).toBeNull();
      for (const c of r.cs) expect(CREDIT_MEASURES).toHaveProperty(c);
      if (r.lb === 'BLACK') expect(r.cs.length > 0 && r.cs.every((c) => c.startsWith('JC-'))).toBe(true);
      else if (r.lb === 'RED') expect(r.cs.length > 0 && r.cs.every((c) => c.startsWith('JL-'))).toBe(true);
      else expect(r.cs).toEqual([]);
      const reason = s.invalidReason(i);
      if (reason === null) {
        expect(isValidUscc(r.ztdm) || isValidIdNumber(r.ztdm)).toBe(true);
        if (isValidUscc(r.ztdm)) uscc++;
        expect(r.lrjg).not.toBe('');
        continue;
      }
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (reason === 'SUBJECT_CHECK_DIGIT') {
        expect(isValidUscc(r.ztdm) || isValidIdNumber(r.ztdm)).toBe(false);
        expect(usccProblem(r.ztdm) === 'CHECK_DIGIT' || idNumberProblem(r.ztdm) === 'CHECK_DIGIT').toBe(true);
        expect(r.lrjg).not.toBe('');
      } else {
        expect(reason).toBe('EMPTY_AUTHORITY');
        expect(r.lrjg).toBe('');
        expect(isValidUscc(r.ztdm) || isValidIdNumber(r.ztdm)).toBe(true);
      }
    }
    const invalid = Object.values(reasons).reduce((a, b) => a + b, 0);
    expect(invalid / n).toBeGreaterThan(0.006);
    expect(invalid / n).toBeLessThan(0.014);
    expect(Object.keys(reasons).sort()).toEqual(['EMPTY_AUTHORITY', 'SUBJECT_CHECK_DIGIT']);
    expect(uscc / (n - invalid)).toBeGreaterThan(0.67);
    expect(uscc / (n - invalid)).toBeLessThan(0.73);
    expect(Object.keys(lists).sort()).toEqual(['BLACK', 'PERMIT', 'RED', 'SANCTION']);
  });

  it('join: credit subjects and legal representatives are records of the other sources (same seed)', () => {
    const n = 5000;
    const people = new SourceData({ kind: 'population', records: n, seed: 3 });
    const orgs = new SourceData({ kind: 'legal_person', records: n, seed: 3 });
    const credit = new SourceData({ kind: 'credit', records: n, seed: 3 });
    // the valid codes, as the sources hold them once fixed
    people.advance(1);
    orgs.advance(1);
    const ids = new Map(range(n).map((i) => [(people.current(i) as PopulationRecord).sfzh, (people.current(i) as PopulationRecord).xm]));
    const codes = new Map(range(n).map((i) => [(orgs.current(i) as LegalPersonRecord).tyshxydm, (orgs.current(i) as LegalPersonRecord).qymc]));
    for (let i = 0; i < n; i++) {
      const lp = orgs.current(i) as LegalPersonRecord;
      expect(ids.get(lp.fddbrzjhm)).toBe(lp.fddbr);
      if (credit.invalidReason(i) === 'SUBJECT_CHECK_DIGIT') continue;
      const c = credit.current(i) as CreditRecord;
      // (an ID number can pass the USCC checks by chance: look in both)
      expect(codes.get(c.ztdm) ?? ids.get(c.ztdm)).toBe(c.ztmc);
    }
  });

  it('ID numbers and USCCs are unique over 200,000 indexes', () => {
    const n = 200_000;
    const people = new SourceData({ kind: 'population', records: n });
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add((people.current(i) as PopulationRecord).sfzh);
    expect(seen.size).toBe(n);
    const orgs = new SourceData({ kind: 'legal_person', records: n });
    seen.clear();
    for (let i = 0; i < n; i++) seen.add((orgs.current(i) as LegalPersonRecord).tyshxydm);
    expect(seen.size).toBe(n);
  });

  it('credit changes: some BLACK entries are repaired (xfrq) and stay repaired, validity moves', () => {
    const s = new SourceData({ kind: 'credit', records: 20_000, seed: 2 });
    const base = new Map(range(20_000).map((i) => [i, s.current(i) as CreditRecord]));
    s.advance(0.3);
    s.advance(0.3);
    let repaired = 0;
    let moved = 0;
    for (const i of [...s.changedIn(1), ...s.changedIn(2)]) {
      const now = s.current(i) as CreditRecord;
      const then = base.get(i)!;
      expect(now.lb).toBe(then.lb);
      if (now.xfrq !== null) {
        repaired++;
        expect(now.lb).toBe('BLACK');
        expect(now.xfrq > now.lrrq).toBe(true);
      } else if (now.yxq !== then.yxq) moved++;
    }
    expect(repaired).toBeGreaterThan(0);
    expect(moved).toBeGreaterThan(0);
  });

  it('exposes invalidity by (kind, index, generation): only generation 0 holds invalid records', () => {
    const s = new SourceData({ kind: 'population', records: 2000 });
    const bad = range(2000).filter((i) => isInvalid('population', i, 0));
    expect(bad.length).toBeGreaterThan(0);
    for (const i of bad) {
      expect(s.invalidReason(i)).not.toBeNull();
      expect(isInvalid('population', i, 1)).toBe(false);
      expect(isInvalid('population', i, 0, 99)).toBe(recordInvalidReason('population', i, 0, 99) !== null);
    }
  });
});

describe('the cursor (gxsj, id)', () => {
  const s = new SourceData({ kind: 'population', records: 100 });
  const ids = (p: { records: SourceRecord[] }) => p.records.map((r) => r.id);

  it('starts at the beginning without a cursor and defaults nothing else', () => {
    const p = s.page({}, 3);
    expect(ids(p)).toEqual(['P0000001', 'P0000002', 'P0000003']);
    expect(p.next).toEqual({ updatedSince: '2026-01-01T00:00:00.000Z', afterId: 'P0000003' });
  });

  it('takes updatedSince alone as gxsj > updatedSince, and with afterId as (gxsj, id) > (updatedSince, afterId)', () => {
    expect(ids(s.page({ updatedSince: '2026-01-01T00:00:00.000Z' }, 2))).toEqual(['P0000006', 'P0000007']);
    expect(ids(s.page({ updatedSince: '2025-12-31T23:59:59.999Z' }, 2))).toEqual(['P0000001', 'P0000002']);
    expect(ids(s.page({ updatedSince: '2026-01-01T00:00:00.000Z', afterId: 'P0000003' }, 3))).toEqual(['P0000004', 'P0000005', 'P0000006']);
    expect(ids(s.page({ updatedSince: '2026-01-01T00:00:00.000Z', afterId: 'P0000005' }, 1))).toEqual(['P0000006']);
    expect(ids(s.page({ updatedSince: '2026-01-01T08:00:00+08:00', afterId: 'P0000001' }, 1))).toEqual(['P0000002']);
  });

  it('ends with next null, and pages on exactly at the end', () => {
    const p = s.page({ updatedSince: '2026-01-01T00:00:00.019Z', afterId: 'P0000097' }, 3);
    expect(ids(p)).toEqual(['P0000098', 'P0000099', 'P0000100']);
    expect(p.next).toBeNull();
    expect(s.page({ updatedSince: '2026-01-01T00:00:00.019Z', afterId: 'P0000100' }, 3)).toEqual({ records: [], next: null });
    expect(s.page({ updatedSince: '2030-01-01T00:00:00.000Z' }, 3)).toEqual({ records: [], next: null });
  });

  it('refuses what it cannot read', () => {
    expect(() => s.page({ afterId: 'P0000001' }, 1)).toThrow(CursorError);
    expect(() => s.page({ updatedSince: 'yesterday' }, 1)).toThrow(CursorError);
    expect(() => s.page({ updatedSince: '2026-01-01T00:00:00.000Z', afterId: 'L0000001' }, 1)).toThrow(CursorError);
    expect(() => s.page({}, 0)).toThrow(CursorError);
    expect(() => s.page({}, 5001)).toThrow(CursorError);
  });
});

describe('a population simulator over HTTP (bearer)', () => {
  let sim: Simulator<'population'>;
  beforeAll(async () => {
    sim = await startSimulator({ kind: 'population', records: 12_000, seed: 5, auth: BEARER });
  });
  afterAll(async () => sim?.close());

  let full: PopulationRecord[] = [];
  let cursor: PageCursor | null = null;

  it('returns every record exactly once in (gxsj, id) order, with limit 1000 and with limit 7', async () => {
    const a = await walk<PopulationRecord>(sim, BEARER, 1000);
    expect(a.pages).toBe(12);
    expect(a.records.length).toBe(12_000);
    expect(new Set(a.records.map((r) => r.id)).size).toBe(12_000);
    expectOrdered(a.records);
    expect(a.records.map((r) => r.id)).toEqual(range(12_000).map((i) => sim.source.idOf(i)));
    // timestamps are shared by five records, pages end inside groups
    expect(new Set(a.records.map((r) => r.gxsj)).size).toBe(2400);
    const b = await walk<PopulationRecord>(sim, BEARER, 7);
    expect(b.records).toEqual(a.records);
    full = a.records;
    cursor = a.cursor;
    expect(a.records[5]).toEqual(sim.current(5));
  });

  it('serves limit 1000 by default and refuses a bad cursor with 400', async () => {
    const res = await get(sim, BEARER, '/records');
    expect(((await res.json()) as PageBody).records.length).toBe(1000);
    for (const q of ['/records?limit=0', '/records?limit=5001', '/records?limit=abc', '/records?afterId=P0000001', '/records?updatedSince=never']) {
      const bad = await get(sim, BEARER, q);
      expect(bad.status).toBe(400);
      expect(await bad.json()).toMatchObject({ error: 'BAD_REQUEST' });
    }
    expect((await get(sim, BEARER, '/nowhere')).status).toBe(404);
  });

  it('advance(0.1) changes ~10%, and an incremental pull from the last cursor returns exactly the changed records', async () => {
    const res = await post(sim, '/control/advance', { share: 0.1 });
    const { generation, changed } = (await res.json()) as { generation: number; changed: number };
    expect(generation).toBe(1);
    expect(changed / 12_000).toBeGreaterThan(0.085);
    expect(changed / 12_000).toBeLessThan(0.115);
    const inc = await walk<PopulationRecord>(sim, BEARER, 500, cursor);
    expect(inc.records.length).toBe(changed);
    expect(inc.records.map((r) => r.id).sort()).toEqual(sim.source.changedIn(1).map((i) => sim.source.idOf(i)));
    expectOrdered(inc.records);
    const before = new Map(full.map((r) => [r.id, r]));
    let moved = 0;
    for (const r of inc.records) {
      expect(Date.parse(r.gxsj)).toBeGreaterThanOrEqual(T0 + GENERATION_SPAN_MS);
      const old = before.get(r.id)!;
      expect(r.csrq).toBe(old.csrq);
      if (r.hjdz !== old.hjdz) moved++;
    }
    expect(moved / changed).toBeGreaterThan(0.9);

    // records invalid in generation 0 that changed are now valid
    const fixed = sim.source.changedIn(1).filter((i) => isInvalid('population', i, 0, 5));
    expect(fixed.length).toBeGreaterThan(0);
    for (const i of fixed) {
      const r = sim.current(i);
      expect(sim.invalidReason(i)).toBeNull();
      expect(isValidIdNumber(r.sfzh)).toBe(true);
      expect(r.xm).not.toBe('');
    }

    // a second generation: only its changes, each once, a record changed twice only in its newest version
    sim.advance(0.1);
    const inc2 = await walk<PopulationRecord>(sim, BEARER, 1000, inc.cursor);
    expect(inc2.records.map((r) => r.id).sort()).toEqual(sim.source.changedIn(2).map((i) => sim.source.idOf(i)));
    const all = await walk<PopulationRecord>(sim, BEARER, 1000);
    expect(all.records.length).toBe(12_000);
    expect(new Set(all.records.map((r) => r.id)).size).toBe(12_000);
    expectOrdered(all.records);
    const twice = sim.source.changedIn(1).filter((i) => sim.source.changedIn(2).includes(i));
    expect(twice.length).toBeGreaterThan(0);
    for (const i of twice) expect(all.records.find((r) => r.id === sim.source.idOf(i))).toEqual(sim.current(i));
    expect(all.records.slice(-inc2.records.length)).toEqual(inc2.records);

    const stats = (await (await fetch(`${sim.url}/control/stats`)).json()) as Record<string, unknown>;
    expect(stats).toMatchObject({ kind: 'population', generation: 2, records: 12_000 });
    expect(stats.requests).toBeGreaterThan(1700);
  });

  it('refuses a missing or wrong bearer token with 401 JSON', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer nope' }, { authorization: 'Basic cG9wdWxhdGlvbi10b2tlbg==' }];
    for (const headers of attempts) {
      const res = await fetch(`${sim.url}/records?limit=1`, { headers });
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: 'UNAUTHORIZED' });
    }
    expect((await fetch(`${sim.url}/export.csv`)).status).toBe(401);
    expect((await get(sim, BEARER, '/records?limit=1')).status).toBe(200);
  });
});

describe('auth: API key and HMAC signatures', () => {
  let keySim: Simulator;
  let hmacSim: Simulator;
  beforeAll(async () => {
    keySim = await startSimulator({ kind: 'legal_person', records: 100, auth: APIKEY });
    hmacSim = await startSimulator({ kind: 'credit', records: 100, auth: HMAC });
  });
  afterAll(async () => {
    await keySim?.close();
    await hmacSim?.close();
  });

  it('accepts the API key in its header and refuses a missing or wrong one', async () => {
    expect((await fetch(`${keySim.url}/records?limit=2`, { headers: { 'x-api-key': 'market-key' } })).status).toBe(200);
    expect((await fetch(`${keySim.url}/records?limit=2`, { headers: { 'x-api-key': 'market-kez' } })).status).toBe(401);
    expect((await fetch(`${keySim.url}/records?limit=2`, { headers: { authorization: 'Bearer market-key' } })).status).toBe(401);
  });

  it('accepts a fresh signature over method, path with query and timestamp, and refuses anything else', async () => {
    const p = '/records?limit=2';
    const now = Math.floor(Date.now() / 1000);
    const headers = (over: Record<string, string>) => ({ ...authHeaders(HMAC, 'GET', p, now), ...over });
    expect((await fetch(hmacSim.url + p, { headers: headers({}) })).status).toBe(200);
    expect((await fetch(hmacSim.url + p, { headers: authHeaders(HMAC, 'GET', p, now - 290) })).status).toBe(200);
    // stale, from the future, wrong key id, wrong secret, another query, missing headers
    expect((await fetch(hmacSim.url + p, { headers: authHeaders(HMAC, 'GET', p, now - 301) })).status).toBe(401);
    expect((await fetch(hmacSim.url + p, { headers: authHeaders(HMAC, 'GET', p, now + 400) })).status).toBe(401);
    expect((await fetch(hmacSim.url + p, { headers: headers({ 'x-key-id': 'other' }) })).status).toBe(401);
    expect((await fetch(hmacSim.url + p, { headers: authHeaders({ ...HMAC, secret: 'guess' } as SimulatorAuth, 'GET', p, now) })).status).toBe(401);
    expect((await fetch(`${hmacSim.url}/records?limit=3`, { headers: headers({}) })).status).toBe(401);
    expect((await fetch(hmacSim.url + p)).status).toBe(401);
    const res = await fetch(hmacSim.url + p, { headers: headers({ 'x-signature': 'zz' }) });
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: 'UNAUTHORIZED' });
  });

  it('signs as documented: hex HMAC-SHA256 of METHOD\\npath?query\\ntimestamp', () => {
    const expected = crypto.createHmac('sha256', 'k').update('GET\n/records?limit=1\n1767225600').digest('hex');
    expect(signRequest('k', 'GET', '/records?limit=1', 1767225600)).toBe(expected);
    expect(signRequest('k', 'get', '/records?limit=1', '1767225600')).toBe(expected);
  });
});

describe('faults', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ kind: 'credit', records: 500, auth: BEARER });
  });
  afterAll(async () => sim?.close());
  const page = (cursor: PageCursor | null = null, signal?: AbortSignal) => get(sim, BEARER, recordsPath(cursor, 5), signal);
  const faults = async (body: unknown) => {
    const res = await post(sim, '/control/faults', body);
    expect(res.status).toBe(200);
    return res.json();
  };

  it('error500 answers 500 for the next `count` requests, then the source recovers', async () => {
    expect(await faults({ mode: 'error500', count: 2 })).toEqual({ mode: 'error500', remaining: 2, delayMs: 2000 });
    expect((await page()).status).toBe(500);
    expect((await page()).status).toBe(500);
    expect((await page()).status).toBe(200);
  });

  it('timeout never answers: the client gives up', async () => {
    await faults({ mode: 'timeout' });
    const error = await page(null, AbortSignal.timeout(300)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('TimeoutError');
    expect((await page()).status).toBe(200);
  });

  it('malformed answers 200 with a body that is not JSON', async () => {
    await faults({ mode: 'malformed' });
    const res = await page();
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.startsWith('{"records":[')).toBe(true);
    expect(() => JSON.parse(text)).toThrow();
  });

  it('slow answers the right page after delayMs, or not before the client gives up', async () => {
    const normal = await (await page()).text();
    await faults({ mode: 'slow', delayMs: 100 });
    const res = await page();
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(normal);
    await faults({ mode: 'slow', delayMs: 10_000 });
    const error = await page(null, AbortSignal.timeout(300)).catch((e: unknown) => e);
    expect((error as Error).name).toBe('TimeoutError');
  });

  it('repeat answers the previous page again, then pages on', async () => {
    const first = (await (await page()).json()) as PageBody;
    await faults({ mode: 'repeat' });
    const again = (await (await page(first.next)).json()) as PageBody;
    expect(again).toEqual(first);
    const second = (await (await page(first.next)).json()) as PageBody;
    expect(second.records[0]!.id).toBe('C0000006');
  });

  it('none clears the faults; bad switches are refused', async () => {
    await faults({ mode: 'error500', count: 5 });
    expect(await faults({ mode: 'none' })).toMatchObject({ mode: 'none', remaining: 0 });
    expect((await page()).status).toBe(200);
    expect((await post(sim, '/control/faults', { mode: 'explode' })).status).toBe(400);
    expect((await post(sim, '/control/faults', { mode: 'slow', delayMs: -1 })).status).toBe(400);
    expect(sim.setFaults({ mode: 'error500', count: 1 })).toEqual({ mode: 'error500', remaining: 1, delayMs: 2000 });
    expect((await page()).status).toBe(500);
    const stats = sim.stats();
    expect(stats.faults.mode).toBe('none');
    expect(stats.requests).toBeGreaterThan(10);
  });

  it('close() ends requests held by timeout and slow', async () => {
    const other = await startSimulator({ kind: 'population', records: 10, auth: BEARER });
    other.setFaults({ mode: 'timeout', count: 1 });
    const held = get(other, BEARER, '/records').then(
      () => 'answered',
      () => 'ended',
    );
    await expect.poll(() => other.stats().requests).toBe(1);
    other.setFaults({ mode: 'slow', count: 1, delayMs: 60_000 });
    const delayed = get(other, BEARER, '/records').then(
      () => 'answered',
      () => 'ended',
    );
    await expect.poll(() => other.stats().requests).toBe(2);
    await other.close();
    expect(await held).toBe('ended');
    expect(await delayed).toBe('ended');
  });
});

/** A small RFC 4180 reader (quoted fields, doubled quotes, CRLF). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      i++;
    } else field += c;
  }
  if (field || row.length) rows.push([...row, field]);
  return rows;
}

const asCsv = (v: unknown) => (v === null ? '' : Array.isArray(v) ? v.join(';') : String(v));

describe('exports', () => {
  it('quotes CSV fields as RFC 4180 says', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\nlines')).toBe('"two\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(['JC-0101', 'JC-0205'])).toBe('JC-0101;JC-0205');
    expect(csvField(12.5)).toBe('12.5');
    expect(parseCsv('a,"b,""c"""\r\n,x\r\n')).toEqual([
      ['a', 'b,"c"'],
      ['', 'x'],
    ]);
  });

  for (const [kind, auth] of [
    ['population', BEARER],
    ['legal_person', APIKEY],
    ['credit', HMAC],
  ] as [SourceKind, SimulatorAuth][]) {
    it(`${kind}: /export.jsonl, /export.csv and writeSnapshot hold the same records as the /records walk`, async () => {
      const sim = await startSimulator({ kind, records: 4321, seed: 11, auth });
      try {
        sim.advance(0.2);
        const { records } = await walk(sim, auth, 1000);
        expect(records.length).toBe(4321);

        const jsonl = await (await get(sim, auth, '/export.jsonl')).text();
        const lines = jsonl.split('\n');
        expect(lines.pop()).toBe('');
        expect(lines.map((l) => JSON.parse(l))).toEqual(records);

        const res = await get(sim, auth, '/export.csv');
        expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
        const csv = await res.text();
        const rows = parseCsv(csv);
        const fields = SOURCE_FIELDS[kind] as readonly string[];
        expect(rows[0]).toEqual(fields);
        expect(rows.slice(1)).toEqual(records.map((r) => fields.map((f) => asCsv((r as unknown as Record<string, unknown>)[f]))));

        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-sim-'));
        try {
          await writeSnapshot(sim, path.join(dir, 'snap.csv'), 'csv');
          await writeSnapshot(sim.source, path.join(dir, 'snap.jsonl'), 'jsonl');
          expect(fs.readFileSync(path.join(dir, 'snap.csv'), 'utf8')).toBe(csv);
          expect(fs.readFileSync(path.join(dir, 'snap.jsonl'), 'utf8')).toBe(jsonl);
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      } finally {
        await sim.close();
      }
    });
  }
});

describe('the standalone entry', () => {
  it('starts a simulator from the command line and prints its url as one JSON line', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'connectors/simulators/main.ts', '--kind', 'legal_person', '--records', '1000', '--bearer', 'T'], {
      cwd: path.resolve(import.meta.dirname, '..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      const line = await new Promise<string>((resolve, reject) => {
        readline.createInterface({ input: child.stdout! }).once('line', resolve);
        child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
      });
      const info = JSON.parse(line) as { url: string; kind: string; records: number };
      expect(info).toMatchObject({ kind: 'legal_person', records: 1000 });
      const res = await fetch(`${info.url}/records?limit=2`, { headers: { authorization: 'Bearer T' } });
      expect(((await res.json()) as PageBody).records.map((r) => r.id)).toEqual(['L0000001', 'L0000002']);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
  });
});
