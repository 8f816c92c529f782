// The package as a user gets it: `npm pack`, install the tarball into an empty folder (from the npm
// cache where it can: --prefer-offline), then `npx red --help` there, timed beside the checkout's
// start-up. Not part of `npm test` (it compiles, installs and builds the native engine: minutes).
// Prints one JSON line; exits 1 when a step fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'red-pack-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

/** Median wall seconds of `node ARGS` over n runs. */
function startup(args, cwd, n = 9) {
  const t = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, args, { cwd, stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}`);
    t.push((performance.now() - t0) / 1000);
  }
  return Number(t.sort((a, b) => a - b)[n >> 1].toFixed(3));
}

try {
  const tgz = run(npm, ['pack', '--silent', '--pack-destination', work], root).trim().split('\n').pop();
  const app = path.join(work, 'app');
  mkdirSync(app);
  run(npm, ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(work, tgz)], app);
  const help = run('npx', ['--no-install', 'red', '--help'], app);
  if (!help.includes('Usage: red')) throw new Error('npx red --help printed no usage');
  const bin = path.join(app, 'node_modules', '.bin', 'red');
  console.log(
    JSON.stringify({
      tarball: tgz,
      native_built: existsSync(path.join(app, 'node_modules', 'red', 'build', 'Release', 'red_native.node')),
      installed_help_s: startup([bin, '--help'], app),
      checkout_help_s: startup([path.join(root, 'bin', 'red.js'), '--help'], root),
      loadavg: loadavg().map((x) => Number(x.toFixed(2))),
    }),
  );
} catch (err) {
  console.error(`check-pack: ${err.message}`);
  process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
