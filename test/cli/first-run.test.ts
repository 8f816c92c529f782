// A newcomer's first command on a fresh checkout: the built-in example names data and a base model
// that do not exist yet, and `red train` says in one line which commands make them, never
// proposing to write into a Hub id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
// The config's paths are relative to the config file, so from another folder they are shown absolute.
const data = path.join(repo, 'runs/builtin/data');
const base = path.join(repo, 'runs/builtin/base');

/** `red train --config examples/builtin/red.yaml … --out runs/builtin/red` from an empty folder: its one error line. */
function firstTrain(extra: string[]): string {
  const r = spawnSync(
    process.execPath,
    [
      path.join(repo, 'bin/red.js'),
      'train',
      '--config',
      path.join(repo, 'examples/builtin/red.yaml'),
      ...extra,
      '--out',
      'runs/builtin/red',
    ],
    { cwd: tempDir('red-first-'), encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1' } },
  );
  assert.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  return lines[0];
}

test('red train --config examples/builtin/red.yaml before the data and base exist: one line with the commands to run first', () => {
  const line = firstTrain([]);
  assert.ok(
    line.endsWith(
      `inputs do not exist yet; make them first: red data builtin --out ${data} && red pretrain --out ${base}`,
    ),
    line,
  );
});

test('with a Hub id in model.path the first-run hint never proposes writing into it', () => {
  const line = firstTrain(['--set', 'model.path=acme/tiny']);
  assert.ok(!line.includes('--out acme/tiny'), line);
  assert.ok(line.endsWith(`make them first: red data builtin --out ${data}`), line);
});
