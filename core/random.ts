import crypto from 'node:crypto';

let block = Buffer.alloc(0);
let at = 0;

/**
 * `n` fresh CSPRNG bytes, cut from a 64 KiB block: one system call per block instead of one per call, for the many
 * small draws of a batch (disclosure salts, serial numbers). A block is never refilled, only replaced, so bytes
 * already handed out are never handed out again nor changed.
 */
export function randomBytesPooled(n: number): Buffer {
  if (at + n > block.length) {
    block = crypto.randomBytes(Math.max(65_536, n));
    at = 0;
  }
  at += n;
  return block.subarray(at - n, at);
}
