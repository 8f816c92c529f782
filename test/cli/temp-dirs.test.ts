// Ctrl-C on a command that works in a temporary folder (red bench eval, bench serve, pretrain's
// staging) removes that folder: `red bench eval` is interrupted mid-run with TMPDIR pointing at a
// fresh folder, and must exit 130 leaving that folder empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));

test('red bench eval: Ctrl-C mid-run exits 130 and leaves nothing in TMPDIR', async () => {
  const tmp = path.join(tempDir('red-sigint-'), 'tmp');
  mkdirSync(tmp);
  // The whole held-out split on the reference backend: far longer than it takes to see the folder.
  const child = spawn(process.execPath, [BIN, 'bench', 'eval', '--backend', 'reference'], {
    // tsx would otherwise keep its transform cache in TMPDIR.
    env: { ...process.env, TMPDIR: tmp, TSX_DISABLE_CACHE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on('exit', (code, signal) => r({ code, signal })),
  );
  try {
    const t0 = Date.now();
    while (!readdirSync(tmp).some((f) => f.startsWith('red-bench-eval-'))) {
      if (child.exitCode !== null || Date.now() - t0 > 60_000)
        assert.fail(`red bench eval made no temporary folder: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGINT');
    const end = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())]);
    assert.ok(end !== null, 'red bench eval did not exit on SIGINT');
    assert.deepEqual(readdirSync(tmp), [], 'left in TMPDIR');
    assert.deepEqual(end, { code: 130, signal: null }, stderr);
  } finally {
    child.kill('SIGKILL');
  }
});
