import { describe, expect, it } from 'vitest';
import { randomBytesPooled } from '../core/random.ts';

describe('pooled random bytes', () => {
  it('never hands out the same bytes twice, and bytes handed out stay as they were when a new block starts', () => {
    const first = randomBytesPooled(16);
    const copy = Buffer.from(first);
    const seen = new Set<string>([first.toString('hex')]);
    // well past one 64 KiB block
    for (let i = 0; i < 10_000; i++) {
      const b = randomBytesPooled(16);
      expect(b.length).toBe(16);
      const hex = b.toString('hex');
      expect(seen.has(hex)).toBe(false);
      seen.add(hex);
    }
    expect(first.equals(copy)).toBe(true);
    expect(randomBytesPooled(100_000).length).toBe(100_000); // larger than a block
  });
});
