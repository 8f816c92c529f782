// The Python parts of serving, through /usr/bin/python3's unittest: red-vllm's launcher and weight
// routes against a stand-in vLLM engine (test/serve/python/test_red_vllm.py) and the trainer side
// of NCCL weight sync on CPU (test_nccl_sync.py). Skipped, saying so, where there is no python3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repo } from './helpers.ts';

const PYTHON = '/usr/bin/python3';

test(
  'python: test_red_vllm.py, test_nccl_sync.py',
  { skip: existsSync(PYTHON) ? false : `${PYTHON} is missing: the Python tests of red-vllm and nccl_sync did not run` },
  () => {
    const r = spawnSync(PYTHON, ['-m', 'unittest', '-v', 'test_red_vllm', 'test_nccl_sync'], {
      cwd: path.join(repo, 'test/serve/python'),
      env: { ...process.env, PYTHONPATH: path.join(repo, 'python'), PYTHONDONTWRITEBYTECODE: '1' },
      encoding: 'utf8',
      timeout: 240_000,
    });
    const out = `${r.stdout}${r.stderr}`;
    console.log(
      out
        .trim()
        .split('\n')
        .filter((l) => / \.\.\. |^Ran |^OK|skipped/.test(l))
        .join('\n'),
    );
    assert.equal(r.status, 0, out);
  },
);
