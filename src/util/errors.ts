// A user-facing error: the CLI prints its message alone (no stack), since it already names
// the file, row or key at fault and what was expected.
export class RedError extends Error {
  override name = 'RedError';
}

export function fail(message: string): never {
  throw new RedError(message);
}

/** What an operating-system error code means for the user, and the fix where there is one. */
const ERRNO: Record<string, { means: string; fix?: string }> = {
  ENOSPC: { means: 'the disk is full', fix: 'free some space and run the same command again' },
  EDQUOT: { means: 'the disk quota is exhausted', fix: 'free some space and run the same command again' },
  EACCES: { means: 'permission denied', fix: 'choose a folder you can write to, or change its permissions' },
  EPERM: { means: 'operation not permitted', fix: 'choose a folder you can write to, or change its permissions' },
  EROFS: { means: 'the file system is read-only', fix: 'choose a folder on a writable file system' },
  ENOTEMPTY: {
    means: 'a folder changed under us',
    fix: 'most likely another process writes the same folder; run one writer per folder',
  },
  EMFILE: { means: 'too many open files', fix: 'raise the limit (ulimit -n)' },
  ENFILE: { means: 'too many open files on this system', fix: 'close some programs and run again' },
  ENOENT: { means: 'no such file or folder' },
  ENOTDIR: { means: 'a part of the path is a file, not a folder' },
  EISDIR: { means: 'it is a folder, where a file was expected' },
  EEXIST: { means: 'it already exists' },
  ENAMETOOLONG: { means: 'the path is too long', fix: 'choose a shorter path' },
  ELOOP: { means: 'too many symbolic links (a link that points back to itself?)' },
  EIO: { means: 'an input/output error on the device', fix: 'check the disk' },
  EBUSY: { means: 'the file or device is busy' },
  ETXTBSY: { means: 'the file is in use by a running program' },
  EFBIG: { means: 'the file is too large for this file system' },
  ENOMEM: { means: 'out of memory', fix: 'close other programs or choose smaller settings' },
  EXDEV: { means: 'the source and the target are on different file systems' },
};

/** The system error code of `err` when it is one whose meaning we know. */
function knownCode(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && Object.hasOwn(ERRNO, code) ? code : null;
}

/** A system error's meaning and fix ("the file system is read-only; choose …"), or null for other errors. */
export function errnoHint(err: unknown): string | null {
  const code = knownCode(err);
  if (code === null) return null;
  const { means, fix } = ERRNO[code];
  return fix ? `${means}; ${fix}` : means;
}

/** What a system call did, in words, for "cannot <verb> PATH". */
const SYSCALL_VERBS: Record<string, string> = {
  mkdir: 'create the folder',
  open: 'open',
  read: 'read',
  write: 'write',
  rename: 'rename',
  unlink: 'remove',
  rmdir: 'remove the folder',
  rm: 'remove',
  scandir: 'list the folder',
  opendir: 'list the folder',
  copyfile: 'copy',
  link: 'link',
  symlink: 'link',
  stat: 'read',
  lstat: 'read',
  access: 'access',
  chmod: 'change the permissions of',
  utime: 'touch',
  fsync: 'write',
};

/**
 * "the file system is read-only (EROFS); choose …": a system error's meaning, code and fix (without
 * the fix when the caller names its own), or null.
 */
export function systemErrorReason(err: unknown, withFix = true): string | null {
  const code = knownCode(err);
  if (code === null) return null;
  const { means, fix } = ERRNO[code];
  return `${means} (${code})${fix && withFix ? `; ${fix}` : ''}`;
}

/**
 * A system error in one line: what could not be done to which path, what the code means and the
 * fix ("cannot create the folder /mnt/ro/x: the file system is read-only (EROFS); choose …").
 * `where` names the path when the error carries none (a write on an open file). Null when `err`
 * is no system error we know.
 */
export function systemErrorLine(err: unknown, where?: string): string | null {
  const reason = systemErrorReason(err);
  if (reason === null) return null;
  const e = err as NodeJS.ErrnoException;
  const target = e.path ?? where;
  const verb = e.syscall !== undefined ? (SYSCALL_VERBS[e.syscall] ?? e.syscall) : 'use';
  return target !== undefined ? `cannot ${verb} ${target}: ${reason}` : reason;
}

/**
 * Any error as one line: a RedError's message as is; a system error as what failed where, what
 * its code means and the fix; anything else (a defect of red's) as its message and where to get
 * the stack (RED_DEBUG=1).
 */
export function errorLine(err: unknown): string {
  if (err instanceof RedError) return err.message;
  const system = systemErrorLine(err);
  if (system !== null) return system;
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return message; // a system error: its message names it
  return `${message} (an unexpected error: RED_DEBUG=1 shows where it happened)`;
}

/** Writes `err` to stderr as the CLI shows it: `red: ` and one line; the stack instead under RED_DEBUG=1. */
export function printError(err: unknown): void {
  if (process.env.RED_DEBUG === '1' && err instanceof Error) console.error(err.stack);
  else console.error(`red: ${errorLine(err)}`);
}
