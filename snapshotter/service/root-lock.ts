/**
 * One daemon per root. Two daemons on one root would each take the other's
 * `new-*` directories for crash leftovers at start-up, unmount each other's
 * layers and interleave metadata changes with file work the other does not
 * know about.
 *
 * The lock is the POSIX record lock SQLite holds on `<root>/daemon.lock`, a
 * tiny database kept in exclusive locking mode for the daemon's lifetime.
 * The kernel drops such a lock when the process ends, however it ends —
 * kill -9 and the OOM killer included —, so there is no stale lock to detect
 * and no pid file to trust (a pid can be reused by an unrelated process).
 * Not metadata.db itself: `integrityctl status` reads that database beside
 * the running daemon, which exclusive locking mode would shut out.
 */
import Database from 'better-sqlite3';
import { readFileSync, statSync } from 'node:fs';
import { FailedPreconditionError } from '../core/errors.js';

export interface RootLock {
  /** Drops the lock (the daemon stopped); safe to call twice. */
  release(): void;
}

/** Takes the lock at `path` for the root `root`, or says which process holds it. */
export function lockRoot(path: string, root: string): RootLock {
  // No busy timeout: a held lock is another daemon, not a moment's contention.
  const db = new Database(path, { timeout: 0 });
  try {
    db.pragma('locking_mode = EXCLUSIVE');
    // What the file holds does not matter: no journal file beside it.
    db.pragma('journal_mode = MEMORY');
    // A write takes SQLite's exclusive lock; in exclusive locking mode it is kept until close.
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL)');
    db.transaction(() => {
      db.exec('DELETE FROM holder');
      db.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    }).exclusive();
  } catch (err) {
    db.close();
    if ((err as { code?: unknown }).code !== 'SQLITE_BUSY') throw err;
    const holder = lockHolder(path);
    throw new FailedPreconditionError(
      `another snapshotter${holder === undefined ? '' : ` (process ${holder})`} is using the root ${root}: it holds ${path}`,
      { hint: 'stop the other snapshotter (systemctl stop containerd-integrity-snapshotter), or give this one another root', cause: err },
    );
  }
  return {
    release: () => {
      if (db.open) db.close();
    },
  };
}

/** The process holding a POSIX lock on `path`, from /proc/locks; undefined if none is found. */
function lockHolder(path: string): number | undefined {
  try {
    const { dev, ino } = statSync(path);
    return holderOf(readFileSync('/proc/locks', 'utf8'), { major: Math.floor(dev / 256) & 0xfff, minor: (dev & 0xff) | ((dev >> 12) & 0xfff00), ino });
  } catch {
    return undefined;
  }
}

/**
 * /proc/locks lines (proc(5)): `<n>: POSIX ADVISORY WRITE <pid> <major>:<minor>:<inode> <start> <end>`,
 * device numbers in hex.
 */
export function holderOf(locks: string, file: { major: number; minor: number; ino: number }): number | undefined {
  for (const line of locks.split('\n')) {
    const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m && parseInt(m[2]!, 16) === file.major && parseInt(m[3]!, 16) === file.minor && Number(m[4]) === file.ino) return Number(m[1]);
  }
  return undefined;
}
