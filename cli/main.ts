import fs from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import { fetchAccessToken, generateClientKey, readClientFile, writeClientFile, type ClientKeyAlg } from '../auth/client-file.ts';
import { addClientKey, createClient, disableClient, enableClient, listClients, revokeClientKey, rotateClientKey, type ClientRecord } from '../auth/clients.ts';
import { auditPublicKey, KeyRing, listHubKeys, retireHubKey, rotateHubKey } from '../auth/keys.ts';
import { archiveMonth, detachMonth, listAuditMonths, verifyArchiveFile } from '../audit/archive.ts';
import { createCheckpoint, verifyAuditLog } from '../audit/checkpoints.ts';
import { issueHolderToken, refuseWithIdentityProvider } from '../auth/holders.ts';
import { checkMasterKey, resolveMasterKey } from '../auth/master-key.ts';
import { HUB_KEY_PURPOSES, type HubKeyPurpose } from '../auth/schema.ts';
import { SingleBar, Presets } from 'cli-progress';
import { approveConnector, configurationDigest, createConnector, listConnectors, type ConnectorInput } from '../connectors/registry.ts';
import { setSourceSecret } from '../connectors/secrets.ts';
import { listSyncRuns, runSync } from '../connectors/sync.ts';
import { CLI_ACTOR, systemContext } from '../core/context.ts';
import { loadConfig, type HubConfig } from '../core/config.ts';
import { EgressPolicy } from '../core/egress.ts';
import { HubError, StartupError } from '../core/errors.ts';
import { createLogger } from '../core/logger.ts';
import { calendarYear, loadWorkingCalendar, type CalendarInput } from '../directory/calendar.ts';
import { STATE_COUNCIL_CALENDARS } from '../directory/calendar-data.ts';
import { createDepartment, listDepartments } from '../directory/departments.ts';
import { openDatabase, type Database, type Db } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';
import { seedDemo } from '../db/seeds/demo.ts';

/** JSON on stdout; logs and errors on stderr (API-CONTRACT.md). */
function out(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

let config: HubConfig | undefined;
function cfg(): HubConfig {
  config ??= loadConfig();
  return config;
}

/**
 * Opens the configured database for one command. The embedded database is locked by a running hub; the lock's
 * message says so plainly, and names DATABASE_URL as the way to share a database between processes.
 */
async function withDatabase<T>(fn: (database: Database) => Promise<T>, options: { migrate?: boolean } = {}): Promise<T> {
  const c = cfg();
  const database = await openDatabase({ databaseUrl: c.databaseUrl, dataDir: c.dataDir, poolSize: 3, appRole: true });
  try {
    if (options.migrate || database.driver === 'pglite') await migrateDatabase(database);
    return await fn(database);
  } finally {
    await database.close();
  }
}

function withDb<T>(fn: (db: Db) => Promise<T>, options: { migrate?: boolean } = {}): Promise<T> {
  return withDatabase((database) => fn(database.db), options);
}

function masterKeyFor(db: Db): Promise<Buffer> {
  const key = resolveMasterKey(cfg().masterKey, cfg().dataDir);
  return checkMasterKey(db, key).then(() => key);
}

function clientView(c: ClientRecord) {
  return {
    client_id: c.clientId,
    name: c.name,
    department: c.department,
    roles: c.roles,
    permissions: c.permissions,
    status: c.status,
    created_at: c.createdAt.toISOString(),
    keys: c.keys.map((k) => ({ kid: k.kid, alg: k.alg, created_at: k.createdAt.toISOString(), revoked_at: k.revokedAt?.toISOString() ?? null })),
  };
}

function writeNewClientFile(file: string, clientId: string, jwk: Awaited<ReturnType<typeof generateClientKey>>['privateJwk']): void {
  if (fs.existsSync(file)) throw new StartupError(`--key-out: ${file} exists; choose another file (a client file is never overwritten)`);
  fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
  writeClientFile(file, { client_id: clientId, jwk, token_endpoint: `${cfg().issuer}/oauth/token` });
}

const program = new Command('hub').description('the data-sharing exchange and e-licence hub').showHelpAfterError();

program
  .command('migrate')
  .description('apply migrations to DATABASE_URL, or to the embedded database')
  .action(async () => {
    await withDb(async () => undefined, { migrate: true });
    out({ migrated: true });
  });

program
  .command('seed')
  .description('load seed data')
  .option('--demo', 'the demo departments and clients')
  .action(async (opts: { demo?: boolean }) => {
    if (!opts.demo) throw new StartupError('seed: say which seed, e.g. --demo');
    const report = await withDb(async (db) => seedDemo(db, { clientDir: cfg().dataDir, tokenEndpoint: `${cfg().issuer}/oauth/token`, logger: createLogger({ level: cfg().logLevel }), licence: { masterKey: await masterKeyFor(db), issuer: cfg().issuer } }));
    out(report);
  });

const departments = program.command('departments').description('departments (部门), named by 统一社会信用代码');
departments
  .command('create')
  .requiredOption('--code <uscc>', '统一社会信用代码')
  .requiredOption('--name <name>', 'name')
  .requiredOption('--region <code>', '6-digit 行政区划代码')
  .addOption(new Option('--level <level>', 'administrative level').choices(['PROVINCE', 'CITY', 'COUNTY']).makeOptionMandatory())
  .action(async (opts: { code: string; name: string; region: string; level: string }) => {
    out(await withDb((db) => createDepartment(db, opts)));
  });
departments.command('list').action(async () => out(await withDb((db) => listDepartments(db))));

const clients = program.command('clients').description('client systems and their keys');
clients
  .command('create')
  .requiredOption('--name <name>', 'the client system')
  .requiredOption('--department <uscc>', 'its department')
  .requiredOption('--roles <roles>', 'comma-separated: consumer,provider,issuer,auditor,admin')
  .requiredOption('--key-out <file>', 'where to write the client file with the new private key (mode 0600)')
  .addOption(new Option('--alg <alg>', 'key algorithm').choices(['ES256', 'EdDSA']).default('ES256'))
  .option('--permissions <list>', 'comma-separated: withhold (may record reads hidden from the holder, with the legal basis)')
  .action(async (opts: { name: string; department: string; roles: string; keyOut: string; alg: ClientKeyAlg; permissions?: string }) => {
    if (fs.existsSync(opts.keyOut)) throw new StartupError(`--key-out: ${opts.keyOut} exists; choose another file`);
    const { privateJwk, publicJwk } = await generateClientKey(opts.alg);
    const client = await withDb((db) =>
      createClient(db, { name: opts.name, department: opts.department, roles: opts.roles.split(','), jwk: publicJwk, permissions: opts.permissions ? opts.permissions.split(',') : [] }),
    );
    writeNewClientFile(opts.keyOut, client.clientId, privateJwk);
    out({ client_id: client.clientId });
  });
clients
  .command('list')
  .option('--department <uscc>')
  .action(async (opts: { department?: string }) => {
    out((await withDb((db) => listClients(db, opts.department ? { department: opts.department } : {}))).map(clientView));
  });
clients
  .command('disable <clientId>')
  .requiredOption('--reason <text>', 'why, for the record')
  .action(async (clientId: string, opts: { reason: string }) => out(clientView(await withDb((db) => disableClient(db, clientId, opts.reason)))));
clients.command('enable <clientId>').action(async (clientId: string) => out(clientView(await withDb((db) => enableClient(db, clientId)))));
clients
  .command('rotate-key <clientId>')
  .description('replace a client\'s key with a new one; the old keys are revoked unless --keep-old')
  .requiredOption('--key-out <file>', 'where to write the new client file')
  .option('--keep-old', 'keep the old keys working (roll over without downtime; revoke them later)')
  .addOption(new Option('--alg <alg>').choices(['ES256', 'EdDSA']).default('ES256'))
  .action(async (clientId: string, opts: { keyOut: string; keepOld?: boolean; alg: ClientKeyAlg }) => {
    if (fs.existsSync(opts.keyOut)) throw new StartupError(`--key-out: ${opts.keyOut} exists; choose another file`);
    const { privateJwk, publicJwk } = await generateClientKey(opts.alg);
    const client = await withDb((db) => rotateClientKey(db, clientId, publicJwk, { keepOld: Boolean(opts.keepOld) }));
    writeNewClientFile(opts.keyOut, clientId, privateJwk);
    out(clientView(client));
  });
clients
  .command('add-key <clientId>')
  .description('register a public JWK the client made itself')
  .requiredOption('--jwk <file>', 'the public JWK (JSON)')
  .option('--replace', 'revoke the client\'s other keys')
  .action(async (clientId: string, opts: { jwk: string; replace?: boolean }) => {
    const jwk = JSON.parse(fs.readFileSync(opts.jwk, 'utf8')) as unknown;
    out(clientView(await withDb((db) => addClientKey(db, clientId, jwk, { replace: Boolean(opts.replace) }))));
  });
clients
  .command('revoke-key <clientId> <kid>')
  .action(async (clientId: string, kid: string) => out(clientView(await withDb((db) => revokeClientKey(db, clientId, kid)))));

program
  .command('token')
  .description('print an access token from the running hub for a client file')
  .requiredOption('--key <file>', 'the client file')
  .option('--url <url>', 'the hub\'s base URL (default: from the client file\'s token endpoint, else HUB_ISSUER)')
  .option('--scope <roles>', 'space-separated roles to narrow the token to')
  .option('--json', 'print the whole token response')
  .action(async (opts: { key: string; url?: string; scope?: string; json?: boolean }) => {
    const file = readClientFile(opts.key);
    const base = opts.url ?? file.token_endpoint?.replace(/\/oauth\/token$/, '') ?? cfg().issuer;
    const token = await fetchAccessToken(file, base, opts.scope);
    if (opts.json) out(token);
    else process.stdout.write(`${token.access_token}\n`);
  });

const calendar = program.command('calendar').description('工作日历: the yearly holiday notices that time limits count by');
calendar
  .command('load')
  .requiredOption('--year <year>', 'the year', (v) => Number.parseInt(v, 10))
  .option('--file <file>', 'a JSON file {"source": "国办发明电…", "days": [{"day": "2027-01-01", "kind": "HOLIDAY", "name": "元旦"}]}')
  .option('--state-council', 'the State Council notice the hub ships for that year')
  .action(async (opts: { year: number; file?: string; stateCouncil?: boolean }) => {
    let input: { source: string; days: CalendarInput['days'] };
    if (opts.file) input = JSON.parse(fs.readFileSync(opts.file, 'utf8')) as typeof input;
    else if (opts.stateCouncil && STATE_COUNCIL_CALENDARS[opts.year]) input = STATE_COUNCIL_CALENDARS[opts.year]!;
    else throw new StartupError(`calendar load: give --file, or --state-council for a year the hub ships (${Object.keys(STATE_COUNCIL_CALENDARS).join(', ')})`);
    out(await withDb((db) => loadWorkingCalendar(db, { year: opts.year, ...input })));
  });
calendar
  .command('show')
  .requiredOption('--year <year>', 'the year', (v) => Number.parseInt(v, 10))
  .action(async (opts: { year: number }) => out(await withDb((db) => calendarYear(db, opts.year))));

const connectorsCmd = program.command('connectors').description('connectors that pull department systems into the base data');
connectorsCmd
  .command('create')
  .description('register a connector from a JSON file (ConnectorInput: id, name, departmentCode, kind, adapter, config, mapping?, schedule?)')
  .requiredOption('--file <file>', 'the connector definition')
  .action(async (opts: { file: string }) => {
    const input = JSON.parse(fs.readFileSync(opts.file, 'utf8')) as ConnectorInput;
    out(await withDb((db) => createConnector(systemContext(db, createLogger({ level: 'silent' }), input.departmentCode, 'hub-cli'), input)));
  });
connectorsCmd.command('list').action(async () => out((await withDb((db) => listConnectors(db))).map((c) => ({ ...c, digest: configurationDigest(c) }))));
connectorsCmd
  .command('approve <id>')
  .description('approve a connector\'s configuration (the operator\'s four eyes): only an approved configuration runs, and any change returns it to draft')
  .option('--digest <sha256>', 'the configuration digest you reviewed (`hub connectors list` shows it): refused if the connector changed since')
  .option('--key <file>', 'when the embedded hub is running: an admin client file to ask it with (default HUB_DATA_DIR/demo-admin.json)')
  .action(async (id: string, opts: { key?: string; digest?: string }) => {
    out(
      await onDatabaseOrRunningHub(
        opts.key,
        async (database) => {
          const egress = EgressPolicy.fromConfig(cfg().egressAllow, { ports: [cfg().port], issuer: cfg().issuer });
          try {
            return await approveConnector(cliContext(database.db), id, { egress }, opts.digest ?? null);
          } finally {
            egress.close();
          }
        },
        async (gql) =>
          (await gql('mutation($id: ID!, $digest: String) { approveConnector(id: $id, digest: $digest) { id name departmentCode kind adapter status draftedBy approvedBy approvedAt approvedDigest } }', { id, digest: opts.digest ?? null })).approveConnector,
      ),
    );
  });
connectorsCmd
  .command('secret')
  .description('source secrets of a department (sealed under the master key, write-only)')
  .command('set <department> <name>')
  .description('store or rotate a source secret; the value is read from stdin (piped, or typed without echo), never from the command line')
  .option('--key <file>', 'when the embedded hub is running: an admin client file to ask it with (default HUB_DATA_DIR/demo-admin.json)')
  .action(async (department: string, name: string, opts: { key?: string }) => {
    // read before the database is opened: a prompt must not hold the embedded hub's lock
    const value = await readSecretValue(`secret ${name} of ${department}: `);
    const info = await onDatabaseOrRunningHub(
      opts.key,
      async (database) => {
        const s = await setSourceSecret(cliContext(database.db), await masterKeyFor(database.db), department, name, value);
        return { departmentCode: s.departmentCode, name: s.name, version: s.version, updatedAt: s.updatedAt.toISOString() };
      },
      async (gql) =>
        (await gql('mutation($d: String!, $n: String!, $v: String!) { setSourceSecret(department: $d, name: $n, value: $v) { departmentCode name version updatedAt } }', { d: department, n: name, v: value }))
          .setSourceSecret,
    );
    out(info);
  });
connectorsCmd
  .command('runs <connectorId>')
  .option('--failed', 'only failed runs')
  .action(async (connectorId: string, opts: { failed?: boolean }) => out(await withDb((db) => listSyncRuns(db, { connectorId, status: opts.failed ? 'FAILED' : null }))));

program
  .command('sync <connector>')
  .description('run one connector now, with a progress line and the final report (JSON on stdout)')
  .option('--full', 'a full resync instead of continuing from the checkpoint')
  .option('--key <file>', 'when the embedded hub is running: an admin client file to ask it with (default HUB_DATA_DIR/demo-admin.json)')
  .action(async (connectorId: string, opts: { full?: boolean; key?: string }) => {
    const bar = new SingleBar(
      { format: `sync ${connectorId} | {value} fetched | {inserted} new | {updated} changed | {unchanged} unchanged | {quarantined} quarantined | {duration_formatted}`, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 2000 },
      Presets.shades_classic,
    );
    bar.start(0, 0, { inserted: 0, updated: 0, unchanged: 0, quarantined: 0 });
    const show = (p: { fetched: number; inserted: number; updated: number; unchanged: number; quarantined: Record<string, number> | number }) => {
      const q = typeof p.quarantined === 'number' ? p.quarantined : Object.values(p.quarantined).reduce((a, b) => a + b, 0);
      bar.setTotal(Math.max(p.fetched, 1));
      bar.update(p.fetched, { inserted: p.inserted, updated: p.updated, unchanged: p.unchanged, quarantined: q });
    };
    let report: unknown;
    try {
      report = await withDatabase(async (database) => {
        const sources = { masterKey: await masterKeyFor(database.db), egress: EgressPolicy.fromConfig(cfg().egressAllow, { ports: [cfg().port], issuer: cfg().issuer }), importDir: cfg().importDir };
        return runSync(database, connectorId, sources, { full: Boolean(opts.full), trigger: 'cli', onProgress: show, logger: createLogger({ level: cfg().logLevel }) });
      });
    } catch (error) {
      if (!(error instanceof StartupError && /in use by process/.test(error.message))) throw error;
      report = await syncThroughRunningHub(connectorId, Boolean(opts.full), opts.key ?? path.join(cfg().dataDir, 'demo-admin.json'), show);
    } finally {
      bar.stop();
    }
    out(report);
    if ((report as { status?: string }).status === 'FAILED') process.exitCode = 1;
  });

/** The command line acting on the database itself: an admin with no department ('hub-cli' in the audit log). */
function cliContext(db: Db) {
  return systemContext(db, createLogger({ level: 'silent' }), '', CLI_ACTOR.clientId);
}

/**
 * Runs `direct` on the configured database, or, when the embedded hub holds it (PGlite serves one process), `viaHub`
 * through the running hub's GraphQL as the admin of `keyFile`.
 */
async function onDatabaseOrRunningHub<T>(keyFile: string | undefined, direct: (database: Database) => Promise<T>, viaHub: (gql: GraphQLCall) => Promise<T>): Promise<T> {
  try {
    return await withDatabase(direct);
  } catch (error) {
    if (!(error instanceof StartupError && /in use by process/.test(error.message))) throw error;
    return viaHub(await runningHub(keyFile ?? path.join(cfg().dataDir, 'demo-admin.json')));
  }
}

const MAX_SECRET_INPUT = 64 * 1024;

/**
 * A secret's value from stdin, never from argv (which every user of the machine sees in `ps`, and shells keep in
 * their history): piped or redirected as it is, less one final newline; at a terminal, typed without echo.
 */
async function readSecretValue(prompt: string): Promise<string> {
  const stdin = process.stdin;
  let value: string;
  if (stdin.isTTY) value = await readHidden(prompt);
  else {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of stdin as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_SECRET_INPUT) throw new StartupError(`secret: more than ${MAX_SECRET_INPUT} bytes on stdin`);
      chunks.push(chunk);
    }
    value = Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
  }
  if (!value) throw new StartupError('secret: no value on stdin (pipe it in, e.g. `hub connectors secret set DEPT NAME < file`)');
  return value;
}

/** A line typed at the terminal without echo (Enter ends it, Ctrl-C cancels). */
function readHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish();
        if (ch === '\u0003') return finish(new StartupError('secret: cancelled'));
        if (ch === '\u007f' || ch === '\b') value = [...value].slice(0, -1).join('');
        else value += ch;
      }
    };
    process.stderr.write(prompt);
    stdin.setEncoding('utf8');
    stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.resume();
  });
}

type GraphQLCall = (query: string, variables: Record<string, unknown>) => Promise<Record<string, unknown>>;

/**
 * The embedded database belongs to the running hub (PGlite serves one process): commands that need it ask the hub
 * over GraphQL instead, as an admin client.
 */
async function runningHub(keyFile: string): Promise<GraphQLCall> {
  if (!fs.existsSync(keyFile)) throw new StartupError(`the embedded hub is running and holds its database; give --key with an admin client file to ask it (none at ${keyFile})`);
  const file = readClientFile(keyFile);
  const base = file.token_endpoint?.replace(/\/oauth\/token$/, '') ?? cfg().issuer;
  const { access_token } = await fetchAccessToken(file, base);
  return async (query, variables) => {
    const res = await fetch(`${base}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` }, body: JSON.stringify({ query, variables }) });
    const body = (await res.json()) as { data?: Record<string, unknown>; errors?: { message: string; extensions?: { code?: string } }[] };
    if (body.errors?.length) throw new StartupError(`${body.errors[0]!.extensions?.code ?? 'ERROR'}: ${body.errors[0]!.message}`);
    return body.data!;
  };
}

/** Asks the running hub to run the connector, and follows the run. */
async function syncThroughRunningHub(connectorId: string, full: boolean, keyFile: string, show: (p: never) => void): Promise<unknown> {
  const gql = await runningHub(keyFile);
  const since = new Date();
  await gql('mutation($id: ID!, $full: Boolean) { runConnector(id: $id, full: $full) { jobId } }', { id: connectorId, full });
  const RUNS = 'query($id: String!) { syncRuns(connectorId: $id, first: 5) { id status startedAt fetched inserted updated unchanged quarantined batches error mode } }';
  for (;;) {
    await new Promise((r) => setTimeout(r, 500));
    const runs = (await gql(RUNS, { id: connectorId })).syncRuns as { startedAt: string; status: string; fetched: number; inserted: number; updated: number; unchanged: number; quarantined: Record<string, number> }[];
    const run = runs.find((r) => new Date(r.startedAt).getTime() >= since.getTime() - 1000);
    if (!run) continue;
    show(run as never);
    if (run.status !== 'RUNNING') return run;
  }
}

program
  .command('holders')
  .description('citizens and companies (持证主体)')
  .command('token')
  .description('print a holder token for a citizen or company: the demo\'s stand-in for a real identity provider (recorded in the audit log; refused when HUB_OIDC_ISSUER is set)')
  .requiredOption('--code <code>', '公民身份号码 or 统一社会信用代码')
  .addOption(new Option('--code-type <type>', 'when the code passes both checks').choices(['ID_NUMBER', 'USCC']))
  .option('--key <file>', 'when the embedded hub is running: an admin client file to ask it with (default HUB_DATA_DIR/demo-admin.json)')
  .action(async (opts: { code: string; codeType?: 'ID_NUMBER' | 'USCC'; key?: string }) => {
    // with an identity provider the hub mints none, however it is asked (the running hub refuses too)
    refuseWithIdentityProvider(cfg().oidc?.issuer);
    const code = opts.code.trim().toUpperCase();
    let token: string;
    try {
      token = await withDatabase(async (database) => {
        const ring = await KeyRing.open(database, await masterKeyFor(database.db));
        try {
          // recorded as minted by hub-cli, in the log, before the token is printed
          return (await issueHolderToken({ db: database.db, keys: ring, issuer: cfg().issuer, oidcIssuer: cfg().oidc?.issuer }, code, { codeType: opts.codeType ?? null, actor: CLI_ACTOR })).token;
        } finally {
          await ring.close();
        }
      });
    } catch (error) {
      if (!(error instanceof StartupError && /in use by process/.test(error.message))) throw error;
      const gql = await runningHub(opts.key ?? path.join(cfg().dataDir, 'demo-admin.json'));
      const data = await gql('mutation($code: String!, $t: SubjectCodeType) { issueHolderToken(code: $code, codeType: $t) { token } }', { code, t: opts.codeType ?? null });
      token = (data.issueHolderToken as { token: string }).token;
    }
    process.stdout.write(`${token}\n`);
  });

const audit = program.command('audit').description('the tamper-evident audit log');
audit
  .command('verify')
  .description('recompute the chain and every signed checkpoint; exit 1 naming the first entry that does not match')
  .option('--archive <files...>', 'also recompute these archive files (oldest first), each linked to the one before and to its record')
  .action(async (opts: { archive?: string[] }) => {
    const report = await withDb(async (db) => {
      const keyFor = (kid: string) => auditPublicKey(db, kid);
      const log = await verifyAuditLog(db, keyFor);
      const records = new Map((await listAuditMonths(db)).flatMap((m) => (m.archive ? [[m.partition, m.archive] as const] : [])));
      const archives = [];
      let previous: Awaited<ReturnType<typeof verifyArchiveFile>> | null = null;
      for (const file of opts.archive ?? []) {
        const r = await verifyArchiveFile(file, keyFor);
        const record = r.partition ? records.get(r.partition) : undefined;
        if (r.ok && (!record || record.sha256 !== r.sha256)) r.problem = { seq: null, kind: 'RECORD', message: record ? 'the file differs from the archive the hub recorded (SHA-256)' : 'the hub has no record of this archive' };
        if (r.ok && !r.problem && previous && previous.lastHash !== r.prevHash) r.problem = { seq: r.firstSeq ?? null, kind: 'ARCHIVE_LINK', message: `${file} does not begin where ${previous.file} ends` };
        r.ok = !r.problem;
        archives.push(r);
        previous = r;
      }
      return { ...log, ok: log.ok && archives.every((a) => a.ok), ...(opts.archive ? { archives } : {}) };
    });
    out(report);
    if (!report.ok) process.exitCode = 1;
  });
audit
  .command('months')
  .description('the monthly partitions of the log: attached, archived, detached')
  .action(async () => out(await withDb((db) => listAuditMonths(db))));
audit
  .command('archive')
  .description('write a finished month of the log to a JSONL archive linked to the previous one, and record it')
  .requiredOption('--month <YYYY-MM>', 'the month (Asia/Shanghai)')
  .requiredOption('--out <file>', 'where to write the archive')
  .action(async (opts: { month: string; out: string }) => {
    const a = await withDatabase(async (database) => {
      const ring = await KeyRing.open(database, await masterKeyFor(database.db));
      try {
        return await archiveMonth(database.db, ring, cfg().issuer, opts.month, opts.out, { clientId: 'hub-cli' });
      } finally {
        await ring.close();
      }
    });
    out(a);
  });
audit
  .command('detach')
  .description('detach an archived month from the log (its archive must match it and a checkpoint cover it)')
  .requiredOption('--month <YYYY-MM>', 'the month (Asia/Shanghai)')
  .action(async (opts: { month: string }) => out(await withDb((db) => detachMonth(db, opts.month, { clientId: 'hub-cli' }))));
audit
  .command('checkpoint')
  .description('seal the entries written since the last checkpoint into a signed tree head now')
  .action(async () => {
    const c = await withDatabase(async (database) => {
      const ring = await KeyRing.open(database, await masterKeyFor(database.db));
      try {
        return await createCheckpoint(database.db, ring, cfg().issuer);
      } finally {
        await ring.close();
      }
    });
    out(c ? { treeSize: c.treeSize, rootHash: c.rootHash, kid: c.kid } : { treeSize: null, message: 'nothing new to seal' });
  });

const keys = program.command('keys').description('the hub\'s own signing keys');
keys.command('list').action(async () => out(await withDb((db) => listHubKeys(db))));
keys
  .command('rotate')
  .description('a new key signs from now on; the previous one keeps verifying what it signed')
  .addOption(new Option('--purpose <purpose>').choices([...HUB_KEY_PURPOSES]).default('token'))
  .action(async (opts: { purpose: HubKeyPurpose }) => {
    out(await withDb(async (db) => rotateHubKey(db, await masterKeyFor(db), opts.purpose)));
  });
keys
  .command('retire <kid>')
  .description('end a superseded key at once (after a compromise): what it signed stops verifying')
  .action(async (kid: string) => {
    await withDb((db) => retireHubKey(db, kid));
    out({ retired: kid });
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  if (error instanceof HubError) {
    process.stderr.write(`hub: ${error.code}: ${error.message}\n`);
  } else if (error instanceof StartupError) {
    process.stderr.write(`hub: ${error.message}\n`);
  } else {
    process.stderr.write(`hub: ${error instanceof Error ? error.message : String(error)}\n`);
  }
  process.exitCode = 1;
});
