// The PyTorch engine's failures, each one line within a bounded time and no process left behind:
// a bad engine.python (missing, without torch, torch too old, none on PATH), a rank killed
// mid-run, and Ctrl-C (SIGINT) to the process that owns the engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RedError } from '../../src/util/errors.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';
import { SKIP_TORCH, TORCH_PYTHON, goldenCase, openTorchEngine } from './torch-fixtures.ts';

/** Live processes whose process group is `pgid` (rank 0 leads the engine's group). */
function processGroup(pgid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state, ppid, pgrp, …
      if (fields[0] !== 'Z' && Number(fields[2]) === pgid) out.push(Number(name));
    } catch {
      /* ended meanwhile */
    }
  }
  return out;
}

async function waitUntil(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** An interpreter script: TORCH_PYTHON without site-packages (no torch), or with a fake old torch. */
function wrapper(dir: string, name: string, pythonPath: string | null): string {
  const file = path.join(dir, name);
  const env = pythonPath ? `PYTHONPATH=${pythonPath} ` : '';
  writeFileSync(file, `#!/bin/sh\n${env}exec ${TORCH_PYTHON} -S "$@"\n`);
  chmodSync(file, 0o755);
  return file;
}

test('a bad engine.python is one line naming it and the fix, at once', { skip: SKIP_TORCH }, async () => {
  const dir = tempDir('red-torch-python-');
  const oldTorch = path.join(dir, 'old');
  mkdirSync(path.join(oldTorch, 'torch'), { recursive: true });
  writeFileSync(path.join(oldTorch, 'torch', '__init__.py'), '__version__ = "1.12.1"\n');
  const cases: [string, RegExp][] = [
    ['/nonexistent/python3', /^engine\.python: \/nonexistent\/python3 cannot be run \(ENOENT\); .*pip install torch/],
    [
      wrapper(dir, 'no-torch', null),
      /^engine\.python: \S+no-torch cannot import torch \(ModuleNotFoundError: No module named 'torch'\); /,
    ],
    [
      wrapper(dir, 'old-torch', oldTorch),
      /^engine\.python: \S+old-torch has torch 1\.12\.1; the engine needs torch >= 1\.13; /,
    ],
  ];
  for (const [python, line] of cases) {
    const t0 = Date.now();
    await assert.rejects(openTorchEngine(fixturePath('qwen2-tiny-tied'), { python }), (err: Error) => {
      assert.ok(err instanceof RedError);
      assert.match(err.message, line);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    assert.ok(Date.now() - t0 < 30_000);
  }
  // No engine.python and no python3 on PATH that imports torch.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  wrapper(bin, 'python3', null);
  const savedPath = process.env.PATH;
  process.env.PATH = bin;
  try {
    await assert.rejects(openTorchEngine(fixturePath('qwen2-tiny-tied')), (err: Error) => {
      assert.match(
        err.message,
        /^engine\.python: no python3 on PATH imports torch >= 1\.13 \(tried \S+\/bin\/python3\); apt-get install -y python3-torch/,
      );
      return true;
    });
  } finally {
    process.env.PATH = savedPath;
  }
});

test(
  'a rank killed mid-run: the next call fails in one line naming it, and every rank ends',
  { skip: SKIP_TORCH },
  async () => {
    const g = goldenCase('tied');
    const e = await openTorchEngine(g.dir, { devices: 2 });
    try {
      const rank0 = e.rank0Pid!;
      const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
      const workers = processGroup(rank0).filter((p) => p !== rank0);
      assert.equal(workers.length, 1, 'rank 0 started one other rank');
      process.kill(workers[0], 'SIGKILL');
      const t0 = Date.now();
      await assert.rejects(e.forward(b, 'policy'), (err: Error) => {
        assert.match(err.message, /^PyTorch engine: engine rank 1 died \(killed by SIGKILL\)/);
        assert.ok(!err.message.includes('\n'));
        return true;
      });
      console.log(`  the dead rank was reported in ${Date.now() - t0} ms`);
      assert.ok(Date.now() - t0 < 20_000);
      await waitUntil('every rank ended', () => processGroup(rank0).length === 0, 15_000);
      await assert.rejects(e.forward(b, 'policy'), /engine rank 1 died/);
    } finally {
      await e.close();
    }
  },
);

test('rank 0 killed: the next call says how it ended, at once', { skip: SKIP_TORCH }, async () => {
  const g = goldenCase('tied');
  const e = await openTorchEngine(g.dir);
  try {
    const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
    process.kill(e.rank0Pid!, 'SIGKILL');
    const t0 = Date.now();
    await assert.rejects(e.forward(b, 'policy'), (err: Error) => {
      assert.match(
        err.message,
        /^PyTorch engine: rank 0 ended \(killed by SIGKILL\) \(out of memory\? lower optim\.microBatchTokens\)/,
      );
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000);
  } finally {
    await e.close();
  }
});

test(
  'SIGINT to the process that owns the engine ends every rank; no process is left behind',
  { skip: SKIP_TORCH },
  async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', path.join(import.meta.dirname, 'torch-engine-child.ts')],
      {
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let out = '';
    child.stdout.setEncoding('utf8');
    await waitUntil(
      'the engine started',
      () => {
        out += child.stdout.read() ?? '';
        return out.includes('\n');
      },
      120_000,
    );
    const { rank0 } = JSON.parse(out) as { rank0: number };
    assert.equal(processGroup(rank0).length, 2, 'rank 0 and rank 1 run');
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    await waitUntil('no engine process left', () => processGroup(rank0).length === 0, 10_000);
  },
);
