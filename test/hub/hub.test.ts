// Hub ids end to end against a Hub on loopback (fake-hub.ts) that holds the transformers fixture
// model: the cache layout Python's huggingface_hub uses, the model loaded from its id scoring as
// transformers did, tokens refused, missing repos, a download cut mid-file resumed with Range, a
// corrupt mirror caught by the sha256, and offline runs from the cache.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { hubRefOf, parseHubId } from '../../src/hub/id.ts';
import { isModelFile, resolveDataDir, resolveDataFile, resolveModelPath } from '../../src/hub/snapshot.ts';
import type { HubSettings } from '../../src/hub/client.ts';
import { createProgress } from '../../src/train/metrics.ts';
import { runTrain } from '../../src/train/run.ts';
import { writeTinySetup } from '../train/tiny.ts';
import { FakeHub, type FakeRepo } from './fake-hub.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const fixture = fixturePath('qwen2-tiny-tied');
const read = (f: string) => readFileSync(path.join(fixture, f));
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
const MODEL: FakeRepo = {
  type: 'model',
  repo: 'tiny-org/qwen2-tied',
  commit: COMMIT,
  files: {
    'config.json': read('config.json'),
    'generation_config.json': read('generation_config.json'),
    'model.safetensors': read('model.safetensors'),
    'README.md': Buffer.from('# not needed by a run\n'),
    'onnx/model.onnx': Buffer.from('not needed either'),
  },
  lfs: ['model.safetensors'],
};
const TRAIN = Buffer.from('{"problem":"1+1","answer":"2"}\n');
const TEST = Buffer.from('{"problem":"2+2","answer":"4"}\n{"problem":"3+3","answer":"6"}\n');
const DATA: FakeRepo = {
  type: 'dataset',
  repo: 'tiny-org/sums',
  commit: 'b'.repeat(40),
  files: {
    'data/train-00000-of-00001.jsonl': TRAIN,
    'data/test-00000-of-00001.jsonl': TEST,
    'README.md': Buffer.from('x'),
  },
  lfs: ['data/train-00000-of-00001.jsonl'],
};

const hub = new FakeHub([MODEL, DATA]);
let endpoint = '';
const freshCache = (): string => tempDir('red-hub-');
/** `red ARGS` in a child process; async, since the Hub it talks to lives in this process. */
function red(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin/red.js'), ...args], { cwd: repoRoot, env });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject).on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
/** A tiny trainable model with a tokenizer (tiny-org/tiny-base) and its task (tiny-org/tiny-task) on the Hub. */
let tinyPushed = false;
function tinyRepos(): void {
  if (tinyPushed) return;
  tinyPushed = true;
  const tiny = writeTinySetup(freshCache(), 4);
  const files: Record<string, Buffer> = {};
  for (const f of readdirSync(tiny.model)) files[f] = readFileSync(path.join(tiny.model, f));
  hub.repos.push(
    { type: 'model', repo: 'tiny-org/tiny-base', commit: 'c'.repeat(40), files, lfs: ['model.safetensors'] },
    {
      type: 'dataset',
      repo: 'tiny-org/tiny-task',
      commit: 'd'.repeat(40),
      files: { 'train.jsonl': readFileSync(tiny.train) },
      lfs: [],
    },
  );
}
const online = (token?: string): HubSettings => ({ endpoint, offline: false, ...(token ? { token } : {}) });

before(async () => {
  endpoint = await hub.start();
});
after(async () => {
  await hub.stop();
});

test('ids: org/name[@rev][/path] only when no such local path exists', () => {
  assert.deepEqual(parseHubId('Qwen/Qwen2.5-Math-1.5B', 'model'), {
    type: 'model',
    repo: 'Qwen/Qwen2.5-Math-1.5B',
    revision: 'main',
    path: '',
  });
  assert.deepEqual(parseHubId('Elliott/Openr1-Math-46k-8192@v1/data/train.parquet', 'dataset'), {
    type: 'dataset',
    repo: 'Elliott/Openr1-Math-46k-8192',
    revision: 'v1',
    path: 'data/train.parquet',
  });
  assert.equal(parseHubId('data/train.jsonl', 'dataset'), null); // a relative file, not a repo
  assert.equal(parseHubId('org/name/sub', 'model'), null); // a model id names a whole repo
  assert.equal(parseHubId('./org/name', 'model'), null);
  assert.equal(parseHubId('/abs/path', 'model'), null);
  assert.equal(hubRefOf('test/hub', 'model'), null); // exists here
});

test('a model id is fetched into the HF cache layout and loads as the fixture (red download, red score)', async () => {
  const cache = freshCache();
  const env = { ...process.env, HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '', HF_TOKEN: '' };
  const dl = await red(['download', MODEL.repo], env);
  assert.equal(dl.status, 0, dl.stderr);
  const repoDir = path.join(cache, 'models--tiny-org--qwen2-tied');
  assert.equal(readFileSync(path.join(repoDir, 'refs', 'main'), 'utf8'), COMMIT);
  const snap = path.join(repoDir, 'snapshots', COMMIT);
  assert.equal(dl.stdout.trim(), snap);
  assert.deepEqual(readdirSync(snap).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
  const link = path.join(snap, 'model.safetensors');
  assert.ok(lstatSync(link).isSymbolicLink());
  assert.equal(readlinkSync(link), path.join('..', '..', 'blobs', sha256(read('model.safetensors'))));
  assert.ok(readFileSync(link).equals(read('model.safetensors')));
  assert.ok(!readdirSync(path.join(repoDir, 'blobs')).some((b) => b.endsWith('.incomplete')));

  // The id now stands for the model: red score gives transformers' log-probs (reference backend).
  const g = new SafetensorsFile(path.join(fixture, 'golden.safetensors'));
  const ids = [...g.readInt('input_ids').subarray(0, 24)],
    lp = g.readFloat('next_logprob');
  g.close();
  const before = hub.log.length;
  const sc = await red(['score', '--model', MODEL.repo, '--ids', ids.join(','), '--json', '--backend', 'reference'], {
    ...env,
    HF_HUB_OFFLINE: '1',
  });
  assert.equal(sc.status, 0, sc.stderr);
  assert.equal(hub.log.length, before, 'HF_HUB_OFFLINE=1 made a request');
  const out = JSON.parse(sc.stdout) as { next_logprob: number[] };
  const worst = Math.max(...out.next_logprob.map((v, t) => Math.abs(v - lp[t])));
  assert.ok(worst < 1e-4, `red score from the Hub id differs from transformers by ${worst}`);
});

test('a refused token is one line naming 401 and HF_TOKEN; the token never reaches the CDN; a missing repo is one line naming the id', async () => {
  hub.token = 'hf_good';
  try {
    await assert.rejects(
      resolveModelPath(MODEL.repo, '--model', { settings: online('hf_bad'), cacheDir: freshCache(), quiet: true }),
      (e: Error) =>
        /^--model: model tiny-org\/qwen2-tied: 401 Unauthorized .*HF_TOKEN/.test(e.message) &&
        !e.message.includes('\n'),
    );
    // The token goes to the Hub, never to the CDN an LFS file redirects to (another origin).
    hub.cdnOrigin = endpoint.replace('127.0.0.1', 'localhost');
    const from = hub.log.length;
    const ok = await resolveModelPath(MODEL.repo, '--model', {
      settings: online('hf_good'),
      cacheDir: freshCache(),
      quiet: true,
    });
    assert.ok(readFileSync(path.join(ok, 'model.safetensors')).equals(read('model.safetensors')));
    const sent = hub.log.slice(from);
    assert.ok(
      sent.some((l) => l.url.startsWith('/cdn/')) &&
        sent.every((l) => (l.auth !== undefined) === !l.url.startsWith('/cdn/')),
      JSON.stringify(sent),
    );
  } finally {
    hub.token = undefined;
    hub.cdnOrigin = '';
  }
  for (const token of [undefined, 'hf_any']) {
    await assert.rejects(
      resolveModelPath('tiny-org/nope', 'model.path', { settings: online(token), cacheDir: freshCache(), quiet: true }),
      (e: Error) =>
        /^model\.path: model tiny-org\/nope: no such repository on http:\/\/127\.0\.0\.1:\d+.* \(taken as a Hub id since no local folder tiny-org\/nope exists: \/.*tiny-org\/nope\)$/.test(
          e.message,
        ) && !e.message.includes('\n'),
    );
  }
  await assert.rejects(
    resolveModelPath(`${MODEL.repo}@v9`, '--model', { settings: online(), cacheDir: freshCache(), quiet: true }),
    /no such revision/,
  );
});

test('a download cut mid-file leaves only .incomplete, and the next run resumes it with Range', async () => {
  const cache = freshCache();
  const blobs = path.join(cache, 'models--tiny-org--qwen2-tied', 'blobs');
  const blob = path.join(blobs, sha256(read('model.safetensors')));
  hub.cutDownloads = 1;
  await assert.rejects(
    resolveModelPath(MODEL.repo, '--model', { settings: online(), cacheDir: cache, retries: 0, quiet: true }),
    /dropped.*run again to resume/,
  );
  const partial = statSync(`${blob}.incomplete`).size;
  assert.ok(partial > 0 && partial < read('model.safetensors').length, `partial file of ${partial} bytes`);
  assert.ok(!existsSync(blob));
  assert.ok(
    !existsSync(path.join(cache, 'models--tiny-org--qwen2-tied', 'snapshots', COMMIT, 'model.safetensors')),
    'the snapshot points at an unfinished file',
  );

  const from = hub.log.length;
  const dir = await resolveModelPath(MODEL.repo, '--model', {
    settings: online(),
    cacheDir: cache,
    retries: 0,
    quiet: true,
  });
  assert.ok(
    hub.log.slice(from).some((l) => l.url.startsWith('/cdn/') && l.range === `bytes=${partial}-`),
    'no Range request resumed the file',
  );
  assert.ok(readFileSync(path.join(dir, 'model.safetensors')).equals(read('model.safetensors')));
  assert.ok(!existsSync(`${blob}.incomplete`));

  // Within one call, a dropped connection is retried from where it stopped.
  hub.cutDownloads = 1;
  const again = await resolveModelPath(MODEL.repo, '--model', {
    settings: online(),
    cacheDir: freshCache(),
    quiet: true,
  });
  assert.ok(readFileSync(path.join(again, 'model.safetensors')).equals(read('model.safetensors')));
});

test('bytes that do not match the sha256 never become a blob', async () => {
  const good = read('model.safetensors');
  const bad = Buffer.from(good);
  bad[bad.length - 5] ^= 0xff;
  hub.corrupt.set(sha256(good), bad);
  const cache = freshCache();
  try {
    await assert.rejects(
      resolveModelPath(MODEL.repo, '--model', { settings: online(), cacheDir: cache, quiet: true }),
      /checksum does not match/,
    );
  } finally {
    hub.corrupt.clear();
  }
  const blobs = path.join(cache, 'models--tiny-org--qwen2-tied', 'blobs');
  assert.ok(!readdirSync(blobs).includes(sha256(good)));
  assert.ok(!readdirSync(blobs).some((b) => b.endsWith('.incomplete')));
});

test('offline: an empty cache is one line naming the id; a filled one works with HF_HUB_OFFLINE and with the network gone', async () => {
  const cache = freshCache();
  await assert.rejects(
    resolveModelPath(MODEL.repo, 'model.path', { settings: { endpoint, offline: true }, cacheDir: cache, quiet: true }),
    (e: Error) =>
      e.message.includes('tiny-org/qwen2-tied') && /HF_HUB_OFFLINE/.test(e.message) && !e.message.includes('\n'),
  );
  const dir = await resolveModelPath(MODEL.repo, 'model.path', { settings: online(), cacheDir: cache, quiet: true });
  const n = hub.log.length;
  assert.equal(
    await resolveModelPath(MODEL.repo, 'model.path', { settings: { endpoint, offline: true }, cacheDir: cache }),
    dir,
  );
  assert.equal(hub.log.length, n);
  // Nothing listens on this port: the cached snapshot is used; with no cache, one line says both.
  const gone: HubSettings = { endpoint: 'http://127.0.0.1:9', offline: false };
  assert.equal(await resolveModelPath(MODEL.repo, 'model.path', { settings: gone, cacheDir: cache, quiet: true }), dir);
  await assert.rejects(
    resolveModelPath(MODEL.repo, 'model.path', { settings: gone, cacheDir: freshCache(), quiet: true }),
    (e: Error) =>
      /cannot reach http:\/\/127\.0\.0\.1:9 .*not in the Hugging Face cache/.test(e.message) &&
      !e.message.includes('\n'),
  );
});

test('dataset ids: the train split by default, a split or file by path, a folder for red eval --data', async () => {
  const o = { settings: online(), cacheDir: freshCache(), quiet: true };
  const train = await resolveDataFile(DATA.repo, 'data.train', o);
  assert.ok(train.endsWith(path.join('data', 'train-00000-of-00001.jsonl')));
  assert.ok(readFileSync(train).equals(TRAIN));
  assert.ok(readFileSync(await resolveDataFile(`${DATA.repo}/test`, 'data.train', o)).equals(TEST));
  assert.ok(
    readFileSync(await resolveDataFile(`${DATA.repo}/data/test-00000-of-00001.jsonl`, 'data.train', o)).equals(TEST),
  );
  const dir = await resolveDataDir(`${DATA.repo}/data`, '--data', o);
  assert.deepEqual(readdirSync(dir).sort(), ['test-00000-of-00001.jsonl', 'train-00000-of-00001.jsonl']);
  await assert.rejects(
    resolveDataFile(`${DATA.repo}/validation`, 'data.train', o),
    /no parquet or jsonl files under 'validation'/,
  );
  assert.ok(!existsSync(path.join(o.cacheDir, 'datasets--tiny-org--sums', 'snapshots', DATA.commit, 'README.md')));
});

test('model file filter: config, tokenizer, safetensors and index only', () => {
  const files = [
    'config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'merges.txt',
    'vocab.json',
    'model-00001-of-00002.safetensors',
    'model.safetensors.index.json',
    'pytorch_model.bin',
    'README.md',
    'onnx/model.onnx',
    'original/consolidated.safetensors',
    'chat_template.jinja',
  ];
  assert.deepEqual(files.filter(isModelFile), [
    'config.json',
    'tokenizer.json',
    'tokenizer_config.json',
    'merges.txt',
    'vocab.json',
    'model-00001-of-00002.safetensors',
    'model.safetensors.index.json',
    'chat_template.jinja',
  ]);
});

test('red train with model.path and data.train as Hub ids: fetched, trained, ids kept in config.yaml, TensorBoard events written', async () => {
  const setup = freshCache();
  tinyRepos();
  const cfg = path.join(setup, 'train.yaml');
  writeFileSync(
    cfg,
    `model: { path: tiny-org/tiny-base }
engine: { backend: reference }
data: { train: tiny-org/tiny-task, epochs: 1 }
rollout: { groupSize: 2, promptsPerStep: 2, maxTokens: 8 }
log: { progress: none }
`,
  );
  const saved = { ...process.env };
  Object.assign(process.env, {
    HF_ENDPOINT: endpoint,
    HF_HUB_CACHE: path.join(setup, 'cache'),
    HF_HUB_OFFLINE: '',
    HF_TOKEN: '',
  });
  try {
    const out = path.join(setup, 'run');
    const last = await runTrain(
      { config: cfg, out, method: 'grpo', sets: [], maxSteps: 1, resume: false },
      createProgress('none'),
    );
    assert.equal(last, 1);
    assert.ok(
      existsSync(
        path.join(setup, 'cache', 'models--tiny-org--tiny-base', 'snapshots', 'c'.repeat(40), 'tokenizer.json'),
      ),
    );
    assert.match(readFileSync(path.join(out, 'config.yaml'), 'utf8'), /path: tiny-org\/tiny-base/);
    assert.equal(readdirSync(path.join(out, 'tb')).filter((f) => f.startsWith('events.out.tfevents.')).length, 1);
  } finally {
    for (const k of ['HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HUB_OFFLINE', 'HF_TOKEN']) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
  }
});

test('red eval --model ID --benchmarks name=DATASET_ID/split: both fetched, the split evaluated', async () => {
  tinyRepos();
  const cache = freshCache(),
    out = path.join(freshCache(), 'eval');
  const env = { ...process.env, HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '', HF_TOKEN: '' };
  const r = await red(
    [
      'eval',
      '--model',
      'tiny-org/tiny-base',
      '--benchmarks',
      `sums=${DATA.repo}/test`,
      '--n',
      '1',
      '--max-tokens',
      '4',
      '--backend',
      'reference',
      '--out',
      out,
    ],
    env,
  );
  assert.equal(r.status, 0, r.stderr);
  const results = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as {
    model: string;
    benchmarks: Array<{ name: string; problems: number }>;
  };
  assert.equal(results.model, 'tiny-org/tiny-base');
  assert.deepEqual(
    results.benchmarks.map((b) => [b.name, b.problems]),
    [['sums', 2]],
  ); // TEST has two rows
  assert.ok(
    existsSync(
      path.join(cache, 'datasets--tiny-org--sums', 'snapshots', DATA.commit, 'data', 'test-00000-of-00001.jsonl'),
    ),
  );
});

test('two processes downloading the same model at once: the second waits on the blob lock, the bytes are fetched once', async () => {
  const cache = freshCache();
  const env = { ...process.env, HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '', HF_TOKEN: '' };
  const before = hub.log.length;
  const [a, b] = await Promise.all([red(['download', MODEL.repo], env), red(['download', MODEL.repo], env)]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(b.status, 0, b.stderr);
  const cdnGets = hub.log.slice(before).filter((l) => l.method === 'GET' && l.url.startsWith('/cdn/'));
  assert.equal(cdnGets.length, 1, `the LFS body was fetched ${cdnGets.length} times`);
  const repoDir = path.join(cache, 'models--tiny-org--qwen2-tied');
  assert.ok(
    readFileSync(path.join(repoDir, 'snapshots', COMMIT, 'model.safetensors')).equals(read('model.safetensors')),
  );
  // huggingface_hub's lock folder; every lock was released.
  assert.deepEqual(readdirSync(path.join(cache, '.locks', 'models--tiny-org--qwen2-tied')), []);
});

test('a path typo shaped like org/name: the one line says it is no local folder and what the Hub said', async () => {
  const cwd = tempDir('red-typo-');
  const env = { ...process.env, HF_HUB_CACHE: freshCache(), HF_HUB_OFFLINE: '1', RED_DEBUG: '' };
  const r = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [path.join(repoRoot, 'bin/red.js'), 'generate', '--model', 'runs/bsae', '--prompt-ids', '1'],
      { cwd, env },
    );
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject).on('close', (status) => resolve({ status, stderr }));
  });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /model runs\/bsae is not in the Hugging Face cache .* HF_HUB_OFFLINE is set/);
  assert.ok(
    r.stderr
      .trimEnd()
      .endsWith(`(taken as a Hub id since no local folder runs/bsae exists: ${path.join(cwd, 'runs/bsae')})`),
    r.stderr,
  );
});

/** `red ARGS` in a private mount namespace where `dir` is mounted read-only (null when this machine cannot). */
function redWithReadOnly(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ status: number | null; stdout: string; stderr: string }> | null {
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', `mount --bind ${JSON.stringify(dir)} ${JSON.stringify(dir)}`]);
  if (probe.status !== 0) return null;
  const q = (a: string) => JSON.stringify(a);
  const cmd = `mount --bind ${q(dir)} ${q(dir)} && mount -o remount,ro,bind ${q(dir)} && exec ${q(process.execPath)} ${[path.join(repoRoot, 'bin/red.js'), ...args].map(q).join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('unshare', ['-rm', 'sh', '-c', cmd], { cwd: repoRoot, env });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject).on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

test('a read-only Hugging Face cache: one line naming it and EROFS; filled and up to date, it serves without a write', async (t) => {
  const cache = freshCache();
  const env = { ...process.env, HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '', RED_DEBUG: '' };
  const empty = redWithReadOnly(cache, ['download', MODEL.repo], env);
  if (empty === null) {
    t.skip('cannot mount in a private namespace here (unshare -rm)');
    return;
  }
  const r = await empty;
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(
    r.stderr,
    new RegExp(
      `^red: cannot write to the Hugging Face cache ${cache} \\(.*\\): the file system is read-only \\(EROFS\\); set HF_HUB_CACHE to a folder you can write to\\n$`,
    ),
  );
  const filled = await red(['download', MODEL.repo], env);
  assert.equal(filled.status, 0, filled.stderr);
  const again = await redWithReadOnly(cache, ['download', MODEL.repo], env)!;
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, filled.stdout);
});
