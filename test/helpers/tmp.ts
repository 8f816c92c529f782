// The tests' scratch folders: tempDir makes one under os.tmpdir() and removes it (with all the test
// wrote there, child processes included) when the test file's process exits, passing or failing.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const made: string[] = [];
process.on('exit', () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true }); // exit handlers must be synchronous
});

/** A fresh, empty folder `<tmpdir>/<prefix>XXXXXX`, removed when the process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
