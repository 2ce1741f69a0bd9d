import fs from 'node:fs';
import path from 'node:path';
import { generateClientKey, readClientFile, writeClientFile } from '../../auth/client-file.ts';
import { addClientKey, createClient, getClient } from '../../auth/clients.ts';
import { makeUscc } from '../../core/ids.ts';
import { createDepartment, getDepartment } from '../../directory/departments.ts';
import type { Logger } from '../../core/logger.ts';
import type { Db } from '../index.ts';
import { seedDemoDirectory } from './demo-directory.ts';
import { seedDemoLicences } from './demo-licences.ts';

/** 机关 (registration authority 1, category 1) codes in 福州 (350100) with computed check characters. */
export const DEMO_DEPARTMENTS = [
  { code: makeUscc('11', '350100', '00350001'), name: '福州市公安局', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350002'), name: '福州市市场监督管理局', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350003'), name: '福州市发展和改革委员会（市信用办）', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350004'), name: '福州市行政审批服务局', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350005'), name: '福州市数据管理局', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350000', '00350006'), name: '福建省人力资源和社会保障厅', region: '350000', level: 'PROVINCE' },
  { code: makeUscc('11', '350100', '00350007'), name: '福州市卫生健康委员会', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350008'), name: '福州市自然资源和规划局', region: '350100', level: 'CITY' },
  { code: makeUscc('11', '350100', '00350009'), name: '福州市民政局', region: '350100', level: 'CITY' },
] as const;

export const DEMO_CONSUMER = {
  clientId: 'demo-approval-system',
  name: '福州市行政审批服务局 一窗受理系统',
  department: DEMO_DEPARTMENTS[3].code,
  roles: ['consumer'],
  file: 'demo-client.json',
};

export const DEMO_ADMIN = {
  clientId: 'demo-data-admin',
  name: '福州市数据管理局 运维控制台',
  department: DEMO_DEPARTMENTS[4].code,
  roles: ['admin', 'auditor'],
  file: 'demo-admin.json',
};

export interface SeedReport {
  departments: number;
  directory: Awaited<ReturnType<typeof seedDemoDirectory>>;
  licences: Awaited<ReturnType<typeof seedDemoLicences>>;
  clients: { clientId: string; file: string; created: boolean }[];
}

/**
 * Loads the demo into any database, idempotently. The demo clients' private keys exist only in their client
 * files: when a file is missing (a fresh HUB_DATA_DIR over an old database), a new key replaces the old one.
 */
export async function seedDemo(db: Db, options: { clientDir: string; tokenEndpoint: string; logger: Logger; /** with these, the demo licences are issued too */ licence?: { masterKey: Buffer; issuer: string } }): Promise<SeedReport> {
  let departments = 0;
  for (const d of DEMO_DEPARTMENTS) {
    if (!(await getDepartment(db, d.code))) {
      await createDepartment(db, d);
      departments++;
    }
  }
  fs.mkdirSync(options.clientDir, { recursive: true });
  const clients: SeedReport['clients'] = [];
  for (const c of [DEMO_CONSUMER, DEMO_ADMIN]) {
    const file = path.join(options.clientDir, c.file);
    const existing = await getClient(db, c.clientId);
    const fileKid = fileKidOf(file, c.clientId);
    if (existing && fileKid && existing.keys.some((k) => k.kid === fileKid && !k.revokedAt)) {
      clients.push({ clientId: c.clientId, file, created: false });
      continue;
    }
    const { privateJwk, publicJwk } = await generateClientKey('ES256');
    if (existing) await addClientKey(db, c.clientId, publicJwk, { replace: true });
    else await createClient(db, { clientId: c.clientId, name: c.name, department: c.department, roles: c.roles, jwk: publicJwk });
    writeClientFile(file, { client_id: c.clientId, jwk: privateJwk, token_endpoint: options.tokenEndpoint });
    clients.push({ clientId: c.clientId, file, created: true });
  }
  const [police, market, credit, approval, data, hrss, nhc, nr] = DEMO_DEPARTMENTS.map((x) => x.code) as string[];
  const directory = await seedDemoDirectory(db, options.logger, { police: police!, market: market!, credit: credit!, approval: approval!, data: data!, hrss: hrss!, nhc: nhc!, nr: nr! }, DEMO_CONSUMER);
  const [, , , , , , , , mca] = DEMO_DEPARTMENTS.map((x) => x.code) as string[];
  const licences = await seedDemoLicences(db, options.logger, { police: police!, market: market!, nhc: nhc!, nr: nr!, mca: mca! }, options.licence);
  return { departments, clients, directory, licences };
}

function fileKidOf(file: string, clientId: string): string | undefined {
  try {
    const f = readClientFile(file);
    return f.client_id === clientId ? f.jwk.kid : undefined;
  } catch {
    return undefined;
  }
}
