// The built-in task: iterate one fixed map, f(n) = 10^n mod 97, k times from a start 1..96, at
// five difficulty levels (level k: "Compute f^3(46), where f(n) = 10^n mod 97.": 46 → 32 → 61 →
// 82). f is a permutation of 1..96 with no fixed point and long cycles (12, 28 and 56), so no
// chain short-cuts. Each problem carries its worked solution as data: the direct result (what a
// model that knows f^k by heart writes) and the chain of values (what the teacher writes out).
// A small model that knows f's table (its pretraining facts) answers one step directly and two
// sometimes; longer chains need the chain written out, each value looked up from the one before
// it: the same step at every level, so it can be learnt from worked examples (the Extend of the
// paper). Train and held-out problems never overlap: the split is a hash of the problem text.
import { fail } from '../../util/errors.ts';
import { Rng } from '../../util/rng.ts';

export type Level = 1 | 2 | 3 | 4 | 5;
export const LEVELS: readonly Level[] = [1, 2, 3, 4, 5];
export type Split = 'train' | 'test';

/** The solution of one problem as plain statements the teacher arranges into text. */
export interface Worked {
  /** What is asked, as a phrase: "apply f 3 times to 46". */
  goal: string;
  /** The direct result in one line: "f^3(46) = 82" (one step: "46 → 32", as f's table writes it). */
  direct: string;
  /** Every value from the start to the answer: [46, 32, 61, 82]. */
  chain: number[];
}

export interface Problem {
  level: Level;
  /** Which generator made it (for statistics and tests). */
  kind: string;
  /** The problem statement: "Compute f^3(46), where f(n) = 10^n mod 97." */
  text: string;
  /** The exact answer, a positive integer. */
  answer: string;
  worked: Worked;
}

type Generator = (rng: Rng) => Omit<Problem, 'level' | 'kind'>;

/** Uniform integer in [lo, hi]. */
function between(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

/** The map every problem iterates: f(n) = BASE^n mod MODULUS on 1..MODULUS−1. */
export const MODULUS = 97;
export const BASE = 10;

/** f(n) = 10^n mod 97, by repeated multiplication (n < 97). */
export function f(n: number): number {
  let r = 1;
  for (let i = 0; i < n; i++) r = (r * BASE) % MODULUS;
  return r;
}

/** One line of f's table as every text writes it: "46 → 32". */
export function step(n: number): string {
  return `${n} → ${f(n)}`;
}

/** f applied k times to s. */
function chain(s: number, k: number): Omit<Problem, 'level' | 'kind'> {
  const values = [s];
  for (let e = 0; e < k; e++) values.push(f(values[e]));
  const x = values[k];
  return {
    text: `Compute f^${k}(${s}), where f(n) = ${BASE}^n mod ${MODULUS}.`,
    answer: String(x),
    worked: { goal: `apply f ${k} times to ${s}`, direct: k === 1 ? step(s) : `f^${k}(${s}) = ${x}`, chain: values },
  };
}

/** Level k: f applied k times to a start 1..96 (one kind per level). */
function levelGenerators(level: Level): Record<string, Generator> {
  return { chain: (rng) => chain(between(rng, 1, MODULUS - 1), level) };
}

const GENERATORS: Record<Level, Record<string, Generator>> = {
  1: levelGenerators(1),
  2: levelGenerators(2),
  3: levelGenerators(3),
  4: levelGenerators(4),
  5: levelGenerators(5),
};

/** FNV-1a of the text: decides the split from the problem alone, whatever seed drew it. */
function textHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** About 1 problem in 4 is held out: 120 of the 480. */
export function splitOf(text: string): Split {
  return textHash(text) % 4 === 0 ? 'test' : 'train';
}

/** One problem of `level` (any split). */
export function generateProblem(rng: Rng, level: Level): Problem {
  const kinds = GENERATORS[level];
  const kind = pick(rng, Object.keys(kinds));
  return { level, kind, ...kinds[kind](rng) };
}

/**
 * `count` distinct problems of `split` at the given level weights (default uniform), drawn from
 * a seeded stream; the problems of the other split are rejected, so train and test are disjoint.
 * With `repeats`, a problem may recur (as facts do in pretraining text), still never from the other split.
 */
export function generateProblems(options: {
  seed: number;
  count: number;
  split: Split;
  levelWeights?: readonly number[];
  exclude?: ReadonlySet<string>;
  /** Allow a problem to recur (a pretraining stream); default false: all distinct. */
  repeats?: boolean;
}): Problem[] {
  const weights = options.levelWeights ?? [1, 1, 1, 1, 1];
  if (weights.length !== 5 || weights.some((w) => !(w >= 0)) || weights.every((w) => w === 0)) {
    fail(`level weights must be 5 non-negative numbers, not all 0; got ${JSON.stringify(weights)}`);
  }
  const total = weights.reduce((a, b) => a + b, 0);
  const rng = new Rng(options.seed);
  const seen = new Set<string>(options.exclude ?? []);
  const out: Problem[] = [];
  // The level is drawn first and kept until a fresh problem of that level turns up, so the
  // level mix follows the weights even where a level's small kinds run out of new problems.
  while (out.length < options.count) {
    let u = rng.uniform() * total;
    let level: Level = 5;
    for (const l of LEVELS) {
      if (u < weights[l - 1]) {
        level = l;
        break;
      }
      u -= weights[l - 1];
    }
    for (let attempt = 0; ; attempt++) {
      if (attempt >= 1000)
        fail(
          `could only generate ${out.length} distinct level-${level} ${options.split} problems of the ${options.count} asked; ask for fewer`,
        );
      const p = generateProblem(rng, level);
      if (splitOf(p.text) !== options.split || (!options.repeats && seen.has(p.text))) continue;
      seen.add(p.text);
      out.push(p);
      break;
    }
  }
  return out;
}

/** Every problem of a split, each level shuffled by `seed`, the levels taking turns (1, 2, 3, 4, 5, 1, …). */
export function allProblems(split: Split, seed: number): Problem[] {
  const rng = new Rng(seed);
  const perLevel = LEVELS.map((level) =>
    rng.shuffle(
      Array.from({ length: MODULUS - 1 }, (_, i): Problem => ({ level, kind: 'chain', ...chain(i + 1, level) })).filter(
        (p) => splitOf(p.text) === split,
      ),
    ),
  );
  const out: Problem[] = [];
  for (let i = 0; i < MODULUS; i++) for (const ps of perLevel) if (i < ps.length) out.push(ps[i]);
  return out;
}
