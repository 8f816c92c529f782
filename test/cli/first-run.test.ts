// A newcomer's first command on a fresh checkout: the built-in example names data and a base model
// that do not exist yet, and `red train` says in one line which commands make them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));

test('red train --config examples/builtin/red.yaml before the data and base exist: one line with the commands to run first', () => {
  const cwd = tempDir('red-first-');
  const r = spawnSync(
    process.execPath,
    [
      path.join(repo, 'bin/red.js'),
      'train',
      '--config',
      path.join(repo, 'examples/builtin/red.yaml'),
      '--out',
      'runs/builtin/red',
    ],
    { cwd, encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } },
  );
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  // The config's paths are relative to the config file, so from another folder they are shown absolute.
  const data = path.join(repo, 'runs/builtin/data');
  const base = path.join(repo, 'runs/builtin/base');
  assert.ok(
    lines[0].endsWith(
      `inputs do not exist yet; make them first: red data builtin --out ${data} && red pretrain --out ${base}`,
    ),
    lines[0],
  );
});

test('with a Hub id in model.path the first-run hint never proposes writing into it', () => {
  const cwd = tempDir('red-first-');
  const r = spawnSync(
    process.execPath,
    [
      path.join(repo, 'bin/red.js'),
      'train',
      '--config',
      path.join(repo, 'examples/builtin/red.yaml'),
      '--set',
      'model.path=acme/tiny',
      '--out',
      'runs/builtin/red',
    ],
    { cwd, encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } },
  );
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.ok(!lines[0].includes('--out acme/tiny'), lines[0]);
  assert.ok(
    lines[0].endsWith(`make them first: red data builtin --out ${path.join(repo, 'runs/builtin/data')}`),
    lines[0],
  );
});
