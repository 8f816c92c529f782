// scripts/build-native.mjs as `npm install` (or `npm exec red` in a checkout) runs it, in a copy of
// the package with a stand-in for node-gyp that does what `node-gyp rebuild` does to the folder it
// runs in (delete build/, compile for a while, write build/Release/red_native.node): Ctrl-C in the
// middle keeps the addon that was there; a finished build replaces it; an unchanged checkout is
// not rebuilt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

const SCRIPT = fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url));

const STUB = `const fs = require('node:fs');
fs.appendFileSync(process.env.STUB_LOG, 'rebuild in ' + process.cwd() + '\\n');
fs.rmSync('build', { recursive: true, force: true });
if (process.env.STUB_SLEEP) {
  fs.writeFileSync(process.env.STUB_STARTED, '');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.env.STUB_SLEEP));
}
fs.mkdirSync('build/Release', { recursive: true });
fs.writeFileSync('build/Release/red_native.node', 'new addon');
`;

function packageCopy(): { root: string; addon: string; env: NodeJS.ProcessEnv; runs: () => number } {
  const root = tempDir('red-native-');
  mkdirSync(path.join(root, 'scripts'));
  copyFileSync(SCRIPT, path.join(root, 'scripts', 'build-native.mjs'));
  writeFileSync(path.join(root, 'binding.gyp'), '{ "targets": [] }\n');
  mkdirSync(path.join(root, 'native'));
  writeFileSync(path.join(root, 'native', 'addon.cc'), '// the engine\n');
  const addon = path.join(root, 'build', 'Release', 'red_native.node');
  mkdirSync(path.dirname(addon), { recursive: true });
  writeFileSync(addon, 'old addon');
  const stub = path.join(root, 'fake-node-gyp.cjs');
  writeFileSync(stub, STUB);
  const log = path.join(root, 'gyp.log');
  writeFileSync(log, '');
  const env = { ...process.env, npm_config_node_gyp: stub, STUB_LOG: log, RED_SKIP_NATIVE: '', RED_REBUILD_NATIVE: '' };
  const runs = () => readFileSync(log, 'utf8').split('\n').filter(Boolean).length;
  return { root, addon, env, runs };
}

const scratchFolders = () => readdirSync(tmpdir()).filter((n) => n.startsWith('red-native-build-'));

test('Ctrl-C during the native build keeps the addon that was there, and no scratch folder', async () => {
  const p = packageCopy();
  const started = path.join(p.root, 'started');
  const before = new Set(scratchFolders());
  // Its own process group, which a terminal's Ctrl-C signals whole (this script and node-gyp alike).
  const child = spawn(process.execPath, [path.join(p.root, 'scripts', 'build-native.mjs')], {
    cwd: p.root,
    env: { ...p.env, STUB_SLEEP: '30000', STUB_STARTED: started },
    detached: true,
    stdio: 'ignore',
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const t0 = Date.now();
  while (!existsSync(started)) {
    if (Date.now() - t0 > 30_000) assert.fail('the stand-in node-gyp never started');
    await new Promise((r) => setTimeout(r, 20));
  }
  process.kill(-child.pid!, 'SIGINT');
  const code = await exited;
  assert.equal(readFileSync(p.addon, 'utf8'), 'old addon', 'the interrupted build removed or replaced the addon');
  assert.equal(code, 130);
  assert.ok(!existsSync(path.join(path.dirname(p.addon), 'red_native.stamp')));
  assert.deepEqual(
    scratchFolders().filter((n) => !before.has(n)),
    [],
  );
});

test('a finished build replaces the addon; an unchanged checkout is not rebuilt; a changed source is', () => {
  const p = packageCopy();
  const run = () =>
    spawnSync(process.execPath, [path.join(p.root, 'scripts', 'build-native.mjs')], {
      cwd: p.root,
      env: p.env,
      encoding: 'utf8',
    });
  const first = run();
  assert.equal(first.status, 0, first.stderr);
  assert.equal(readFileSync(p.addon, 'utf8'), 'new addon');
  assert.equal(p.runs(), 1);
  assert.ok(!readFileSync(path.join(p.root, 'gyp.log'), 'utf8').includes(`rebuild in ${p.root}\n`), 'built in place');
  const again = run();
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /up to date/);
  assert.equal(p.runs(), 1, 'rebuilt an unchanged checkout');
  writeFileSync(path.join(p.root, 'native', 'addon.cc'), '// the engine, changed\n');
  assert.equal(run().status, 0);
  assert.equal(p.runs(), 2, 'a changed source was not rebuilt');
});
