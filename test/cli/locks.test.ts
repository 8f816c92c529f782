// Every command that writes a folder holds it: a second `red pretrain` or `red demo` on a folder
// in use is refused with the first one's PID (the first is killed once that is seen); `red report`
// and `red data builtin` on a folder this test holds are refused with one line and write nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lockFolder } from '../../src/util/lock.ts';
import { tempDir } from '../helpers/tmp.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));

for (const [command, args] of [
  ['pretrain', ['--quick', '--steps', '100000', '--backend', 'reference']],
  ['demo', ['--tiny', '--no-cache', '--backend', 'reference']],
] as const) {
  test(`a second red ${command} on a folder in use is refused with the first one's PID`, async () => {
    const out = path.join(tempDir(`red-lock-${command}-`), 'out');
    const first = spawn(process.execPath, [BIN, command, '--out', out, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    first.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((r) => first.on('exit', r));
    try {
      const t0 = Date.now();
      while (!existsSync(path.join(out, '.red.lock'))) {
        if (first.exitCode !== null || Date.now() - t0 > 60_000)
          assert.fail(`the first ${command} did not take the lock: ${stderr}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      // The second writer is this process (the CLI's one-line rendering is tested with red train).
      assert.throws(
        () => lockFolder(out, command),
        (err: Error) =>
          err.message ===
          `${out} is in use by PID ${first.pid} (red ${command}); wait for it to finish, stop it, or use another folder`,
      );
    } finally {
      first.kill('SIGKILL');
      await exited;
    }
  });
}

// A run folder `red report` accepts (it reads its inputs before it takes the lock): one logged step.
const run = path.join(tempDir('red-lock-run-'), 'run');
mkdirSync(run);
writeFileSync(path.join(run, 'metrics.jsonl'), '{"step":1}\n');

for (const [command, args] of [
  ['report', ['report', run]],
  ['data builtin', ['data', 'builtin', '--train', '10', '--test', '5']],
] as const) {
  test(`red ${command} on a folder another process holds is refused with one line, and writes nothing`, () => {
    const out = path.join(tempDir('red-lock-held-'), 'out');
    const lock = lockFolder(out, 'train');
    try {
      const r = spawnSync(process.execPath, [BIN, ...args, '--out', out], { encoding: 'utf8' });
      assert.notEqual(r.status, 0);
      assert.equal(
        r.stderr.trim(),
        `red: ${out} is in use by PID ${process.pid} (red train); wait for it to finish, stop it, or use another folder`,
      );
      assert.deepEqual(readdirSync(out), ['.red.lock']);
    } finally {
      lock.release();
    }
  });
}
