// `red eval` folders survive interruptions and mistakes: Ctrl-C says how to resume and the same
// command then reuses every finished problem (none redone, none duplicated); a second writer on
// the folder is refused; a model without a chat template gets the fix eval actually has
// (--prompt raw), and the failed run does not block that corrected command; a full disk is one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { lockFolder } from '../../src/util/lock.ts';
import { byteTokenizerFiles, tinyModel } from './tiny.ts';
import { tempDir } from '../helpers/tmp.ts';

const ROOT = tempDir('red-eval-int-');
const BIN = new URL('../../bin/red.js', import.meta.url).pathname;

function modelFolder(name: string, chatTemplate: boolean): string {
  const dir = path.join(ROOT, name);
  tinyModel().save(dir);
  const tok = byteTokenizerFiles();
  const cfg: Record<string, unknown> = { ...tok.tokenizerConfig };
  if (!chatTemplate) delete cfg.chat_template;
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  return dir;
}
const model = modelFolder('model', true);
const PROBLEMS = 150;
const data = path.join(ROOT, 'q.jsonl');
writeFileSync(
  data,
  Array.from({ length: PROBLEMS }, (_, i) => JSON.stringify({ problem: `${i}+1`, answer: String(i + 1) })).join('\n') +
    '\n',
);
const records = (out: string) =>
  readFileSync(path.join(out, 'samples.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { benchmark: string; index: number });

test('Ctrl-C: says how to resume; a second writer is refused; the same command reuses every finished problem', async () => {
  const out = path.join(ROOT, 'out');
  const args = [
    BIN,
    'eval',
    '--model',
    model,
    '--benchmarks',
    `toy=${data}`,
    '--n',
    '2',
    '--max-tokens',
    '48',
    '--temperature',
    '1',
    '--chunk',
    '2',
    '--backend',
    'reference',
    '--out',
    out,
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const file = path.join(out, 'samples.jsonl');
  const t0 = Date.now();
  while (!(existsSync(file) && readFileSync(file, 'utf8').split('\n').length > 2)) {
    if (child.exitCode !== null || Date.now() - t0 > 60_000) assert.fail(`no progress to interrupt: ${stderr}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  // A second writer (this process) is refused while the first runs.
  assert.throws(
    () => lockFolder(out, 'eval'),
    (err: Error) =>
      err.message ===
      `${out} is in use by PID ${child.pid} (red eval); wait for it to finish, stop it, or use another folder`,
  );
  child.kill('SIGINT');
  assert.equal(await done, 130, stderr);
  const kept = readFileSync(file, 'utf8');
  const n = kept.trim().split('\n').length;
  assert.ok(n < PROBLEMS, 'the run finished before it was interrupted');
  assert.match(
    stderr,
    new RegExp(
      `red eval: interrupted; ${n} finished problem\\(s\\) are kept in ${file}; run the same command to resume from there\\n$`,
    ),
  );

  const resumed = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.ok(readFileSync(file, 'utf8').startsWith(kept), 'the finished problems were rewritten');
  const keys = records(out).map((r) => `${r.benchmark}#${r.index}`);
  assert.equal(keys.length, PROBLEMS);
  assert.equal(new Set(keys).size, PROBLEMS, 'a problem was written twice');
});

test('no chat template: eval names --prompt raw, and that corrected command then runs in the same folder', () => {
  const plain = modelFolder('plain', false);
  const out = path.join(ROOT, 'plain-out');
  const base = [
    BIN,
    'eval',
    '--model',
    plain,
    '--benchmarks',
    `toy=${data}`,
    '--limit',
    '2',
    '--n',
    '1',
    '--max-tokens',
    '4',
    '--backend',
    'reference',
    '--out',
    out,
  ];
  const r = spawnSync(process.execPath, base, { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /no chat_template.*use --prompt raw/);
  assert.doesNotMatch(r.stderr, /--chat/);
  const fixed = spawnSync(process.execPath, [...base, '--prompt', 'raw'], { encoding: 'utf8' });
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.equal(records(out).length, 2);
});

test('a full disk during eval: one line naming the file, that finished problems are kept and how to resume', (t) => {
  // A real full disk: a 16 KiB tmpfs in a private mount namespace (user namespaces, no root needed).
  const probe = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=16k tmpfs ${JSON.stringify(ROOT)}`], {
    encoding: 'utf8',
  });
  if (probe.status !== 0) {
    t.skip(`cannot mount a small tmpfs here (${(probe.stderr || probe.error?.message || '').trim()})`);
    return;
  }
  const disk = path.join(ROOT, 'disk');
  mkdirSync(disk);
  const out = path.join(disk, 'out');
  const cmd = `mount -t tmpfs -o size=16k tmpfs ${JSON.stringify(disk)} && exec ${JSON.stringify(process.execPath)} ${[BIN, 'eval', '--model', model, '--benchmarks', `toy=${data}`, '--n', '4', '--max-tokens', '48', '--temperature', '1', '--chunk', '8', '--backend', 'reference', '--out', out].map((a) => JSON.stringify(a)).join(' ')}`;
  const r = spawnSync('unshare', ['-rm', 'sh', '-c', cmd], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('eval: '));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(
    lines[0],
    new RegExp(
      `^red: cannot write ${out}/\\S+ \\(ENOSPC\\): the disk is full; free some space and run the same command again; the problems finished so far are kept in samples\\.jsonl and will not be redone$`,
    ),
  );
});
