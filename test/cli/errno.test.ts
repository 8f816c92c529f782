// The error a system call really gave, named for the user: a new --out on a read-only file system
// is EROFS (node's recursive mkdir says ENOENT there), one under a folder without write permission
// is EACCES; each is one line naming the folder and the fix, never "an unexpected error".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const q = (a: string) => JSON.stringify(a);

test('a new --out on a read-only file system: one line naming EROFS', (t) => {
  const mnt = tempDir('red-rofs-');
  // A read-only tmpfs in a private mount namespace (user namespaces, no root needed).
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o ro,size=64k tmpfs ${q(mnt)}`]);
  if (probe.status !== 0) {
    t.skip(`cannot mount a read-only tmpfs here (${(probe.stderr?.toString() || probe.error?.message || '').trim()})`);
    return;
  }
  const out = path.join(mnt, 'runs', 'data');
  const red = [process.execPath, BIN, 'data', 'builtin', '--out', out].map(q).join(' ');
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o ro,size=64k tmpfs ${q(mnt)} && exec ${red}`], {
    encoding: 'utf8',
    env: { ...process.env, RED_DEBUG: '' },
  });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(
    r.stderr,
    `red: cannot create the output folder ${out}: the file system is read-only (EROFS); choose a folder on a writable file system\n`,
  );
});

test('a new --out under a folder without write permission: one line naming EACCES', (t) => {
  const parent = path.join(tempDir('red-eacces-'), 'locked');
  mkdirSync(parent);
  chmodSync(parent, 0o555);
  const out = path.join(parent, 'data');
  // root may write anywhere: then the command runs as nobody.
  const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  const r = spawnSync(process.execPath, [BIN, 'data', 'builtin', '--out', out], {
    encoding: 'utf8',
    env: { ...process.env, RED_DEBUG: '' },
    ...asUser,
  });
  if (r.error || (r.status !== 1 && process.getuid?.() === 0)) {
    t.skip(`cannot run as another user here (${r.error?.message ?? r.stderr.trim()})`);
    return;
  }
  assert.equal(r.status, 1, r.stderr);
  assert.equal(
    r.stderr,
    `red: cannot create the output folder ${out}: permission denied (EACCES); choose a folder you can write to, or change its permissions\n`,
  );
});
