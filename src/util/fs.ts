// Files are written to a temporary name beside the target and renamed, so a reader never
// sees a half-written file and a crash leaves the previous version intact.
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { errnoHint, fail } from './errors.ts';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/**
 * Runs `write` (which writes `file`); an operating-system error becomes one line naming the file,
 * what happened and the fix (ENOSPC: free space and rerun), followed by `then` when given
 * (e.g. what was kept and how to resume).
 */
export function writeOrFail<T>(file: string, write: () => T, then = ''): T {
  try {
    return write();
  } catch (err) {
    const hint = errnoHint(err);
    if (hint === null) throw err;
    return fail(`cannot write ${file} (${(err as NodeJS.ErrnoException).code}): ${hint}${then ? `; ${then}` : ''}`);
  }
}
