// Files are written to a temporary name beside the target and renamed, so a reader never
// sees a half-written file and a crash leaves the previous version intact.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { errnoHint, fail, systemErrorReason } from './errors.ts';

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

/**
 * `mkdir -p DIR` that reports the error that stopped it: node's recursive mkdir answers ENOENT when
 * a missing parent cannot be made on a read-only file system, so on ENOENT the missing folders are
 * made one level at a time and the real code (EROFS, EACCES) surfaces. Returns the first folder it
 * made, as mkdirSync does (undefined when DIR existed).
 */
export function makeDir(dir: string): string | undefined {
  try {
    return mkdirSync(dir, { recursive: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const missing: string[] = [];
  for (let d = path.resolve(dir); !existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) missing.push(d);
  missing.reverse();
  for (const d of missing) mkdirSync(d);
  return missing[0];
}

/** makeDir, failing with one line that names the folder, what the system said and the fix. */
export function makeDirOrFail(dir: string, what = 'the output folder'): string | undefined {
  try {
    return makeDir(dir);
  } catch (err) {
    const reason = systemErrorReason(err);
    if (reason === null) throw err;
    return fail(`cannot create ${what} ${dir}: ${reason}`);
  }
}
