// One writer per output folder: a lock file DIR/.red.lock holding the writer's PID (and, on Linux,
// the process's start time, so a PID reused by an unrelated process after a crash is not taken for
// the writer). A second writer is refused while that process lives; the lock of a dead one is
// taken over and the takeover is logged. A folder the lock created is removed again on release or
// exit while it is empty: a command that fails before it writes anything leaves nothing behind.
// Simplified: the check-then-replace of a stale lock is not atomic against a third process doing
// the same in the same millisecond.
import { existsSync, linkSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fail, systemErrorReason } from './errors.ts';
import { atExit } from './exit.ts';
import { makeDir, makeDirOrFail } from './fs.ts';

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

/** The folders that `mkdirSync(dir, { recursive: true })` made, deepest first; `first` is its return value. */
function madeFolders(dir: string, first: string | undefined): string[] {
  if (first === undefined) return [];
  const top = path.resolve(first);
  const made = [path.resolve(dir)];
  while (made.at(-1) !== top && path.dirname(made.at(-1)!) !== made.at(-1)) made.push(path.dirname(made.at(-1)!));
  return made;
}

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
  const made = madeFolders(dir, makeDirOrFail(dir));
  const me: LockOwner = { pid: process.pid, start: processStart(process.pid), command };
  // Written whole under a private name, then hard-linked into place: link() fails if the lock
  // exists, so exactly one of two racing writers gets it, and nobody reads a half-written lock.
  const mine = path.join(dir, `${LOCK_FILE}.${process.pid}`);
  try {
    writeFileSync(mine, JSON.stringify(me) + '\n');
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
    removeEmpty(made);
    if ((err as Error).name === 'RedError') throw err;
    const reason = systemErrorReason(err);
    if (reason === null) throw err;
    fail(`cannot write to the output folder ${dir}: ${reason}`);
  }
  rmSync(mine, { force: true });
  return heldLock(dir, file, made);
}

/** Removes the folders in `made` (deepest first) while they are empty; never anything in them. */
function removeEmpty(made: readonly string[]): void {
  for (const dir of made) {
    try {
      rmdirSync(dir);
    } catch {
      return; // not empty (or gone): what is in it, and the folders above it, stay
    }
  }
}

/** `made`: the folders that taking the lock created, removed on release or exit while empty. */
function heldLock(dir: string, file: string, made: readonly string[] = []): FolderLock {
  // Only our own lock: a folder deleted and re-locked meanwhile belongs to someone else.
  const release = atExit(() => {
    if (readOwner(file)?.pid === process.pid) rmSync(file, { force: true });
    removeEmpty(made);
  });
  return { dir, file, release: () => release() };
}

/**
 * The lock file `file` (its folder created if missing), waiting while a live process (or another
 * task of this one) holds it: for work that a second writer should wait for rather than be refused,
 * such as two runs downloading the same blob. The lock of a dead process is taken over.
 */
export async function waitForFileLock(file: string, command: string, pollMs = 100): Promise<FolderLock> {
  makeDir(path.dirname(file));
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
