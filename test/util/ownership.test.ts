// Folders red wrote before it marked them are still recognised by what red leaves in them, the
// most specific kind first (a demo folder also holds a report's files, a run folder an eval's);
// a folder of anything else is nobody's kind; a marker decides over the files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { folderState, MARKER_FILE } from '../../src/util/ownership.ts';
import { tempDir } from '../helpers/tmp.ts';

function folder(entries: string[]): string {
  const dir = tempDir('red-owner-');
  for (const e of entries) {
    if (e.endsWith('/')) mkdirSync(path.join(dir, e), { recursive: true });
    else writeFileSync(path.join(dir, e), '');
  }
  return dir;
}

test('unmarked folders: the kind by what red leaves there, the most specific first', () => {
  const cases: [string[], string | null][] = [
    [['train-config.yaml', 'runs/', 'results.json', 'results.md', 'figures/', 'report.html', 'base/', 'data/'], 'demo'],
    [['config.yaml', 'metrics.jsonl', 'checkpoints/', 'run.json', 'samples.jsonl', 'results.json'], 'run'],
    [['config.yaml', 'checkpoints/'], 'run'],
    [['config.json', 'model.safetensors', 'pretrain.json', 'tokenizer.json'], 'model'],
    [['run.json', 'samples.jsonl', 'results.json', 'results.md'], 'eval'],
    [['report.html', 'results.json', 'results.md', 'figures/'], 'report'],
    [['train.jsonl', 'test.jsonl', 'tokenizer.json', 'tokenizer_config.json'], 'data'],
    // A model folder from the Hub, a user's config beside nothing else, notes: nobody's kind.
    [['config.json', 'model.safetensors', 'tokenizer.json'], null],
    [['config.yaml'], null],
    [['notes.txt', 'photos/'], null],
  ];
  for (const [entries, kind] of cases) {
    const state = folderState(folder(entries));
    assert.equal(state.kind, kind, entries.join(' '));
    assert.deepEqual(state.entries, [...entries].sort());
  }
});

test("a marker decides the kind; red's lock and marker are not listed as entries", () => {
  const dir = folder(['notes.txt', '.red.lock']);
  writeFileSync(path.join(dir, MARKER_FILE), JSON.stringify({ kind: 'eval', command: 'red eval' }));
  assert.deepEqual(folderState(dir), { kind: 'eval', entries: ['notes.txt'] });
});
