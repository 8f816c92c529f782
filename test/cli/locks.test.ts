// Every command that writes a folder holds it: a second `red pretrain` or `red demo` on a folder
// in use is refused with the first one's PID (the first is killed once that is seen).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lockFolder } from '../../src/util/lock.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));

for (const [command, args] of [
  ['pretrain', ['--quick', '--steps', '100000', '--backend', 'reference']],
  ['demo', ['--tiny', '--no-cache', '--backend', 'reference']],
] as const) {
  test(`a second red ${command} on a folder in use is refused with the first one's PID`, async () => {
    const out = path.join(mkdtempSync(path.join(tmpdir(), `red-lock-${command}-`)), 'out');
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
