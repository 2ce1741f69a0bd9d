/**
 * Runs one department source simulator until SIGINT / SIGTERM:
 *   tsx connectors/simulators/main.ts --kind population --records 100000 --port 4101 --bearer TOKEN
 * Auth (one of): --bearer TOKEN | --apikey KEY [--apikey-header x-api-key] | --hmac-key-id ID --hmac-secret SECRET.
 * Other options: --seed N (default 1), --host (default 127.0.0.1), --link-people N, --link-orgs N.
 * Writes one JSON line to stdout once listening: { "url", "kind", "records", "seed" }.
 */
import { parseArgs } from 'node:util';
import type { SimulatorAuth } from './auth.ts';
import { SOURCE_KINDS, type SourceKind } from './records.ts';
import { startSimulator } from './server.ts';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

function integer(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) fail(`--${name} must be a non-negative integer`);
  return Number(value);
}

const { values } = parseArgs({
  options: {
    kind: { type: 'string' },
    records: { type: 'string', default: '100000' },
    seed: { type: 'string' },
    host: { type: 'string' },
    port: { type: 'string' },
    bearer: { type: 'string' },
    apikey: { type: 'string' },
    'apikey-header': { type: 'string', default: 'x-api-key' },
    'hmac-key-id': { type: 'string' },
    'hmac-secret': { type: 'string' },
    'link-people': { type: 'string' },
    'link-orgs': { type: 'string' },
  },
  strict: true,
});

const kind = values.kind as SourceKind | undefined;
if (!kind || !SOURCE_KINDS.includes(kind)) fail(`--kind must be one of ${SOURCE_KINDS.join(', ')}`);

let auth: SimulatorAuth;
if (values.bearer) auth = { type: 'bearer', token: values.bearer };
else if (values.apikey) auth = { type: 'apikey', header: values['apikey-header'], key: values.apikey };
else if (values['hmac-key-id'] && values['hmac-secret']) auth = { type: 'hmac', keyId: values['hmac-key-id'], secret: values['hmac-secret'] };
else fail('auth is required: --bearer TOKEN, --apikey KEY or --hmac-key-id ID --hmac-secret SECRET');

const sim = await startSimulator({
  kind,
  records: integer(values.records, 'records')!,
  seed: integer(values.seed, 'seed'),
  host: values.host,
  port: integer(values.port, 'port'),
  linkPeople: integer(values['link-people'], 'link-people'),
  linkOrgs: integer(values['link-orgs'], 'link-orgs'),
  auth,
}).catch((error: unknown) => fail(`cannot start the simulator: ${(error as Error).message}`));

process.stdout.write(`${JSON.stringify({ url: sim.url, kind: sim.kind, records: sim.recordCount, seed: sim.seed })}\n`);

const stop = () => {
  sim.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
