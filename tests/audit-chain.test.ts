import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonical, canonicalEntry, chainHash, chainHashOf, GENESIS_HASH, type ChainedEntry } from '../audit/chain.ts';

/** The chain's definition written out again, separately: keys sorted at every level, absent values null. */
function reference(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (Array.isArray(value)) return `[${value.map(reference).join(',')}]`;
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${reference(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

const base: ChainedEntry = {
  seq: 1,
  at: '2026-12-01T02:03:04.005Z',
  clientId: 'demo-approval',
  department: '11350100003500043N',
  operator: '张三',
  itemCode: '350100-DJ-0001',
  caseId: 'FZ-2026-1',
  operation: 'PERSON_READ',
  resourceCode: '1-01-001/000001',
  subject: '11010519491231002X',
  fields: ['idNumber', 'name'],
  outcome: 'RETURNED',
  reason: null,
  withholdBasis: null,
  requestId: 'req-1',
  details: { versions: ['k@2'], asOf: null, unmasked: [], nested: { b: 1, a: 'x"\\\n' } },
};

describe('the chain hash', () => {
  it('keeps its definition: a vector computed before the fast form existed', () => {
    expect(chainHash(GENESIS_HASH, base)).toBe('6ebda0bfc224414cc45fd02ccf7cab41ed085a49c46f498ff5f5efd1238977ad');
  });

  it('writes every entry exactly as the reference form does, whichever way it takes', () => {
    const odd: Partial<ChainedEntry>[] = [
      {},
      { details: null },
      { details: { asOf: null, unmasked: [], versions: ['k@1'] } },
      { details: { z: 1, a: { y: [1, { d: 2, c: 3 }], b: true } } },
      { details: { a: undefined, b: 1 } },
      { details: { when: new Date('2026-01-01T00:00:00Z') } as never },
      { details: { n: Number.NaN, i: Number.POSITIVE_INFINITY, m: -0 } },
      { details: { list: [undefined, null, 'x'] } as never },
      { details: JSON.parse('{"__proto__": {"x": 1}, "a": 2}') as Record<string, unknown> },
      { details: Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 }) },
      { fields: null, operator: null },
      { fields: [] },
      { fields: ['a"b', 'c\\d', '\u0000\u001f', '\ud83d\ude00', '\ud800'] },
      { caseId: undefined as never, subject: undefined as never },
      { seq: Number.MAX_SAFE_INTEGER, reason: 'line\nbreak\t"quoted"' },
    ];
    for (const o of odd) {
      const e = { ...base, ...o };
      const expected = reference([e.seq, e.at, e.clientId, e.department, e.operator, e.itemCode, e.caseId, e.operation, e.resourceCode, e.subject, e.fields, e.outcome, e.reason, e.withholdBasis, e.requestId, e.details]);
      expect(canonicalEntry(e)).toBe(expected);
      expect(canonical(e.details)).toBe(reference(e.details));
      expect(chainHash(GENESIS_HASH, e)).toBe(crypto.createHash('sha256').update(GENESIS_HASH, 'hex').update(expected).digest('hex'));
    }
  });

  it('hashes the previous hash\'s bytes and the text\'s UTF-8, a malformed stored hash and a long text too', () => {
    const expected = (prev: string, text: string) => crypto.createHash('sha256').update(Buffer.from(prev, 'hex')).update(text).digest('hex');
    const long = `["${'证'.repeat(20_000)}"]`;
    for (const [prev, text] of [[GENESIS_HASH, '[1]'], ['ab'.repeat(32), long], ['zz', '[2]'], ['abc', '[3]'], ['f'.repeat(128), '["\ud83d\ude00"]'], ['', '[]'], [GENESIS_HASH, '[4]']] as const) {
      expect(chainHashOf(prev, text)).toBe(expected(prev, text));
    }
  });
});
