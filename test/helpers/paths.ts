// Where the tests find the shared material beside the repository: `../shared` holds the
// transformers fixtures and the benchmark files. The product never reads it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHARED = path.resolve(REPO_ROOT, '../shared');

/** A path under ../shared/fixtures (no argument: the folder itself). */
export const fixturePath = (...parts: string[]): string => path.join(SHARED, 'fixtures', ...parts);

/** A path under ../shared/data/benchmarks. */
export const benchmarkPath = (...parts: string[]): string => path.join(SHARED, 'data', 'benchmarks', ...parts);
