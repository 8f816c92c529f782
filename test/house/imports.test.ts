// The import graph of src/ follows one chain of layers (STYLE.md, issue 18):
// util ← {engine, hub, reward, rl} ← {model, data} ← rollout ← {train, eval, serve} ← report ← demo ← bench ← cli.
// A module may import its own folder or a folder of a lower layer; no cycles between files.
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

/** Relative imports of a file, static (`import … from`, `export … from`) and dynamic (`import('…')`). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
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
