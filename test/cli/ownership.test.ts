// Nothing a user owns is deleted or overwritten: every command with an --out, run as a user runs it
// (bin/red.js in a child process), against a folder holding the user's notes.txt and photos/, is
// refused in one line that lists them, --force included, and the files are intact afterwards;
// `red download` into a cache folder holding them leaves them alone. No --out may be an input (the
// base model, a run being reported). --force empties only what red wrote, and a run folder written
// before red marked its folders is still recognised.
import { describe, it, before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FakeHub } from '../hub/fake-hub.ts';
import { tempDir } from '../helpers/tmp.ts';
import { tinyTrainYaml, writeTinySetup } from '../train/tiny.ts';

const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const root = tempDir('red-ownership-');
const tiny = writeTinySetup(path.join(root, 'inputs'), 8);
const trainConfig = path.join(root, 'inputs', 'train.yaml');
writeFileSync(trainConfig, tinyTrainYaml(tiny, 'checkpoint: { every: 1, keep: 1 }\n'));
const toy = path.join(root, 'inputs', 'toy.jsonl');
writeFileSync(toy, '{"problem": "1+1", "answer": "2"}\n');

function red(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, RED_DEBUG: '', HF_HUB_OFFLINE: '1', ...env } },
      (err, _stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
    );
  });
}

/** A folder of the user's: notes.txt and photos/cat.jpg. */
function userFolder(name: string): string {
  const dir = path.join(root, name);
  mkdirSync(path.join(dir, 'photos'), { recursive: true });
  writeFileSync(path.join(dir, 'notes.txt'), 'my notes');
  writeFileSync(path.join(dir, 'photos', 'cat.jpg'), 'a cat');
  return dir;
}
function assertIntact(dir: string): void {
  assert.equal(readFileSync(path.join(dir, 'notes.txt'), 'utf8'), 'my notes');
  assert.equal(readFileSync(path.join(dir, 'photos', 'cat.jpg'), 'utf8'), 'a cat');
}

// A run folder that `red report` reads, with the results.json `red eval --out RUN` wrote into it.
const run = path.join(root, 'inputs', 'run');
mkdirSync(run);
writeFileSync(path.join(run, 'config.yaml'), 'method: sft\n');
writeFileSync(path.join(run, 'metrics.jsonl'), '{"step":1,"loss/policy":0.5}\n');
const evalResults =
  JSON.stringify({
    model: 'm',
    prompt: 'raw',
    seed: 0,
    benchmarks: [],
    overall: { acc: 0.5, len: 10, benchmarks: 1 },
    metrics: {},
  }) + '\n';
writeFileSync(path.join(run, 'results.json'), evalResults);

/** [name, the command line before --out (and its options after), whether it takes --force]. */
const commands: [string, string[], string[]][] = [
  ['train', ['train', '--config', trainConfig, '--method', 'sft', '--max-steps', '1'], ['--force']],
  ['pretrain', ['pretrain', '--quick', '--steps', '1', '--eval-per-level', '0', '--backend', 'reference'], ['--force']],
  ['eval', ['eval', '--model', tiny.model, '--benchmarks', `toy=${toy}`, '--n', '1', '--backend', 'reference'], []],
  ['report', ['report', run, '--token-diff', 'off'], []],
  ['eval --compare', ['eval', '--compare', run], []],
  ['data builtin', ['data', 'builtin', '--train', '4', '--test', '2'], []],
  ['demo', ['demo', '--tiny', '--methods', 'sft', '--backend', 'reference', '--cache', path.join(root, 'cache')], []],
];

describe("every command with an --out leaves a user's folder as it was", { concurrency: 3 }, () => {
  for (const [name, args, force] of commands) {
    for (const extra of force.length > 0 ? [[], force] : [[]]) {
      it(`${name}${extra.length > 0 ? ' --force' : ''}: refused in one line listing what the folder holds`, async () => {
        const dir = userFolder(`user-${name.replace(/ /g, '-')}${extra.length > 0 ? '-force' : ''}`);
        const r = await red([...args, ...extra, '--out', dir]);
        assert.equal(r.code, 1, r.stderr);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`^red: --out ${dir} is not a folder red wrote \\(it holds notes\\.txt, photos/\\)`),
        );
        assertIntact(dir);
        assert.deepEqual(readdirSync(dir).sort(), ['notes.txt', 'photos']);
      });
    }
  }
});

describe("red download into a cache folder that holds a user's files", () => {
  const hub = new FakeHub([
    {
      type: 'model',
      repo: 'tiny-org/tiny',
      commit: 'e'.repeat(40),
      files: Object.fromEntries(readdirSync(tiny.model).map((f) => [f, readFileSync(path.join(tiny.model, f))])),
      lfs: ['model.safetensors'],
    },
  ]);
  before(() => hub.start());
  after(() => hub.stop());
  it('fetches into the cache layout beside them and leaves them alone; a failure does not say "red download" twice', async () => {
    const cache = userFolder('user-hf-cache');
    const env = { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '' };
    const r = await red(['download', 'tiny-org/tiny'], env);
    assert.equal(r.code, 0, r.stderr);
    assertIntact(cache);
    assert.deepEqual(readdirSync(cache).sort(), ['.locks', 'models--tiny-org--tiny', 'notes.txt', 'photos']);
    const missing = await red(['download', 'tiny-org/nope'], env);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^red: download: model tiny-org\/nope: no such repository on /);
  });
});

test('--out may not be an input: the base model with train --force, the run being reported', async () => {
  const trained = await red(['train', '--config', trainConfig, '--method', 'sft', '--out', tiny.model, '--force']);
  assert.equal(trained.code, 1, trained.stderr);
  assert.match(trained.stderr, /^red: --out .*model is not a folder red wrote \(it holds config\.json, /);
  assert.ok(existsSync(path.join(tiny.model, 'model.safetensors')), 'the base model is gone');

  const reported = await red(['report', run, '--token-diff', 'off', '--out', run]);
  assert.equal(reported.code, 1, reported.stderr);
  assert.equal(reported.stderr.trim().split('\n').length, 1, reported.stderr);
  assert.match(reported.stderr, new RegExp(`^red: --out ${run} is a run of red train \\(it holds `));
  assert.equal(readFileSync(path.join(run, 'results.json'), 'utf8'), evalResults);

  // A new folder inside the run is fine: the report writes only there.
  const inside = await red(['report', run, '--token-diff', 'off', '--out', path.join(run, 'report')]);
  assert.equal(inside.code, 0, inside.stderr);
  assert.equal(readFileSync(path.join(run, 'results.json'), 'utf8'), evalResults);
});

test('red pretrain: a second run into its own folder needs --force, which replaces it', async () => {
  const out = path.join(root, 'pretrained');
  const args = ['pretrain', '--quick', '--steps', '1', '--eval-per-level', '0', '--backend', 'reference', '--out', out];
  assert.equal((await red(args)).code, 0);
  const again = await red(args);
  assert.equal(again.code, 1);
  assert.equal(
    again.stderr,
    `red: --out ${out} already holds a model red pretrained; add --force to replace it, or choose another --out\n`,
  );
  const forced = await red([...args, '--force', '--seed', '1']);
  assert.equal(forced.code, 0, forced.stderr);
  // A model folder of red's that also holds a user's file: --force replaces folders whole, so it is refused.
  writeFileSync(path.join(out, 'notes.txt'), 'my notes');
  const mixed = await red([...args, '--force']);
  assert.equal(mixed.code, 1);
  assert.match(mixed.stderr, /also holds notes\.txt, which red did not write; --force replaces the whole folder/);
  assert.equal(readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'my notes');
});

test('red train --force empties only what red wrote; a run folder from before the marker is still a run', async () => {
  const out = path.join(root, 'run-force');
  const first = await red(['train', '--config', trainConfig, '--method', 'sft', '--max-steps', '2', '--out', out]);
  assert.equal(first.code, 0, first.stderr);
  writeFileSync(path.join(out, 'notes.txt'), 'my notes');
  const forced = await red([
    'train',
    '--config',
    trainConfig,
    '--method',
    'sft',
    '--max-steps',
    '1',
    '--out',
    out,
    '--force',
  ]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(readFileSync(path.join(out, 'notes.txt'), 'utf8'), 'my notes');
  const steps = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(steps.length, 1);
  // As an older red left it: no marker. --resume continues it.
  rmSync(path.join(out, '.red-folder.json'));
  const resumed = await red(['train', '--out', out, '--resume', '--max-steps', '2']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 2);
});
