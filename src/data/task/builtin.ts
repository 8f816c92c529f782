// The built-in task as a dataset on disk: train and held-out JSONL in the paper's format
// (`problem`, `answer`, `distill`, plus `level`, `kind` and the short `solution`), so it goes
// through the same loader as real data, with the tiny model's tokenizer beside it.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../../util/errors.ts';
import { writeFileAtomic } from '../../util/fs.ts';
import { Rng } from '../../util/rng.ts';
import { allProblems, type Level, type Split } from './problems.ts';
import { shortSolution, teacherTrace } from './teacher.ts';
import { writeBuiltinTokenizer } from './tokenizer.ts';

export interface BuiltinRow {
  problem: string;
  answer: string;
  /** The teacher's long R1-style trace (the offline member). */
  distill: string;
  /** The short worked solution (pretraining text). */
  solution: string;
  level: Level;
  kind: string;
}

/**
 * The first `count` (default all) problems of one split with their traces, in a seeded order whose
 * levels take turns; the same (split, seed, count) gives the same rows, and a smaller count a prefix.
 */
export function builtinRows(split: Split, count: number | undefined, seed: number): BuiltinRow[] {
  // Separate streams per split so the train rows do not change when --test changes.
  const streamSeed = (seed ^ (split === 'train' ? 0x7a11 : 0x7e57)) >>> 0;
  const all = allProblems(split, streamSeed);
  if (count !== undefined && count > all.length)
    fail(`the built-in task has ${all.length} ${split} problems; ask for at most ${all.length}, not ${count}`);
  const problems = all.slice(0, count);
  const wording = new Rng(streamSeed ^ 0x5eed);
  return problems.map((p) => ({
    problem: p.text,
    answer: p.answer,
    distill: teacherTrace(p, wording),
    solution: shortSolution(p),
    level: p.level,
    kind: p.kind,
  }));
}

export interface BuiltinDatasetOptions {
  /** Folder to write train.jsonl, test.jsonl, tokenizer.json and tokenizer_config.json into. */
  out: string;
  seed: number;
  /** Rows of each split (default: all the split has). */
  train?: number;
  test?: number;
}

export interface BuiltinDatasetFiles {
  train: string;
  test: string;
  /** Rows per level in the train and test files. */
  levels: { train: Record<Level, number>; test: Record<Level, number> };
}

/** The rows of both splits. */
export interface BuiltinDataset {
  train: BuiltinRow[];
  test: BuiltinRow[];
}

/** Both splits drawn (and the sizes checked): a size a split cannot give fails here, before anything is written. */
export function drawBuiltinDataset(options: Omit<BuiltinDatasetOptions, 'out'>): BuiltinDataset {
  for (const key of ['train', 'test'] as const) {
    const n = options[key];
    if (n !== undefined && (!Number.isInteger(n) || n < 1)) fail(`--${key} must be a positive integer, got ${n}`);
  }
  if (!Number.isInteger(options.seed) || options.seed < 0)
    fail(`--seed must be a non-negative integer, got ${options.seed}`);
  return {
    train: builtinRows('train', options.train, options.seed),
    test: builtinRows('test', options.test, options.seed),
  };
}

/** Writes the dataset into `options.out`; `rows`: the splits, when the caller drew them first (to lock the folder after). */
export function writeBuiltinDataset(
  options: BuiltinDatasetOptions,
  rows: BuiltinDataset = drawBuiltinDataset(options),
): BuiltinDatasetFiles {
  mkdirSync(options.out, { recursive: true });
  const files = { train: path.join(options.out, 'train.jsonl'), test: path.join(options.out, 'test.jsonl') };
  const levels = { train: countLevels([]), test: countLevels([]) };
  for (const split of ['train', 'test'] as const) {
    levels[split] = countLevels(rows[split]);
    writeFileAtomic(files[split], rows[split].map((r) => JSON.stringify(r)).join('\n') + '\n');
  }
  writeBuiltinTokenizer(options.out);
  return { ...files, levels };
}

function countLevels(rows: readonly BuiltinRow[]): Record<Level, number> {
  const out: Record<Level, number> = { 1: 0, 2: 0, 3: 0, 4: 0, 5: 0 };
  for (const r of rows) out[r.level]++;
  return out;
}
