import fs from 'node:fs';
import autocannon from 'autocannon';

/**
 * The load process: autocannon with request bodies cycled from a file (so lookups vary their subject), reporting
 * one JSON line. Run by bench/run.ts as a separate process, for the baseline and the hub alike.
 */
const config = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as { url: string; connections: number; seconds: number; headers: Record<string, string>; bodies: string[] };
let i = 0;
const r = await autocannon({
  url: config.url,
  connections: config.connections,
  duration: config.seconds,
  method: 'POST',
  headers: config.headers,
  requests: [{ setupRequest: (req) => ({ ...req, body: config.bodies[i++ % config.bodies.length]! }) }],
});
process.stdout.write(`${JSON.stringify({ requestsPerSecond: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx, total: r.requests.total })}\n`);
