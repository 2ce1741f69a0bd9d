import type { KeyObject } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * ES256 signing in worker threads. A signature asked for is queued; at the next turn of the event loop the queue
 * goes to the workers in a few messages (one per worker, key and protected header, the header sent once), so a batch
 * of a thousand signatures costs the main thread a few structured clones instead of a thousand `crypto.sign` job
 * set-ups, and the signing runs on every core. Each worker is sent a key once (a KeyObject is cloned to it) and keeps
 * it by its kid; nothing is logged.
 *
 * The worker is plain CommonJS given as text (`eval`), so it runs the same under tsx, vitest or compiled code.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const crypto = require('node:crypto');
const keys = new Map();
parentPort.on('message', (m) => {
  if (m.key) keys.set(m.kid, m.key);
  const key = keys.get(m.kid);
  try {
    if (!key) throw new Error('no key ' + m.kid);
    const out = new Array(m.bodies.length);
    for (let i = 0; i < m.bodies.length; i++) out[i] = crypto.sign('sha256', Buffer.from(m.header + '.' + m.bodies[i]), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    parentPort.postMessage({ id: m.id, out });
  } catch (error) {
    parentPort.postMessage({ id: m.id, error: String(error && error.message || error) });
  }
});
`;

interface Waiting {
  resolve: (signature: string) => void;
  reject: (error: Error) => void;
}

/** The signatures asked for with one key and one protected header since the last dispatch. */
interface Queued {
  key: KeyObject;
  bodies: string[];
  waiting: Waiting[];
}

interface PoolWorker {
  worker: Worker;
  /** kids this worker holds */
  keys: Set<string>;
  inFlight: Map<number, Waiting[]>;
}

export class SignerPool {
  private workers: (PoolWorker | undefined)[] = [];
  /** by kid, then by encoded protected header (the same few strings, from the header cache) */
  private queue = new Map<string, Map<string, Queued>>();
  private scheduled = false;
  private nextId = 1;
  private turn = 0;

  constructor(private readonly size = Math.max(1, Math.min(4, os.availableParallelism()))) {}

  /** The base64url ES256 signature (IEEE P1363) of the signing input `header.body`, with the key known as `kid`. */
  sign(kid: string, key: KeyObject, header: string, body: string): Promise<string> {
    return new Promise((resolve, reject) => {
      let byHeader = this.queue.get(kid);
      if (!byHeader) this.queue.set(kid, (byHeader = new Map()));
      let q = byHeader.get(header);
      if (!q) byHeader.set(header, (q = { key, bodies: [], waiting: [] }));
      q.bodies.push(body);
      q.waiting.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.dispatch());
      }
    });
  }

  private dispatch(): void {
    this.scheduled = false;
    const queued = this.queue;
    this.queue = new Map();
    for (const [kid, byHeader] of queued) {
      for (const [header, q] of byHeader) this.send(kid, header, q);
    }
  }

  /** One message per worker: the bodies split evenly, a few per worker at least. */
  private send(kid: string, header: string, q: Queued): void {
    const parts = Math.max(1, Math.min(this.size, Math.ceil(q.bodies.length / 8)));
    const per = Math.ceil(q.bodies.length / parts);
    for (let start = 0; start < q.bodies.length; start += per) {
      const w = this.worker(this.turn++ % this.size);
      const id = this.nextId++;
      if (w.inFlight.size === 0) w.worker.ref(); // awaited signatures keep the process alive
      w.inFlight.set(id, q.waiting.slice(start, start + per));
      const first = !w.keys.has(kid);
      w.keys.add(kid);
      w.worker.postMessage({ id, kid, key: first ? q.key : undefined, header, bodies: q.bodies.slice(start, start + per) });
    }
  }

  private worker(i: number): PoolWorker {
    const existing = this.workers[i];
    if (existing) return existing;
    const w: PoolWorker = { worker: new Worker(WORKER_SOURCE, { eval: true }), keys: new Set(), inFlight: new Map() };
    w.worker.unref(); // idle, it keeps no process alive
    w.worker.on('message', (m: { id: number; out?: string[]; error?: string }) => {
      const waiting = w.inFlight.get(m.id);
      if (!waiting) return;
      w.inFlight.delete(m.id);
      if (w.inFlight.size === 0) w.worker.unref();
      if (m.out) waiting.forEach((p, k) => p.resolve(m.out![k]!));
      else waiting.forEach((p) => p.reject(new Error(`signing failed: ${m.error}`)));
    });
    const fail = (error: Error) => {
      // a worker that died fails what it held; the next signature starts a new one
      if (this.workers[i] === w) this.workers[i] = undefined;
      for (const waiting of w.inFlight.values()) for (const p of waiting) p.reject(error);
      w.inFlight.clear();
    };
    w.worker.on('error', fail);
    w.worker.on('exit', (code) => fail(new Error(`the signing worker stopped (${code})`)));
    this.workers[i] = w;
    return w;
  }

  /** Stops the workers (what they hold fails). */
  async close(): Promise<void> {
    const ws = this.workers.filter((w) => w !== undefined);
    this.workers = [];
    await Promise.all(ws.map((w) => w.worker.terminate()));
  }
}

/** The process's pool: workers start on the first signature. */
export const signerPool = new SignerPool();
