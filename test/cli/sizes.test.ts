// Sizes a user can mistype by a few zeros: each is refused before anything is allocated, in one
// line with the memory the settings need at the least, its largest part and the option to lower
// (they used to print nothing and grow past 4 GB, or die on "Invalid typed array length"); an
// absurd learning rate is warned about instead of diverging in silence.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../helpers/tmp.ts';
import { tinyTrainYaml, writeTinySetup } from '../train/tiny.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const root = tempDir('red-sizes-');
const tiny = writeTinySetup(path.join(root, 'inputs'), 8);
const config = path.join(root, 'train.yaml');
writeFileSync(config, tinyTrainYaml(tiny));
const toy = path.join(root, 'toy.jsonl');
writeFileSync(toy, '{"problem": "1+1", "answer": "2"}\n');

function red(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, RED_DEBUG: '' } }, (err, _out, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
    );
  });
}

const train = (set: string) => ['train', '--config', config, '--method', 'grpo', '--set', set];
const evalToy = ['eval', '--model', tiny.model, '--benchmarks', `toy=${toy}`, '--backend', 'reference'];

const cases: [string, string[], RegExp][] = [
  [
    'rollout.groupSize: 1000000000',
    train('rollout.groupSize=1000000000'),
    /^red: this run needs at least [\d.]+ [GTP]iB \(.*2 prompts × 1000000000 rollouts per step: .*\) but this machine has [\d.]+ [GT]iB; lower rollout\.groupSize or rollout\.promptsPerStep$/,
  ],
  [
    'rollout.maxTokens: 1e12',
    train('rollout.maxTokens=1000000000000'),
    /^red: this run needs at least [\d.]+ [GTP]iB \(the rollout KV cache of 4 sequences × 1000000000001 positions: [\d.]+ [TP]iB; .*\) but this machine has [\d.]+ [GT]iB; lower rollout\.maxTokens$/,
  ],
  [
    'sft.batchSize: 1000000000',
    ['train', '--config', config, '--method', 'sft', '--set', 'sft.batchSize=1000000000'],
    /^red: this run needs at least [\d.]+ [GTP]iB \(activations of 2000000000 tokens per update: .*\) but this machine has [\d.]+ [GT]iB; lower sft\.batchSize \(or set optim\.microBatchTokens\)$/,
  ],
  [
    'eval --n 1e12',
    [...evalToy, '--n', '1000000000000'],
    /^red: this evaluation needs at least [\d.]+ [GTP]iB \(1000000000000 samples: .*\) but this machine has [\d.]+ [GT]iB; lower --n or --chunk$/,
  ],
  [
    'eval --max-tokens 1e12',
    [...evalToy, '--max-tokens', '1000000000000'],
    /^red: this evaluation needs at least [\d.]+ [GTP]iB \(the KV cache of 64 sequences × 1000000000001 positions: .*\) but this machine has [\d.]+ [GT]iB; lower --max-tokens or --max-batch$/,
  ],
  [
    'pretrain --batch-size 1000000000',
    ['pretrain', '--quick', '--batch-size', '1000000000', '--backend', 'reference'],
    /^red: this pretraining needs at least [\d.]+ [GTP]iB \(activations of 2000000000 tokens per step: .*\) but this machine has [\d.]+ [GT]iB; lower --batch-size$/,
  ],
];

describe('a size that cannot fit is one line with the estimate, and nothing is written', { concurrency: 3 }, () => {
  cases.forEach(([name, args, want], i) => {
    it(name, async () => {
      const out = path.join(root, `out-${i}`);
      const r = await red([...args, '--out', out]);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr.trim(), want);
      assert.ok(!existsSync(out), `${out} was created`);
    });
  });
});

describe('an absurd learning rate is said before the run', () => {
  it('optim.lr: 1e30 → one warning line, then the run', async () => {
    const r = await red([...train('optim.lr=1e30'), '--max-steps', '1', '--out', path.join(root, 'lr')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: optim\.lr 1e\+30 is above 1: each AdamW step moves every weight by about lr, so the weights blow up at the first step/m,
    );
  });
});
