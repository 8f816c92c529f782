// `red verify` as a user runs it: a child process of bin/red.js, single verdicts and JSONL
// streams (order kept, a malformed line reported and skipped over, the process exits by itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { tempDir } from '../helpers/tmp.ts';

const RED = new URL('../../bin/red.js', import.meta.url).pathname;

function red(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RED, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(stdin ?? '');
  });
}

test('red verify --gold --pred prints true/false, exit code 0 when equal and 1 when not (as cmp and diff)', async () => {
  // A symbolic comparison: it runs in a worker thread started under bin/red.js's tsx registration.
  const yes = await red([
    'verify',
    '--gold',
    'x^2-1',
    '--pred',
    'so the answer is \\boxed{(x+1)(x-1)}',
    '--workers',
    '1',
  ]);
  assert.equal(yes.code, 0, yes.stderr);
  assert.equal(yes.stdout, 'true\n');
  const no = await red(['verify', '--gold', '3', '--pred', '\\boxed{4}', '--explain', '--workers', '1']);
  assert.equal(no.code, 1, no.stderr);
  assert.deepEqual(no.stdout.trim().split('\n'), [
    'false',
    'reason: not_equal',
    'extracted: 4',
    'target: boxed',
    'rule: number (exact)',
  ]);
});

test('red verify --explain names the extraction target and the comparison rule that decided', async () => {
  // No box: the last number of the text, compared as exact numbers.
  const num = await red([
    'verify',
    '--gold',
    '34',
    '--pred',
    'so the largest $n$ is 34.',
    '--explain',
    '--workers',
    '1',
  ]);
  assert.equal(num.code, 0, num.stderr);
  assert.deepEqual(num.stdout.trim().split('\n'), [
    'true',
    'reason: equal',
    'extracted: 34',
    'target: number',
    'rule: identical after normalisation',
  ]);
  // Display math holding an inequality, against an interval.
  const iv = await red([
    'verify',
    '--gold',
    '[-2,7]',
    '--pred',
    'Hence\n\\[-2 \\le x \\le 7\\]',
    '--explain',
    '--workers',
    '1',
  ]);
  assert.equal(iv.code, 0, iv.stderr);
  assert.deepEqual(iv.stdout.trim().split('\n'), [
    'true',
    'reason: equal',
    'extracted: -2 \\le x \\le 7',
    'target: latex',
    'rule: inequality as interval',
  ]);
  // A rearranged, scaled equation decided by the CAS's proportionality test.
  const eq = await red([
    'verify',
    '--gold',
    '2x+4y-3=0',
    '--pred',
    '\\boxed{y = -x/2 + 3/4}',
    '--explain',
    '--workers',
    '1',
  ]);
  assert.equal(eq.code, 0, eq.stderr);
  assert.deepEqual(eq.stdout.trim().split('\n').slice(3), ['target: boxed', 'rule: equation (rearranged/scaled)']);

  // In a JSONL stream, --explain adds the same fields to each line.
  const rows = [
    { gold: '0.5', pred: 'About 50 percent of them.' },
    { gold: '(3,2)', pred: '\\boxed{(p,q) = (3,2)}' },
  ];
  const jl = await red(
    ['verify', '--jsonl', '-', '--explain', '--workers', '1'],
    rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
  );
  assert.equal(jl.code, 0, jl.stderr);
  assert.deepEqual(
    jl.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>),
    [
      { ...rows[0], equal: true, extracted: '50\\%', target: 'number', rule: 'percent' },
      { ...rows[1], equal: true, extracted: '(p,q) = (3,2)', target: 'boxed', rule: 'equation (right side)' },
    ],
  );
});

test('red verify without --gold/--pred is one clear error line, exit code 2 (trouble, as cmp and diff)', async () => {
  const r = await red(['verify', '--gold', '3']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^red: .*--gold and --pred/);
});

test('red verify --jsonl: verdicts added in input order, a malformed line reported, the run goes on, exit code 2', async () => {
  const rows = [
    { gold: '5', pred: '\\boxed{5}', id: 0 },
    { gold: 'x^2+2x+1', pred: 'work \\boxed{(x+1)^2}', id: 1 },
    'this line is not JSON',
    { gold: '2', pred: '\\boxed{9^{9^{9^{9}}}}', id: 3 },
    { gold: '\\{1,2\\}', pred: '\\boxed{\\{2,1\\}}', id: 4 },
    { gold: '7', id: 5 },
    { gold: '0.5', pred: '\\boxed{\\frac{1}{3}}', id: 6 },
  ];
  // Many quick numeric lines after slow ones: if output followed completion order, they would overtake.
  for (let i = 7; i < 300; i++) rows.push({ gold: String(i), pred: `\\boxed{${i % 2 === 0 ? i : i + 1}}`, id: i });
  const text = rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
  const dir = tempDir('red-verify-');
  const file = path.join(dir, 'pairs.jsonl');
  writeFileSync(file, text);
  // Two workers reading the file (so slow and quick lines finish out of order), one on stdin.
  for (const args of [
    ['--jsonl', file, '--workers', '2'],
    ['--jsonl', '-', '--workers', '1'],
  ]) {
    const r = await red(['verify', ...args, '--timeout-ms', '1500'], args[1] === '-' ? text : undefined);
    assert.equal(r.code, 2, r.stderr); // a line that is not {"gold", "pred"}: trouble, the worst verdict of the stream
    const out = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(out.length, rows.length);
    assert.deepEqual(
      out.slice(0, 7).map((o) => [o.id, o.equal]),
      [
        [0, true],
        [1, true],
        [undefined, undefined],
        [3, false],
        [4, true],
        [5, undefined],
        [6, false],
      ],
    );
    assert.equal(out[2].line, 3);
    assert.match(String(out[2].error), /not JSON/);
    assert.equal(out[3].reason, 'timeout');
    assert.match(String(out[5].error), /"pred"/);
    for (let i = 7; i < 300; i++) {
      assert.equal(out[i].id, i, `line ${i + 1} out of order`);
      assert.equal(out[i].equal, i % 2 === 0);
    }
  }
});

test('red verify --jsonl: exit code 0 when every line is equal, 1 when one is not', async () => {
  const line = (gold: string, pred: string) => JSON.stringify({ gold, pred });
  const same = await red(['verify', '--jsonl', '-', '--workers', '1'], `${line('2', '\\boxed{2}')}\n`);
  assert.equal(same.code, 0, same.stderr);
  const differs = await red(
    ['verify', '--jsonl', '-', '--workers', '1'],
    `${line('2', '\\boxed{2}')}\n${line('3', '\\boxed{4}')}\n`,
  );
  assert.equal(differs.code, 1, differs.stderr);
  assert.equal(differs.stdout.trim().split('\n').length, 2);
});

test('red verify --jsonl on a missing file is one clear error line', async () => {
  const r = await red(['verify', '--jsonl', '/nonexistent/pairs.jsonl']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^red: cannot read \/nonexistent\/pairs\.jsonl/);
});

test('idle CAS workers do not keep a process alive (no closeVerifier call)', async () => {
  const index = new URL('../../src/reward/index.ts', import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(index)}); console.log((await m.verify('x^2', '\\\\boxed{x\\\\cdot x}')).equal);`;
  const r = await new Promise<{ code: number | null; stdout: string; ms: number }>((resolve, reject) => {
    const t = performance.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, ms: performance.now() - t });
    });
  });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'true\n');
});

test('red verify --explain names the answer form that decided (issue 30)', async () => {
  const boxes = await red([
    'verify',
    '--gold',
    '\\{2,5\\}',
    '--pred',
    'The roots are \\boxed{2} and \\boxed{5}.',
    '--explain',
    '--workers',
    '1',
  ]);
  assert.equal(boxes.code, 0, boxes.stderr);
  assert.deepEqual(boxes.stdout.trim().split('\n'), [
    'true',
    'reason: equal',
    'extracted: 2,5',
    'target: boxed',
    'rule: set (any order)',
    'form: several-boxes',
  ]);
  const rows = [
    { gold: '2000.75', pred: '2000,75' },
    { gold: '\\frac14', pred: '\\boxed{x = 2+2 = 1/4 \\approx 0.2}' },
  ];
  const jl = await red(
    ['verify', '--jsonl', '-', '--explain', '--workers', '1'],
    rows.map((r) => JSON.stringify(r)).join('\n') + '\n',
  );
  assert.equal(jl.code, 0, jl.stderr);
  const forms = jl.stdout
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { equal: boolean; form?: string }).form);
  assert.deepEqual(forms, ['decimal-comma', 'approx-chain']);
});

test('red verify --no-strict and a JSONL line\'s "strict": false compare g(s) with g(t), as Math-Verify\'s strict=False', async () => {
  // Math-Verify renames the prediction's free variables to the gold's only when strict is off.
  const strict = await red(['verify', '--gold', 'g(t)', '--pred', '\\boxed{g(s)}', '--workers', '1']);
  assert.equal(strict.stdout.trim(), 'false', strict.stderr);
  const loose = await red(['verify', '--gold', 'g(t)', '--pred', '\\boxed{g(s)}', '--no-strict', '--workers', '1']);
  assert.equal(loose.stdout.trim(), 'true', loose.stderr);
  const lines = [
    { gold: 'g(t)', pred: '\\boxed{g(s)}' },
    { gold: 'g(t)', pred: '\\boxed{g(s)}', strict: false },
    { gold: 't^2', pred: '\\boxed{s^3}', strict: false },
    { gold: 'g(t)', pred: '\\boxed{g(s)}', strict: 'no' },
  ];
  const out = await red(['verify', '--jsonl', '-', '--workers', '1'], lines.map((l) => JSON.stringify(l)).join('\n'));
  const rows = out.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { equal?: boolean; error?: string });
  assert.deepEqual(
    rows.slice(0, 3).map((r) => r.equal),
    [false, true, false],
    out.stdout,
  );
  assert.match(rows[3].error ?? '', /"strict" \(true or false\)/);
});
