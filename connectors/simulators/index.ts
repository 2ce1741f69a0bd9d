/**
 * Department source simulators: 公安 population, 市场监管 legal persons and 信用平台 credit, as HTTP servers with
 * deterministic data, keyset pagination on (gxsj, id), generations of changes, three kinds of auth and switchable
 * faults. See server.ts (HTTP API), source.ts (data and cursor semantics) and records.ts (field lists).
 */
export { authHeaders, checkAuth, signRequest, HMAC_WINDOW_SECONDS, type SimulatorAuth } from './auth.ts';
export { csvField, csvHeader, csvRow, snapshotChunks, writeSnapshot, writeSnapshotTo, type ExportFormat } from './export.ts';
export {
  GENERATION_SPAN_MS,
  ID_PREFIX,
  indexOfId,
  MAX_RECORDS,
  RECORDS_PER_MS,
  recordId,
  SOURCE_FIELDS,
  SOURCE_KINDS,
  T0,
  type CreditListType,
  type CreditRecord,
  type InvalidReason,
  type LegalPersonRecord,
  type OrgType,
  type PopulationRecord,
  type RecordOf,
  type RegistrationStatus,
  type SourceKind,
  type SourceRecord,
} from './records.ts';
export { CursorError, DEFAULT_SEED, isInvalid, MAX_PAGE, recordInvalidReason, SourceData, type Page, type PageCursor, type SourceOptions } from './source.ts';
export { FAULT_MODES, startSimulator, type FaultMode, type FaultSpec, type FaultState, type Simulator, type SimulatorOptions, type SimulatorStats } from './server.ts';
export { CREDIT_MEASURES, REGIONS } from './words.ts';
