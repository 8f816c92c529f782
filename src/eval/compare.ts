// `red eval --compare DIR…`: reads each folder's results.json and lays the models side by side
// (Table 2's layout), labelled by folder name; with --out the table is also written to compare.md.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { checkOutFolder, markFolder } from '../util/ownership.ts';
import { compareMarkdown, type EvalResults } from './results.ts';

function readResults(dir: string): EvalResults {
  const file = path.join(dir, 'results.json');
  if (!existsSync(file)) fail(`${file} not found: is ${dir} a folder written by \`red eval\` (and finished)?`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`${file}: invalid JSON (${(err as Error).message})`);
  }
  const r = value as Partial<EvalResults> | null;
  if (!r || !Array.isArray(r.benchmarks) || typeof r.overall !== 'object')
    fail(`${file}: not an evaluation result (expected benchmarks and overall)`);
  return r as EvalResults;
}

/** The comparison table of the evaluated folders `dirs` (written to OUT/compare.md when `out` is given). */
export async function compareFolders(dirs: readonly string[], out?: string): Promise<string> {
  if (dirs.length === 0) fail('--compare needs at least one folder');
  const names = dirs.map((d) => path.basename(path.resolve(d)));
  // Folder names label the rows; when two coincide, the paths as given do.
  const labels = names.map((n, i) => (names.indexOf(n) !== names.lastIndexOf(n) ? dirs[i] : n));
  const md = compareMarkdown(dirs.map((d, i) => ({ label: labels[i], results: readResults(d) })));
  if (out) {
    // Only a new or empty folder, or an earlier comparison: never a user's folder or an evaluation.
    checkOutFolder(out, { command: 'red eval --compare', kind: 'comparison' });
    mkdirSync(out, { recursive: true });
    markFolder(out, 'comparison', 'red eval --compare');
    writeFileAtomic(path.join(out, 'compare.md'), md);
  }
  return md;
}
