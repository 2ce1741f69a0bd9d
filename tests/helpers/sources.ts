import { designateBaseSource } from '../../connectors/authority.ts';
import type { Connector, ConnectorInput } from '../../connectors/registry.ts';
import type { SyncSources } from '../../connectors/sync.ts';
import { systemContext } from '../../core/context.ts';
import { EgressPolicy } from '../../core/egress.ts';
import { createLogger } from '../../core/logger.ts';
import type { Db } from '../../db/index.ts';
import { registerSource } from '../../db/seeds/demo-sources.ts';
import { TEST_MASTER_KEY } from './hub.ts';

const log = createLogger({ level: 'silent' });
export const MASTER_KEY = Buffer.from(TEST_MASTER_KEY, 'hex');
export const OPERATOR = 'test-operator';

/** What a run may use: the test master key, an egress policy listing `allow` (simulators' hosts), an import folder. */
export function testSources(options: { allow?: string[]; importDir?: string } = {}): SyncSources {
  return { masterKey: MASTER_KEY, egress: EgressPolicy.fromConfig((options.allow ?? []).join(','), { ports: [] }), ...(options.importDir ? { importDir: options.importDir } : {}) };
}

/** The host:port of a URL, as HUB_EGRESS_ALLOW lists it. */
export const hostOf = (url: string) => new URL(url).host;

/**
 * A source registered as a department and the operator register one: the department designated as a source of the
 * kind (tests have no directory), its secret stored, the connector drafted by the department and approved by
 * another client.
 */
export async function approvedSource(db: Db, input: ConnectorInput, options: { secret?: { name: string; value: string }; designate?: boolean } = {}): Promise<Connector> {
  if (options.designate ?? true) await designateBaseSource(systemContext(db, log, input.departmentCode, OPERATOR), input.kind, input.departmentCode, 'test source');
  return registerSource(db, log, MASTER_KEY, input, { ...(options.secret ? { secret: options.secret } : {}), drafter: 'test-department', operator: { clientId: OPERATOR, department: input.departmentCode } });
}
