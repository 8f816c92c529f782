// A bad command writes nothing: every `red` command that writes an --out folder checks its
// arguments and reads its inputs before it creates (or locks) that folder, so a typo'd option, a
// missing input or an unknown method name gets one line naming the fix and leaves no folder behind,
// not even the folder's parent.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_METHODS } from '../../src/demo/budget.ts';
import { tempDir } from '../helpers/tmp.ts';
import { writeTinySetup } from '../train/tiny.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const root = tempDir('red-out-folders-');
const tiny = writeTinySetup(path.join(root, 'inputs'), 8);
// A run folder `red report` accepts: one logged step.
const run = path.join(root, 'inputs', 'run');
mkdirSync(run);
writeFileSync(path.join(run, 'metrics.jsonl'), '{"step":1,"loss/policy":0.5}\n');
const trainConfig = path.join(root, 'inputs', 'train.yaml');
writeFileSync(
  trainConfig,
  `model: { path: ${tiny.model} }
engine: { backend: reference }
data: { train: ${tiny.train} }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 16 }
sft: { batchSize: 2 }
log: { progress: none }
`,
);
const missing = path.join(root, 'inputs', 'no-such');

function red(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, RED_DEBUG: '' } }, (err, _stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
    );
  });
}

/**
 * [name, command line before --out, the error after `red: ` (a RegExp where it holds paths), its
 * lines: 1, except the config's listing of every problem under "invalid configuration (FILE):"].
 */
const cases: [string, string[], string | RegExp, number?][] = [
  ['report: a missing run folder', ['report', missing], `${missing}: run folder not found`],
  [
    'report: a typo in --token-diff',
    ['report', run, '--token-diff', 'of'],
    "--token-diff must be auto, off or force, got 'of'",
  ],
  ['report: a missing --trace-file', ['report', run, '--trace-file', missing], `${missing}: trace file not found`],
  [
    'report: a --base-eval folder without results',
    ['report', run, '--base-eval', missing],
    `${path.join(missing, 'results.json')} not found: is ${missing} a folder written by \`red eval\` (and finished)?`,
  ],
  [
    'demo: an unknown method',
    ['demo', '--tiny', '--methods', 'sft,nope'],
    `--methods: unknown method 'nope'; expected some of ${DEMO_METHODS.join(', ')}`,
  ],
  [
    'demo: an empty --methods',
    ['demo', '--tiny', '--methods', ','],
    `--methods is empty; give some of ${DEMO_METHODS.join(', ')}`,
  ],
  [
    'demo: a typo in --backend',
    ['demo', '--tiny', '--backend', 'natve'],
    "--backend must be auto, native or reference, got 'natve'",
  ],
  ['demo: --steps 0', ['demo', '--tiny', '--steps', '0'], "--steps must be a positive integer, got '0'"],
  ['demo: --seeds two', ['demo', '--tiny', '--seeds', 'two'], "--seeds must be a positive integer, got 'two'"],
  [
    'demo: a --base that is not a model folder',
    ['demo', '--tiny', '--base', missing],
    `--base ${missing}: not a model folder with config.json, model.safetensors, tokenizer.json`,
  ],
  [
    'pretrain: --steps 0',
    ['pretrain', '--quick', '--steps', '0'],
    'pretrain options: steps must be a positive integer, got 0',
  ],
  [
    'pretrain: a typo in --lr',
    ['pretrain', '--quick', '--lr', '1e-3x'],
    "--lr must be a non-negative number, got '1e-3x'",
  ],
  [
    'pretrain: a typo in --precision',
    ['pretrain', '--quick', '--precision', 'fp61'],
    '--precision must be one of fp32, bf16; got "fp61"',
  ],
  [
    'pretrain: a typo in --bf16-backward',
    ['pretrain', '--quick', '--precision', 'bf16', '--bf16-backward', 'nope'],
    '--bf16-backward must be one of round, split; got "nope"',
  ],
  [
    'pretrain: more held-out problems than a level has',
    ['pretrain', '--quick', '--eval-per-level', '100000'],
    /could only generate \d+ distinct level-1 test problems/,
  ],
  [
    'data builtin: more rows than a split has',
    ['data', 'builtin', '--test', '500'],
    'the built-in task has 120 test problems; ask for at most 120, not 500',
  ],
  [
    'train: an unknown method',
    ['train', '--config', trainConfig, '--method', 'nope'],
    /^invalid configuration \(.*train\.yaml \+ --method\):\n\s+method must be one of sft, .*, got "nope"$/,
    2,
  ],
  [
    'train: a dataset field that the rows lack',
    ['train', '--config', trainConfig, '--method', 'sft', '--set', 'data.fields=problem=nope,answer=answer'],
    /missing field 'nope'/,
  ],
  [
    'eval: a missing benchmark file',
    ['eval', '--model', tiny.model, '--benchmarks', `toy=${missing}.jsonl`, '--backend', 'reference'],
    `${missing}.jsonl: benchmark file not found`,
  ],
];

// Each case spawns the CLI (~1-2 s of start-up): a few at once keep the file short on 2 cores.
describe('a bad command leaves no --out folder behind', { concurrency: 3 }, () => {
  cases.forEach(([name, args, want, lines = 1], i) => {
    it(name, async () => {
      const parent = path.join(root, `case-${i}`);
      const out = path.join(parent, 'out');
      // The demo's cache would be a second folder written before the checks.
      const cache = args[0] === 'demo' ? ['--cache', path.join(parent, 'cache')] : [];
      const r = await red([...args, ...cache, '--out', out]);
      assert.equal(r.code, 1, r.stderr);
      const message = r.stderr.trimEnd();
      assert.equal(message.split('\n').length, lines, `not ${lines} line(s): ${r.stderr}`);
      if (typeof want === 'string') assert.equal(message, `red: ${want}`);
      else assert.match(message.replace(/^red: /, ''), want);
      assert.ok(!existsSync(parent), `${out} (or its parent) was created by a command that failed`);
    });
  });
});
