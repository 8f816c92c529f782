// Builds the native engine (native/, binding.gyp) with node-gyp at `npm install`.
// A failed build never fails the install: the project then runs on the TypeScript reference
// backend and says so once at run time (src/engine/index.ts).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

if (process.env.RED_SKIP_NATIVE === '1') {
  console.log('[red] RED_SKIP_NATIVE=1: not building the native engine.');
  process.exit(0);
}

// node-gyp: npm's own copy (npm exports its path), else one installed beside us, else PATH.
function nodeGypCommand() {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return [process.execPath, fromNpm];
  try {
    const require = createRequire(import.meta.url);
    return [process.execPath, require.resolve('node-gyp/bin/node-gyp.js')];
  } catch {
    // Run by hand (not under npm): npm's bundled copy beside this node (Debian, nvm, the
    // official tarball all keep npm in <prefix>/lib/node_modules/npm).
    const bundled = path.resolve(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    );
    return existsSync(bundled) ? [process.execPath, bundled] : ['node-gyp'];
  }
}

// Node's headers, offline where possible: the configured nodedir, or the headers that ship
// beside this node binary (Debian's /usr/include/node, nvm's <prefix>/include/node).
// Otherwise node-gyp falls back to its own default (a download of the headers).
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')];
  for (const dir of candidates) {
    if (dir && existsSync(path.join(dir, 'include', 'node', 'node_api.h'))) return dir;
  }
  return undefined;
}

const [cmd, ...pre] = nodeGypCommand();
const dir = nodeDir();
const args = [...pre, 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
const jobs = process.env.JOBS ?? '2';
const build = (extra) => spawnSync(cmd, [...args, ...extra], { stdio: 'inherit', env: { ...process.env, JOBS: jobs } });
let result = build([]);
if (result.status !== 0) {
  // Most often a compiler without OpenMP (clang without libomp): single-threaded native kernels
  // still beat the TypeScript reference by far.
  console.warn('[red] Native build failed; retrying without OpenMP (the engine will use one thread).');
  result = build(['--openmp=false']);
}
if (result.status !== 0) {
  console.warn('[red] The native engine could not be built; red will run on the (slow) TypeScript reference backend.');
  console.warn(
    '[red] Install a C++17 compiler (g++ or clang) and Python 3, then run `npm rebuild red` or `node scripts/build-native.mjs`.',
  );
}
process.exit(0);
