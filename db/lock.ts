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
