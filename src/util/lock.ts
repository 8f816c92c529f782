// One writer per output folder: a lock file DIR/.red.lock holding the writer's PID (and, on Linux,
// the process's start time, so a PID reused by an unrelated process after a crash is not taken for
// the writer). A second writer is refused while that process lives; the lock of a dead one is
// taken over and the takeover is logged. Simplified: the check-then-replace of a stale lock is not
// atomic against a third process doing the same in the same millisecond.
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fail } from './errors.ts';

export const LOCK_FILE = '.red.lock';

interface LockOwner {
  pid: number;
  /** Clock ticks since boot at which the process started (/proc/PID/stat field 22); null elsewhere. */
  start: string | null;
  command: string;
}

export interface FolderLock {
  readonly dir: string;
  readonly file: string;
  release(): void;
}

/** The start time of a process, or null when it cannot be read (no /proc, or no such process). */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function isAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // Same PID, different start time: the writer died and its PID went to another process.
  const start = processStart(owner.pid);
  return owner.start === null || start === null || start === owner.start;
}

function readOwner(file: string): LockOwner | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    return Number.isInteger(v.pid) ? { pid: v.pid!, start: v.start ?? null, command: v.command ?? '' } : null;
  } catch {
    return null; // gone, or torn by a crash while it was written
  }
}

const held = new Set<string>();
process.on('exit', () => {
  for (const f of held) rmSync(f, { force: true });
});

/**
 * Locks `dir` (created if missing) for this process, or fails with "DIR is in use by PID n".
 * `command` names what holds it (shown to a second writer); `log` hears about a stale takeover.
 */
export function lockFolder(
  dir: string,
  command: string,
  log: (message: string) => void = (m) => process.stderr.write(`${m}\n`),
): FolderLock {
  const file = path.join(dir, LOCK_FILE);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    fail(`cannot write to the output folder ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const me: LockOwner = { pid: process.pid, start: processStart(process.pid), command };
  // Written whole under a private name, then hard-linked into place: link() fails if the lock
  // exists, so exactly one of two racing writers gets it, and nobody reads a half-written lock.
  const mine = path.join(dir, `${LOCK_FILE}.${process.pid}`);
  writeFileSync(mine, JSON.stringify(me) + '\n');
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(mine, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= 3) throw err;
      }
      const owner = readOwner(file);
      if (owner && isAlive(owner)) {
        const by =
          owner.pid === process.pid
            ? 'this process'
            : `PID ${owner.pid}${owner.command ? ` (red ${owner.command})` : ''}`;
        fail(`${dir} is in use by ${by}; wait for it to finish, stop it, or use another folder`);
      }
      if (owner)
        log(
          `${dir}: taking over the lock of PID ${owner.pid}${owner.command ? ` (red ${owner.command})` : ''}, which is no longer running`,
        );
      else if (!existsSync(file)) continue;
      else log(`${dir}: replacing an unreadable lock file ${file}`);
      rmSync(file, { force: true });
    }
  } catch (err) {
    rmSync(mine, { force: true });
    if ((err as Error).name === 'RedError') throw err;
    fail(
      `cannot lock ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is the folder writable?`,
    );
  }
  rmSync(mine, { force: true });
  return heldLock(dir, file);
}

function heldLock(dir: string, file: string): FolderLock {
  held.add(file);
  return {
    dir,
    file,
    release: () => {
      if (!held.delete(file)) return;
      // Only our own lock: a folder deleted and re-locked meanwhile belongs to someone else.
      if (readOwner(file)?.pid === process.pid) unlinkSync(file);
    },
  };
}

/**
 * The lock file `file` (its folder created if missing), waiting while a live process (or another
 * task of this one) holds it: for work that a second writer should wait for rather than be refused,
 * such as two runs downloading the same blob. The lock of a dead process is taken over.
 */
export async function waitForFileLock(file: string, command: string, pollMs = 100): Promise<FolderLock> {
  mkdirSync(path.dirname(file), { recursive: true });
  const mine = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  writeFileSync(
    mine,
    JSON.stringify({ pid: process.pid, start: processStart(process.pid), command } satisfies LockOwner) + '\n',
  );
  try {
    for (;;) {
      try {
        linkSync(mine, file);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = readOwner(file);
      if (owner && isAlive(owner)) await new Promise((r) => setTimeout(r, pollMs));
      else if (existsSync(file)) rmSync(file, { force: true }); // its writer died
    }
  } finally {
    rmSync(mine, { force: true });
  }
  return heldLock(path.dirname(file), file);
}
