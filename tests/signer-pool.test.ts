import crypto from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { SignerPool } from '../licence/signer-pool.ts';

const ec = () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const verifies = (publicKey: crypto.KeyObject, input: string, sig: string) =>
  crypto.verify('sha256', Buffer.from(input), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(sig, 'base64url'));

describe('the signer pool (ES256 in worker threads)', () => {
  const pool = new SignerPool(2);
  afterAll(() => pool.close());

  it('answers each signature to its own caller, for several keys and headers asked in the same tick', async () => {
    const a = ec();
    const b = ec();
    const asks = Array.from({ length: 300 }, (_, i) => ({ kid: i % 3 === 0 ? 'b' : 'a', header: i % 2 ? 'eyJhIjoxfQ' : 'eyJiIjoyfQ', body: `body-${i}` }));
    const sigs = await Promise.all(asks.map((q) => pool.sign(q.kid, q.kid === 'a' ? a.privateKey : b.privateKey, q.header, q.body)));
    asks.forEach((q, i) => {
      const key = q.kid === 'a' ? a.publicKey : b.publicKey;
      expect(verifies(key, `${q.header}.${q.body}`, sigs[i]!), `signature ${i}`).toBe(true);
      // not some other caller's: the other key, or another body, does not verify
      expect(verifies(q.kid === 'a' ? b.publicKey : a.publicKey, `${q.header}.${q.body}`, sigs[i]!)).toBe(false);
      expect(verifies(key, `${q.header}.body-x`, sigs[i]!)).toBe(false);
    });
    // a later tick reuses the key each worker already holds
    const again = await pool.sign('a', a.privateKey, 'h', 'later');
    expect(verifies(a.publicKey, 'h.later', again)).toBe(true);
  });

  it('fails the callers of a key it cannot sign with, and goes on signing for the others', async () => {
    const good = ec();
    const x25519 = crypto.generateKeyPairSync('x25519'); // a key-agreement key: no signatures
    const bad = pool.sign('bad', x25519.privateKey, 'h', 'b');
    const fine = pool.sign('good', good.privateKey, 'h', 'b');
    await expect(bad).rejects.toThrow(/signing failed/);
    expect(verifies(good.publicKey, 'h.b', await fine)).toBe(true);
  });

  it('starts new workers after being closed', async () => {
    const k = ec();
    await pool.close();
    expect(verifies(k.publicKey, 'h.after', await pool.sign('k', k.privateKey, 'h', 'after'))).toBe(true);
  });
});
