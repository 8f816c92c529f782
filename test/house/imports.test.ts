// The import graph of src/ follows one chain of layers (STYLE.md, issue 18):
// util ← {engine, hub, reward, rl} ← {model, data} ← rollout ← {train, eval, serve} ← report ← demo ← bench ← cli.
// A module may import its own folder or a folder of a lower layer; no cycles between files.
// Within src/train, the training-engine contract (issue 26): only the engines touch parameter buffers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const LAYER: Record<string, number> = {
  util: 0,
  engine: 1,
  hub: 1,
  reward: 1,
  rl: 1,
  model: 2,
  data: 2,
  rollout: 3,
  train: 4,
  eval: 4,
  serve: 4,
  report: 5,
  demo: 6,
  bench: 7,
  cli: 8,
};
const SRC = path.resolve('src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|mts|mjs)$/.test(name) ? [p] : [];
  });
}

/**
 * Relative imports of a file, static (`import … from`, `export … from`) and dynamic (`import('…')`);
 * `values`: leaving out `import type` (types carry no buffers).
 */
function importsOf(file: string, values = false): string[] {
  let text = readFileSync(file, 'utf8');
  if (values) text = text.replace(/^\s*import\s+type\s[^;]*?from\s*['"][^'"]+['"]/gms, '');
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm)];
  return specs.map((m) => path.resolve(path.dirname(file), m[1]!));
}

const folderOf = (file: string): string => path.relative(SRC, file).split(path.sep)[0]!;

test('every src/ import goes down the layer chain', () => {
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = folderOf(file);
    assert.ok(from in LAYER, `src/${from}/ has no layer in test/house/imports.test.ts: add it to LAYER`);
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to === from || !target.startsWith(SRC)) continue;
      if (!(to in LAYER) || LAYER[to]! >= LAYER[from]!)
        bad.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
    }
  }
  assert.deepEqual(bad, [], `imports against the chain:\n${bad.join('\n')}`);
});

test('no import cycle between files of src/', () => {
  const graph = new Map(sourceFiles(SRC).map((f) => [f, importsOf(f).filter((t) => t.startsWith(SRC))]));
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, stack: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...stack.slice(stack.indexOf(f)), f].map((p) => path.relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of graph.get(f) ?? []) visit(t, [...stack, f]);
    state.set(f, 'done');
  };
  for (const f of graph.keys()) visit(f, []);
  assert.deepEqual(cycles, [], `import cycles:\n${cycles.join('\n')}`);
});

// The training-engine contract (src/train/engine.ts): the trainer, ReLIFT's SFT step, pretraining,
// weight sync and checkpoints reach the policy's compute through it only. Rule: no file of src/train
// outside src/train/engines/ imports (other than `import type`) the model's compute
// (src/model/qwen2.ts), a backend (src/engine/, except precision.ts: precision names and parsers),
// or the AdamW of src/train/optimizer.ts; and no file outside src/train/engines/ imports that AdamW
// (red bench's train step goes through the native engine too).
test('above the training-engine contract nothing touches parameter buffers: src/train reaches them through src/train/engines only', () => {
  const engines = path.join(SRC, 'train', 'engines') + path.sep;
  const optimizer = path.join(SRC, 'train', 'optimizer.ts');
  const touchesBuffers = (target: string): boolean =>
    target === path.join(SRC, 'model', 'qwen2.ts') ||
    target === optimizer ||
    (target.startsWith(path.join(SRC, 'engine') + path.sep) && target !== path.join(SRC, 'engine', 'precision.ts'));
  const bad: string[] = [];
  for (const file of sourceFiles(SRC)) {
    if (file.startsWith(engines)) continue;
    const inTrain = folderOf(file) === 'train';
    for (const target of importsOf(file, true))
      if ((inTrain && touchesBuffers(target)) || target === optimizer)
        bad.push(`${path.relative(SRC, file)} → ${path.relative(SRC, target)}`);
  }
  assert.deepEqual(bad, [], `imports that reach past the training-engine contract:\n${bad.join('\n')}`);
});
