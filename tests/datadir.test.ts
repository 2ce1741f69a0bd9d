import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../db/index.ts';
import { migrateDatabase } from '../db/migrate.ts';

/** Every folder and file under a directory (itself included), with its permission bits; symbolic links left out. */
function modes(root: string): { path: string; dir: boolean; mode: number }[] {
  const out: { path: string; dir: boolean; mode: number }[] = [];
  const walk = (p: string) => {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink()) return;
    out.push({ path: path.relative(root, p) || '.', dir: st.isDirectory(), mode: st.mode & 0o777 });
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
  };
  walk(root);
  return out;
}

/** The entries whose modes let anyone but the owner in, or are not 0700 / 0600. */
const wrong = (root: string) => modes(root).filter((e) => e.mode !== (e.dir ? 0o700 : 0o600)).map((e) => `${e.path} ${e.mode.toString(8)}`);

describe('the embedded data directory (PGlite) is the owner\'s alone, whatever the umask', () => {
  let umask: number;
  let dir: string;
  beforeAll(() => {
    umask = process.umask(0o000);
  });
  afterEach(() => {
    process.umask(0o000); // each case starts from the most permissive mask again
  });
  afterAll(() => {
    process.umask(umask);
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('creates the directory, the database and the files written while it runs as 0700 folders and 0600 files', async () => {
    dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hub-datadir-')), 'hub-data');
    const database = await openDatabase({ dataDir: dir, appRole: true });
    try {
      await migrateDatabase(database); // writes catalogs, relations and WAL after the open
    } finally {
      await database.close();
    }
    expect(modes(dir).length).toBeGreaterThan(100);
    expect(modes(dir).some((e) => e.path.startsWith(`pgdata${path.sep}pg_wal`))).toBe(true);
    expect(wrong(dir)).toEqual([]);
  }, 120_000);

  it('restricts an installation made before, readable by all, when it is opened', async () => {
    // what an earlier hub left with a permissive umask: 0777 folders, 0666 files (the master key too)
    fs.writeFileSync(path.join(dir, 'master.key'), 'x\n', { mode: 0o666 });
    for (const e of modes(dir)) fs.chmodSync(path.join(dir, e.path), e.dir ? 0o777 : 0o666);
    expect(wrong(dir).length).toBeGreaterThan(100);
    const database = await openDatabase({ dataDir: dir, appRole: true });
    try {
      expect(wrong(dir)).toEqual([]);
      await migrateDatabase(database);
    } finally {
      await database.close();
    }
    expect(wrong(dir)).toEqual([]);
  }, 120_000);

  it('leaves what lies outside the data directory alone, and does not follow a link out of it', async () => {
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-outside-'));
    const target = path.join(outside, 'shared.txt');
    fs.writeFileSync(target, 'not the hub\'s\n', { mode: 0o644 });
    fs.chmodSync(target, 0o644);
    fs.symlinkSync(target, path.join(dir, 'link-out'));
    try {
      const database = await openDatabase({ dataDir: dir, appRole: true });
      await database.close();
      expect(fs.statSync(target).mode & 0o777).toBe(0o644);
      expect(wrong(dir)).toEqual([]);
    } finally {
      fs.rmSync(path.join(dir, 'link-out'), { force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    }
  }, 120_000);
});
