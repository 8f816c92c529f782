// Temporary folders outlive neither Ctrl-C nor SIGTERM: a child process holding one is signalled
// and must exit with 128 + the signal's number and leave its TMPDIR empty. When the program has a
// signal listener of its own, that listener decides, and its process.exit still cleans up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir } from '../../src/util/exit.ts';
import { tempDir } from '../helpers/tmp.ts';

const exitModule = fileURLToPath(new URL('../../src/util/exit.ts', import.meta.url));

/** Starts `body` (after `makeTempDir` is imported) with TMPDIR = a fresh folder; signals it once that folder holds something. */
async function signalled(
  body: string,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; left: string[]; stdout: string }> {
  const root = tempDir('red-exit-');
  const tmp = path.join(root, 'tmp');
  const script = path.join(root, 'child.ts');
  writeFileSync(script, `import { makeTempDir } from ${JSON.stringify(exitModule)};\n${body}\n`);
  mkdirSync(tmp);
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, TMPDIR: tmp, TSX_DISABLE_CACHE: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const t0 = Date.now();
    while (!stdout.includes('ready')) {
      if (child.exitCode !== null || Date.now() - t0 > 60_000) assert.fail(`the child did not start: ${stdout}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill(signal);
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000).unref())]);
    if (code === 'hung') assert.fail(`the child did not exit on ${signal}`);
    return { code, left: readdirSync(tmp), stdout };
  } finally {
    child.kill('SIGKILL');
  }
}

const holdOne = `const dir = makeTempDir('red-held-');
console.log('ready', dir.path);
setInterval(() => {}, 1000);`;

test('SIGINT: the process exits 130 and its temporary folder is gone', async () => {
  const r = await signalled(holdOne, 'SIGINT');
  assert.equal(r.code, 130);
  assert.deepEqual(r.left, []);
});

test('SIGTERM: the process exits 143 and its temporary folder is gone', async () => {
  const r = await signalled(holdOne, 'SIGTERM');
  assert.equal(r.code, 143);
  assert.deepEqual(r.left, []);
});

test("a program's own SIGINT listener decides how it ends; its process.exit still removes the folder", async () => {
  const r = await signalled(
    `process.on('SIGINT', () => { console.log('own handler'); process.exit(7); });\n${holdOne}`,
    'SIGINT',
  );
  assert.equal(r.code, 7);
  assert.match(r.stdout, /own handler/);
  assert.deepEqual(r.left, []);
});

test('remove() removes the folder at once, and a second remove() is harmless', () => {
  const dir = makeTempDir('red-exit-remove-');
  assert.ok(existsSync(dir.path));
  dir.remove();
  assert.ok(!existsSync(dir.path));
  dir.remove();
});
