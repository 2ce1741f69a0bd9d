import fs from 'node:fs';
import path from 'node:path';
import { StartupError } from '../core/errors.ts';

export interface DataDirLock {
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * PGlite does not lock its directory, and two processes on one directory silently diverge (FIELD-NOTES.md).
 * This pid file does: a second process is refused with a message saying who holds it; a stale file left by a
 * crashed process is taken over.
 */
export function acquireDataDirLock(dataDir: string): DataDirLock {
  const file = path.join(dataDir, 'hub.lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, `${process.pid}\n`);
      fs.closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        try {
          if (fs.readFileSync(file, 'utf8').trim() === String(process.pid)) fs.unlinkSync(file);
        } catch {
          // already gone
        }
      };
      process.once('exit', release);
      return { release };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(fs.readFileSync(file, 'utf8').trim(), 10);
      if (Number.isInteger(holder) && holder > 0 && holder !== process.pid && alive(holder)) {
        throw new StartupError(
          `HUB_DATA_DIR: the embedded database in ${dataDir} is in use by process ${holder} (a running hub); ` +
            'stop it first, or set DATABASE_URL to share a PostgreSQL database between processes',
        );
      }
      if (holder === process.pid) {
        throw new StartupError(`HUB_DATA_DIR: the embedded database in ${dataDir} is already open in this process`);
      }
      fs.rmSync(file, { force: true }); // stale: its process is gone
    }
  }
  throw new StartupError(`HUB_DATA_DIR: could not lock ${dataDir}`);
}

/** Owner only: the data directory holds the catalogs and WAL (公民身份号码 in clear), the master key and client keys. */
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

/**
 * Keeps the embedded data directory its owner's alone, whatever the umask the hub was started with. PGlite creates
 * files with the process umask while it runs (WAL segments, relations: FIELD-NOTES.md), so the umask is narrowed to
 * owner-only first; a fresh database it unpacks with modes of its own (0666), and a directory made before this
 * under a looser umask has them too, so the modes are put right as well (openPglite calls this before and after
 * PGlite opens). Symbolic links are not followed. Below the data directory only `pgdata` is walked: the rest is the
 * hub's own files (master key, client files, lock), and an operator who points HUB_DATA_DIR at a folder holding
 * other things keeps their subfolders as they were.
 */
export function secureDataDir(dataDir: string): void {
  restrictUmask();
  fs.mkdirSync(dataDir, { recursive: true, mode: DIR_MODE });
  restrict(dataDir, fs.statSync(dataDir)); // the folder itself (a link to it is the operator's choice)
  for (const entry of fs.readdirSync(dataDir, { withFileTypes: true })) {
    const p = path.join(dataDir, entry.name);
    if (entry.name === 'pgdata' && entry.isDirectory()) restrictTree(p);
    else if (entry.isFile()) restrict(p, fs.lstatSync(p));
  }
}

/** The process umask at least 077 (and as narrow as it was otherwise). Worker threads may not set it: they keep theirs. */
function restrictUmask(): void {
  try {
    const previous = process.umask(0o077);
    process.umask(previous | 0o077);
  } catch {
    // a worker thread: the folders' modes below still keep everyone else out
  }
}

function restrictTree(dir: string): void {
  restrict(dir, fs.lstatSync(dir));
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) restrictTree(p);
    else if (entry.isFile()) restrict(p, fs.lstatSync(p));
  }
}

function restrict(p: string, st: fs.Stats): void {
  const want = st.isDirectory() ? DIR_MODE : FILE_MODE;
  if ((st.mode & 0o7777) === want) return;
  try {
    fs.chmodSync(p, want);
  } catch (error) {
    throw new StartupError(`HUB_DATA_DIR: cannot make ${p} ${want.toString(8)} (owner only): ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}
