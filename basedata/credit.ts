/** 公共信用: what a credit entry (red list, black list, sanction, permit) says now. */

/** An entry's data as the connectors store it (see connectors/records.ts, the credit mapping). */
export interface CreditEntryData {
  entryId?: string;
  listType?: string;
  authority?: string;
  reason?: string;
  basis?: string;
  listedOn?: string | null;
  validUntil?: string | null;
  repairedAt?: string | null;
  measures?: string[] | null;
}

/** 信用修复 (a repair date) and expiry take an entry off its list; it stays in the history. `today`: YYYY-MM-DD. */
export function inForce(e: CreditEntryData, today: string): boolean {
  return !e.repairedAt && (!e.validUntil || String(e.validUntil) >= today);
}
