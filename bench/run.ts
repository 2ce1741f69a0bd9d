import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fetchAccessToken, readClientFile } from '../auth/client-file.ts';
import { load, startProcess, stop, type LoadResult } from './load.ts';

/**
 * `npm run bench -- NAME`. Each benchmark measures its baseline in the same run, with the same load tool from a
 * separate process, and ends with one line: `NAME: ours X unit, baseline Y unit, ratio R`.
 */
const benches: Record<string, () => Promise<void>> = { gateway };

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);

function show(label: string, r: LoadResult): void {
  process.stdout.write(
    `${label.padEnd(34)} ${r.requestsPerSecond.toFixed(0).padStart(7)} req/s   p50 ${String(r.p50).padStart(3)} ms   p99 ${String(r.p99).padStart(3)} ms   errors ${r.errors}   non-2xx ${r.non2xx}\n`,
  );
}

/** Bare graphql-yoga `{ hello }` against the hub's authenticated `viewer` (token verified, client checked, metrics, logs). */
async function gateway(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-bench-'));
  const baseline = await startProcess(['--import', 'tsx', 'bench/baseline-yoga.ts'], process.env, (l) => l.startsWith('{"port"'));
  const hub = await startProcess(
    ['--import', 'tsx', 'gateway/main.ts'],
    { ...process.env, HUB_DATA_DIR: dataDir, PORT: '0', HUB_HOST: '127.0.0.1', DATABASE_URL: '', REDIS_URL: '', NODE_ENV: 'production' },
    (l) => l.includes('"hub listening"'),
  );
  try {
    const baseUrl = `http://127.0.0.1:${JSON.parse(baseline.line).port}/graphql`;
    const hubBase = `http://127.0.0.1:${JSON.parse(hub.line).port}`;
    const { access_token } = await fetchAccessToken(readClientFile(path.join(dataDir, 'demo-client.json')), hubBase);
    const json = { 'content-type': 'application/json' };
    const base = { url: baseUrl, connections: CONNECTIONS, body: JSON.stringify({ query: '{ hello }' }), headers: json };
    const ours = {
      url: `${hubBase}/graphql`,
      connections: CONNECTIONS,
      body: JSON.stringify({ query: '{ viewer { clientId name department roles } }' }),
      headers: { ...json, authorization: `Bearer ${access_token}` },
    };
    process.stdout.write(`gateway bench: ${CONNECTIONS} connections, ${SECONDS} s each after ${WARMUP} s warm-up, autocannon in its own process, ${os.cpus().length} cores\n`);
    await load({ ...base, seconds: WARMUP });
    await load({ ...ours, seconds: WARMUP });
    const b = await load({ ...base, seconds: SECONDS });
    show('baseline: yoga { hello }', b);
    const o = await load({ ...ours, seconds: SECONDS });
    show('ours: authenticated viewer', o);
    if (o.non2xx > 0 || o.errors > 0) throw new Error('the hub answered errors under load: the figure would not be a fair one');
    process.stdout.write(
      `gateway: ours ${o.requestsPerSecond.toFixed(0)} req/s (p50 ${o.p50} ms, p99 ${o.p99} ms), baseline ${b.requestsPerSecond.toFixed(0)} req/s (p50 ${b.p50} ms, p99 ${b.p99} ms), ratio ${(o.requestsPerSecond / b.requestsPerSecond).toFixed(2)}\n`,
    );
  } finally {
    await stop(baseline.child);
    await stop(hub.child);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

const name = process.argv[2];
const bench = name ? benches[name] : undefined;
if (!bench) {
  process.stderr.write(`usage: npm run bench -- NAME   (one of: ${Object.keys(benches).join(', ')})\n`);
  process.exit(2);
}
bench().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench ${name} failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
