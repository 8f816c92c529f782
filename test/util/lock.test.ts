// Folder locks between real processes: a child process holds DIR's lock; this process is refused
// with the child's PID; once the child is killed (SIGKILL: no chance to clean up) the stale lock
// is taken over and the takeover is logged; the folders a lock made go again with it while empty.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LOCK_FILE, lockFolder } from '../../src/util/lock.ts';
import { tempDir } from '../helpers/tmp.ts';

const lockModule = fileURLToPath(new URL('../../src/util/lock.ts', import.meta.url));

async function waitFor(cond: () => boolean, what: string, ms = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a second writer is refused with the first one's PID; a dead writer's lock is taken over and logged", async () => {
  const dir = path.join(tempDir('red-lock-'), 'out');
  const script = path.join(path.dirname(dir), 'hold.ts');
  writeFileSync(
    script,
    `import { lockFolder } from ${JSON.stringify(lockModule)};\nlockFolder(${JSON.stringify(dir)}, 'train');\nconsole.log('locked');\nsetInterval(() => {}, 1000);\n`,
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  const exited = new Promise((r) => child.on('exit', r));
  try {
    await waitFor(() => stdout.includes('locked'), 'the child to take the lock');
    assert.throws(
      () => lockFolder(dir, 'eval'),
      (err: Error) =>
        err.message ===
        `${dir} is in use by PID ${child.pid} (red train); wait for it to finish, stop it, or use another folder`,
    );
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
  assert.ok(existsSync(path.join(dir, LOCK_FILE)), 'a killed process cannot remove its lock');
  const logged: string[] = [];
  const lock = lockFolder(dir, 'eval', (m) => logged.push(m));
  assert.deepEqual(logged, [
    `${dir}: taking over the lock of PID ${child.pid} (red train), which is no longer running`,
  ]);
  assert.equal(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  assert.throws(() => lockFolder(dir, 'eval'), /is in use by this process/);
  lock.release();
  assert.ok(!existsSync(path.join(dir, LOCK_FILE)));
  lockFolder(dir, 'eval').release();
});

test('a folder the lock created goes again on release while empty; a folder with anything in it stays', () => {
  const root = tempDir('red-lock-made-');
  const dir = path.join(root, 'a', 'b');
  lockFolder(dir, 'report').release();
  assert.deepEqual(readdirSync(root), [], 'the lock left the folders it made');
  const kept = lockFolder(dir, 'report');
  writeFileSync(path.join(dir, 'results.md'), '# kept\n');
  kept.release();
  assert.deepEqual(readdirSync(dir), ['results.md']);
  // Folders that were there before the lock are never removed, empty or not.
  rmSync(path.join(dir, 'results.md'));
  lockFolder(dir, 'report').release();
  assert.ok(existsSync(dir));
});
