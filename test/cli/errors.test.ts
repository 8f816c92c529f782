// What a user sees when something is wrong: one line (no stack trace unless RED_DEBUG=1) whose fix
// exists for the command at hand. The model is the transformers fixture, which ships without
// tokenizer files, so each command meets the missing tokenizer.json its own way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend } from '../../src/engine/native.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const model = fixturePath('qwen2-tiny-tied');

function red(args: string[], env: Record<string, string> = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin/red.js'), ...args], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, RED_DEBUG: '', ...env },
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('--version prints the package version', () => {
  const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
  const r = red(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${version}\n`);
});

test('a missing tokenizer.json: each command names the way around it that it has', () => {
  const data = path.join(tempDir('red-err-'), 'q.jsonl');
  writeFileSync(data, '{"problem": "1+1", "answer": "2"}\n');
  const out = path.join(path.dirname(data), 'out');
  const cases: [string[], RegExp][] = [
    [
      ['generate', '--model', model, '--prompt', 'hi', '--backend', 'reference'],
      /has no tokenizer\.json; give the prompt as token ids \(--prompt-ids\) instead$/,
    ],
    [
      ['score', '--model', model, '--text', 'hi', '--backend', 'reference'],
      /has no tokenizer\.json; give the tokens as ids \(--ids\) instead$/,
    ],
    [
      ['eval', '--model', model, '--benchmarks', `toy=${data}`, '--backend', 'reference', '--out', out],
      /has no tokenizer\.json; copy the tokenizer files \(tokenizer\.json, tokenizer_config\.json\) of the model it came from into it$/,
    ],
  ];
  for (const [args, want] of cases) {
    const r = red(args);
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.equal(r.stderr.split('\n').length, 2, `${args[0]}: not one line: ${r.stderr}`);
    assert.match(r.stderr.trim(), want, args[0]);
  }
});

test('RED_ISA=sse: one line with the accepted values; RED_DEBUG=1 shows the stack', (t) => {
  if (loadNativeBackend() === null) {
    t.skip('the native addon is not built');
    return;
  }
  const args = ['generate', '--model', model, '--prompt-ids', '1,2', '--max-tokens', '1', '--backend', 'native'];
  const r = red(args, { RED_ISA: 'sse' });
  assert.equal(r.code, 1);
  assert.equal(
    r.stderr,
    `red: RED_ISA must be avx512, avx2 or portable, got 'sse'; unset it to use the best kernels this CPU runs\n`,
  );
  const debug = red(args, { RED_ISA: 'sse', RED_DEBUG: '1' });
  assert.equal(debug.code, 1);
  assert.match(debug.stderr, /RED_ISA must be.*\n\s+at /);
});
