import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { createClientAssertion, generateClientKey, type ClientFile, type ClientKeyAlg } from '../../auth/client-file.ts';
import { createClient } from '../../auth/clients.ts';
import { CLIENT_ASSERTION_TYPE } from '../../auth/oauth.ts';
import { loadConfig } from '../../core/config.ts';
import { createLogger, type Logger } from '../../core/logger.ts';
import { createDepartment, getDepartment } from '../../directory/departments.ts';
import { DEMO_DEPARTMENTS } from '../../db/seeds/demo.ts';
import { buildApp, type BuildAppOptions, type HubApp } from '../../gateway/app.ts';
import { openHub, type HubServices } from '../../gateway/services.ts';
import type { Database } from '../../db/index.ts';

export const TEST_ISSUER = 'http://hub.test';
export const TEST_MASTER_KEY = 'a'.repeat(64);

export interface TestHub {
  services: HubServices;
  app: HubApp;
  /** Where the HTTP server listens (the issuer stays TEST_ISSUER). */
  url: string;
  /** Registers a client with a fresh key and returns its client file. */
  newClient(roles: string[], options?: { alg?: ClientKeyAlg; department?: string; name?: string; permissions?: string[] }): Promise<ClientFile>;
  /** POST /oauth/token with these form parameters. */
  tokenRequest(params: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  /** A client assertion for the file, then a token. */
  token(file: ClientFile, scope?: string): Promise<string>;
  graphql(query: string, token?: string, variables?: Record<string, unknown>): Promise<{ status: number; body: GraphQLBody; headers: Headers }>;
  close(): Promise<void>;
}

export interface GraphQLBody {
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: Record<string, unknown>;
}

export const DEPT = DEMO_DEPARTMENTS[3].code;

/** A hub app on a given database, listening on a free loopback port. */
export async function startTestHub(database: Database, options: BuildAppOptions & { now?: () => number; logger?: Logger; env?: Record<string, string> } = {}): Promise<TestHub> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-test-'));
  const config = loadConfig({ NODE_ENV: 'test', HUB_ISSUER: TEST_ISSUER, HUB_MASTER_KEY: TEST_MASTER_KEY, HUB_DATA_DIR: dataDir, ...options.env });
  const logger = options.logger ?? createLogger({ level: process.env.HUB_TEST_LOG ?? 'silent' });
  const services = await openHub(config, logger, { database, ...(options.now ? { now: options.now } : {}) });
  for (const d of DEMO_DEPARTMENTS) if (!(await getDepartment(database.db, d.code))) await createDepartment(database.db, d).catch(() => undefined);
  const app = buildApp(services, options);
  const server = http.createServer(app.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const tokenRequest = async (params: Record<string, string>) => {
    const res = await fetch(`${url}/oauth/token`, { method: 'POST', body: new URLSearchParams(params) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const hub: TestHub = {
    services,
    app,
    url,
    async newClient(roles, o = {}) {
      const { privateJwk, publicJwk } = await generateClientKey(o.alg ?? 'ES256');
      const c = await createClient(database.db, { name: o.name ?? 'test client', department: o.department ?? DEPT, roles, jwk: publicJwk, permissions: o.permissions ?? [] });
      return { client_id: c.clientId, jwk: privateJwk };
    },
    tokenRequest,
    async token(file, scope) {
      const r = await tokenRequest({
        grant_type: 'client_credentials',
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await createClientAssertion(file, TEST_ISSUER),
        ...(scope ? { scope } : {}),
      });
      if (r.status !== 200) throw new Error(`token refused: ${JSON.stringify(r.body)}`);
      return String(r.body.access_token);
    },
    async graphql(query, token, variables) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      return { status: res.status, body: (await res.json()) as GraphQLBody, headers: res.headers };
    },
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await services.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return hub;
}
