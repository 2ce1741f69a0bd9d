/**
 * Whole-snapshot exports of a source: CSV (header row, RFC 4180 quoting, CRLF line ends, arrays `;`-joined,
 * null as an empty field) or JSONL (one record per line), in (gxsj, id) order — the same records, in the same
 * order, as a /records walk from the beginning.
 */
import fs from 'node:fs';
import type { Writable } from 'node:stream';
import { SOURCE_FIELDS, type SourceKind } from './records.ts';
import type { SourceData } from './source.ts';

export type ExportFormat = 'csv' | 'jsonl';

const NEEDS_QUOTES = /[",\r\n]/;

/** One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break; arrays joined with `;`. */
export function csvField(value: unknown): string {
  const s = value === null || value === undefined ? '' : Array.isArray(value) ? value.join(';') : String(value);
  return NEEDS_QUOTES.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvHeader(kind: SourceKind): string {
  return `${(SOURCE_FIELDS[kind] as readonly string[]).join(',')}\r\n`;
}

export function csvRow(kind: SourceKind, record: object): string {
  const r = record as Record<string, unknown>;
  const fields = SOURCE_FIELDS[kind] as readonly string[];
  let line = csvField(r[fields[0]!]);
  for (let i = 1; i < fields.length; i++) line += `,${csvField(r[fields[i]!])}`;
  return `${line}\r\n`;
}

/** The snapshot as text chunks (one per batch of records; the CSV header first). */
export function* snapshotChunks(source: SourceData, format: ExportFormat, batch = 2000): Generator<string> {
  if (format === 'csv') yield csvHeader(source.kind);
  for (const records of source.batches(batch)) {
    let chunk = '';
    if (format === 'csv') for (const r of records) chunk += csvRow(source.kind, r);
    else for (const r of records) chunk += `${JSON.stringify(r)}\n`;
    yield chunk;
  }
}

/** Writes the snapshot to a stream, waiting for it to drain; stops early when the stream is destroyed or the signal aborts. */
export async function writeSnapshotTo(source: SourceData, out: Writable, format: ExportFormat, signal?: AbortSignal): Promise<void> {
  for (const chunk of snapshotChunks(source, format)) {
    if (signal?.aborted || out.destroyed) return;
    if (!out.write(chunk)) await drained(out);
  }
}

function drained(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done);
      out.off('close', done);
      out.off('error', done);
      resolve();
    };
    out.on('drain', done);
    out.on('close', done);
    out.on('error', done);
  });
}

/** Writes the current snapshot of a simulator (or a SourceData) to a file. */
export async function writeSnapshot(sim: SourceData | { source: SourceData }, path: string, format: ExportFormat): Promise<void> {
  const source = 'source' in sim ? sim.source : sim;
  const out = fs.createWriteStream(path);
  const finished = new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.once('close', resolve);
  });
  finished.catch(() => {}); // observed below; a write error also ends the loop
  await writeSnapshotTo(source, out, format);
  out.end();
  await finished;
}
