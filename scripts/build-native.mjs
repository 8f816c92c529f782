// Builds the native engine (native/, binding.gyp) with node-gyp at `npm install`.
// A failed build never fails the install: the project then runs on the TypeScript reference
// backend and says so once at run time (src/engine/index.ts).
// The build is atomic: node-gyp runs in a scratch copy of the sources (its `rebuild` starts by
// deleting build/), and only the finished addon is renamed into build/Release, so an interrupted
// build (Ctrl-C, a killed `npx`) keeps the addon that was there. A stamp of the sources beside the
// addon skips the ~1 minute rebuild when nothing changed (`npm exec red` reinstalls the checkout
// and would otherwise rebuild every time); RED_REBUILD_NATIVE=1 forces one.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (process.env.RED_SKIP_NATIVE === '1') {
  console.log('[red] RED_SKIP_NATIVE=1: not building the native engine.');
  process.exit(0);
}

const root = fileURLToPath(new URL('..', import.meta.url));
const release = path.join(root, 'build', 'Release');
const addon = path.join(release, 'red_native.node');
const stampFile = path.join(release, 'red_native.stamp');

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

/** What the addon is built from: binding.gyp, native/*, this script, the platform and compiler settings. */
function sourceStamp() {
  const h = createHash('sha256');
  for (const file of [
    'binding.gyp',
    ...readdirSync(path.join(root, 'native'))
      .sort()
      .map((f) => `native/${f}`),
  ])
    h.update(`${file}\0`).update(readFileSync(path.join(root, file)));
  h.update(readFileSync(fileURLToPath(import.meta.url)));
  h.update(JSON.stringify([process.platform, process.arch, process.env.CXX ?? '', process.env.CXXFLAGS ?? '']));
  return h.digest('hex');
}

/** The folder holding node-addon-api, for binding.gyp's `require('node-addon-api')` run from the scratch copy. */
function nodeModulesOfAddonApi() {
  try {
    const pkg = createRequire(import.meta.url).resolve('node-addon-api/package.json');
    return path.dirname(path.dirname(pkg));
  } catch {
    return undefined;
  }
}

const stamp = sourceStamp();
const upToDate = existsSync(addon) && existsSync(stampFile) && readFileSync(stampFile, 'utf8').trim() === stamp;
if (upToDate && process.env.RED_REBUILD_NATIVE !== '1') {
  console.log('[red] the native engine is up to date (RED_REBUILD_NATIVE=1 rebuilds it).');
  process.exit(0);
}

// The scratch copy, removed however this process ends (a second Ctrl-C included).
const work = mkdtempSync(path.join(tmpdir(), 'red-native-build-'));
const cleanUp = () => rmSync(work, { recursive: true, force: true });
process.on('exit', cleanUp);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => process.exit(130));
copyFileSync(path.join(root, 'binding.gyp'), path.join(work, 'binding.gyp'));
cpSync(path.join(root, 'native'), path.join(work, 'native'), { recursive: true });

const [cmd, ...pre] = nodeGypCommand();
const dir = nodeDir();
const args = [...pre, 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
const jobs = process.env.JOBS ?? '2';
const modules = nodeModulesOfAddonApi();
const env = {
  ...process.env,
  JOBS: jobs,
  ...(modules ? { NODE_PATH: [modules, process.env.NODE_PATH].filter(Boolean).join(path.delimiter) } : {}),
};
const build = (extra) => spawnSync(cmd, [...args, ...extra], { cwd: work, stdio: 'inherit', env });
// Interrupted (Ctrl-C reaches node-gyp and this process alike): the addon in build/Release is untouched.
const interrupted = (r) => r.signal !== null || r.status === 130;
let result = build([]);
if (interrupted(result)) process.exit(130);
if (result.status !== 0) {
  // Most often a compiler without OpenMP (clang without libomp): single-threaded native kernels
  // still beat the TypeScript reference by far.
  console.warn('[red] Native build failed; retrying without OpenMP (the engine will use one thread).');
  result = build(['--openmp=false']);
  if (interrupted(result)) process.exit(130);
}
const built = path.join(work, 'build', 'Release', 'red_native.node');
if (result.status === 0 && existsSync(built)) {
  // Copied beside the target, then renamed over it: a reader sees the old addon or the new one.
  mkdirSync(release, { recursive: true });
  const tmp = path.join(release, `.red_native.node.tmp-${process.pid}`);
  copyFileSync(built, tmp);
  renameSync(tmp, addon);
  writeFileSync(stampFile, `${stamp}\n`);
} else if (existsSync(addon)) {
  console.warn('[red] The native engine could not be rebuilt; the one built earlier stays in build/Release.');
} else {
  console.warn('[red] The native engine could not be built; red will run on the (slow) TypeScript reference backend.');
  console.warn(
    '[red] Install a C++17 compiler (g++ or clang) and Python 3, then run `npm rebuild red` or `node scripts/build-native.mjs`.',
  );
}
process.exit(0);
