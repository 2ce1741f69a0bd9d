import type { Logger } from '../core/logger.ts';
import type { Database } from '../db/index.ts';
import type { LicencePorts } from './issue.ts';
import { LicencePki } from './pki.ts';
import { StatusListService } from './status-list.ts';
import { LicenceVerifier } from './verify.ts';

/** The licence room's long-lived parts in one process: keys, the verifier, the status list renderer. */
export interface LicenceRuntime {
  pki: LicencePki;
  verifier: LicenceVerifier;
  statusLists: StatusListService;
  ports: LicencePorts;
  close(): Promise<void>;
}

/** Opens the licence room: creates the root CA on first start, loads the keys, listens for changes. */
export async function openLicenceRuntime(database: Database, masterKey: Buffer, issuer: string, logger?: Logger): Promise<LicenceRuntime> {
  const pki = await LicencePki.open(database, masterKey, logger);
  return {
    pki,
    verifier: new LicenceVerifier(database.db, pki),
    statusLists: new StatusListService(database.db, pki, issuer),
    ports: { pki, masterKey, issuer },
    close: () => pki.close(),
  };
}
