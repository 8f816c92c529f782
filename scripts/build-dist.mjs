// Compiles src/ to plain JS in dist/ for the npm package (`npm pack` runs it as prepack), so an
// installed `red` starts without the TypeScript loader. The .ts and .mjs sources are copied beside
// the JS: the CAS worker entry (src/reward/casWorker.mjs) loads its TypeScript through tsx, and the
// demo's cache keys hash the generator's sources. A checkout keeps running src/ through tsx.
import { spawnSync } from 'node:child_process';
import { cpSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = path.join(root, 'dist');
rmSync(dist, { recursive: true, force: true });
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) {
  rmSync(dist, { recursive: true, force: true });
  console.error('[red] build-dist: tsc failed; dist/ not written');
  process.exit(1);
}
cpSync(path.join(root, 'src'), dist, { recursive: true, filter: (src) => !src.endsWith('.js') });
console.log(`[red] build-dist: wrote ${path.relative(process.cwd(), dist) || dist}`);
