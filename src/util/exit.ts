// What a process must undo however it ends, short of SIGKILL: lock files, temporary folders,
// child processes. `atExit` runs on a normal end and on process.exit() (the CLI's one-line errors,
// the Ctrl-C handlers of train, eval and demo). A temporary folder also outlives SIGINT/SIGTERM by
// default (Node exits without running exit handlers), so `makeTempDir` turns them into an exit.
import { mkdtempSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';

const cleanups = new Set<() => void>();
process.on('exit', () => {
  for (const cleanup of [...cleanups].reverse()) {
    try {
      cleanup(); // exit handlers must be synchronous
    } catch {
      /* the process is ending: one failed cleanup must not stop the others */
    }
  }
});

/**
 * Runs `cleanup` (synchronous) when the process exits, last registered first. The returned function
 * runs it now instead, once; pass `{ run: false }` to drop it without running it.
 */
export function atExit(cleanup: () => void): (opts?: { run: boolean }) => void {
  let done = false;
  const settle = ({ run } = { run: true }) => {
    if (done) return;
    done = true;
    cleanups.delete(settle);
    if (run) cleanup();
  };
  cleanups.add(settle);
  return settle;
}

/**
 * SIGINT/SIGTERM become process.exit(128 + n), which runs the atExit cleanups. Another listener
 * (train's or eval's Ctrl-C handler, serve's shutdown) owns what the signal means: then this one
 * does nothing, and that listener's own exit (or finally blocks) cleans up. Installed once, on the
 * first temporary folder, and kept: a signal that arrives while synchronous code removes the last
 * folder is only delivered after it, and must still find a listener to end the process.
 */
let signalsHandled = false;
function exitOnSignals(): void {
  if (signalsHandled) return;
  signalsHandled = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) > 1) return;
      process.exit(128 + constants.signals[signal]);
    });
  }
}

export interface TempDir {
  readonly path: string;
  /** Removes the folder now (it is removed at exit otherwise). */
  remove(): void;
}

/** A fresh folder `<os.tmpdir()>/<prefix>XXXXXX`, removed by remove(), at exit, or on SIGINT/SIGTERM. */
export function makeTempDir(prefix: string): TempDir {
  // The handlers first: a signal between the folder's creation and them would kill the process
  // the default way and leave the folder (seen on a loaded machine).
  exitOnSignals();
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const remove = atExit(() => rmSync(dir, { recursive: true, force: true }));
  return { path: dir, remove: () => remove() };
}
