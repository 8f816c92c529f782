// A user-facing error: the CLI prints its message alone (no stack), since it already names
// the file, row or key at fault and what was expected.
export class RedError extends Error {
  override name = 'RedError';
}

export function fail(message: string): never {
  throw new RedError(message);
}

/** What an operating-system error code means for the user, and the fix where there is one. */
const ERRNO_HINTS: Record<string, string> = {
  ENOSPC: 'the disk is full; free some space and run the same command again',
  EDQUOT: 'the disk quota is exhausted; free some space and run the same command again',
  EACCES: 'permission denied; choose a folder you can write to',
  EPERM: 'operation not permitted; choose a folder you can write to',
  EROFS: 'the file system is read-only; choose another folder',
  ENOTEMPTY:
    'a folder changed under us, most likely another process writing the same folder; run one writer per folder',
  EMFILE: 'too many open files; raise the limit (ulimit -n)',
};

/** A system error's hint, or null for other errors. */
export function errnoHint(err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code !== undefined && Object.hasOwn(ERRNO_HINTS, code) ? ERRNO_HINTS[code] : null;
}

/**
 * Any error as one line: a RedError's message as is; a system error as its message plus what to
 * do; anything else as its message and where to get the stack (RED_DEBUG=1).
 */
export function errorLine(err: unknown): string {
  if (err instanceof RedError) return err.message;
  const message = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  const hint = errnoHint(err);
  if (hint) return `${message} (${hint})`;
  return `${message} (an unexpected error: RED_DEBUG=1 shows where it happened)`;
}
