import { describe, expect, it } from 'vitest';
import { idNumberCheckChar, idNumberProblem, isValidIdNumber, isValidUscc, makeUscc, maskIdNumbers, usccProblem } from '../core/ids.ts';

// Vectors from ../shared/DOMAIN.md
describe('公民身份号码 (GB 11643-1999)', () => {
  it.each(['11010519491231002X', '360426199101010071', '440524188001010014'])('accepts %s', (id) => {
    expect(isValidIdNumber(id)).toBe(true);
  });
  it('refuses a wrong check digit, an impossible birth date and a bad shape', () => {
    expect(idNumberProblem('110101199003077777')).toBe('CHECK_DIGIT');
    expect(idNumberProblem('110105194902300021')).toBe('BIRTH_DATE'); // 30 February
    expect(idNumberProblem('11010519491231002x')).toBe('FORMAT');
    expect(idNumberProblem('1101051949123100')).toBe('FORMAT');
  });
  it('knows the calendar: leap days, month lengths, and no births before 1800', () => {
    const id = (date: string) => `110105${date}002${idNumberCheckChar(`110105${date}002`)}`;
    for (const ok of ['20000229', '20240229', '19491231', '18000101', '20230430', '20230131']) expect(idNumberProblem(id(ok)), ok).toBeNull();
    for (const bad of ['19000229', '20230229', '21000229', '20230431', '20230631', '20231301', '20230001', '20230100', '17991231']) expect(idNumberProblem(id(bad)), bad).toBe('BIRTH_DATE');
  });
});

describe('统一社会信用代码 (GB 32100-2015)', () => {
  it.each(['91350100M000100Y43', '91110000600037341L', '121200004013590816', '91310115MA1K3BTP2B', '91340600MA2PBM9HXD', '11100000000013338W'])(
    'accepts %s',
    (code) => expect(isValidUscc(code)).toBe(true),
  );
  it('refuses a wrong check character and the pilot-era code whose organisation code fails', () => {
    expect(usccProblem('911100001000000000')).not.toBeNull();
    expect(usccProblem('91350100M0001TGQXM')).not.toBeNull();
    expect(usccProblem('91350100M000100Y4I')).toBe('FORMAT');
  });
  it('builds valid codes for seeds', () => {
    expect(isValidUscc(makeUscc('11', '350100', '00350001'))).toBe(true);
  });
});

describe('masking', () => {
  it('masks every ID-shaped run in a text, and nothing shorter or longer', () => {
    expect(maskIdNumbers('查询 11010519491231002X 与 360426199101010071')).toBe('查询 110105********002X 与 360426********0071');
    expect(maskIdNumbers('"idNumber":"440524188001010014"')).toBe('"idNumber":"440524********0014"');
    expect(maskIdNumbers('order 1234567890123456789012')).toBe('order 1234567890123456789012');
    expect(maskIdNumbers('91350100M000100Y43')).toBe('91350100M000100Y43');
  });
});
