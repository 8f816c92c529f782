// The tests' scratch folders: the product's own makeTempDir (src/util/exit.ts), which removes the
// folder (with all the test and its child processes wrote there) when the test file's process ends.
import { makeTempDir } from '../../src/util/exit.ts';

/** A fresh, empty folder `<tmpdir>/<prefix>XXXXXX`, removed when the process exits. */
export function tempDir(prefix: string): string {
  return makeTempDir(prefix).path;
}
