// The built-in task: long addition and multiplication by one digit at five difficulty levels, the
// operands one digit longer at each level (level 1: 2-digit + 1-digit, level 5: 5-digit numbers).
// Each problem carries its worked solution as data: the direct result (what a model that adds in
// its head writes) and the column-by-column procedure with carries (what the teacher writes out).
// A small model answers short sums directly; long ones need the procedure, which is local and
// the same at every length, so it can be learnt from worked examples (the Extend of the paper).
// Train and held-out problems never overlap: the split is a hash of the problem text.
import { fail } from '../../util/errors.ts';
import { Rng } from '../../util/rng.ts';

export type Level = 1 | 2 | 3 | 4 | 5;
export const LEVELS: readonly Level[] = [1, 2, 3, 4, 5];
export type Split = 'train' | 'test';

/** The solution of one problem as plain statements the teacher arranges into text. */
export interface Worked {
  /** What is asked, as a phrase: "add 4821 and 3795". */
  goal: string;
  /** The direct result in one line: "4821+3795 = 8616". */
  direct: string;
  /** The column procedure, one line per column from the right ("2+9+1 = 12, write 2 carry 1"). */
  columns: string[];
  /** How the written digits give the answer ("Reading the written digits from the left: 8616"). */
  readout: string;
  /** A check of the result by the inverse operation ("8616-3795 = 4821"). */
  check: string;
}

export interface Problem {
  level: Level;
  /** Which generator made it (for statistics and tests). */
  kind: string;
  /** The problem statement: "Compute 4821+3795." */
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

/** A uniform n-digit number (no leading zero). */
function digits(rng: Rng, n: number): number {
  return between(rng, 10 ** (n - 1), 10 ** n - 1);
}

const PLACES = ['ones', 'tens', 'hundreds', 'thousands', 'ten-thousands', 'hundred-thousands', 'millions'];

/** a + b column by column from the right: one line per column, the carry written out. */
function addition(a: number, b: number): Omit<Problem, 'level' | 'kind'> {
  const [da, db] = [String(a).split('').reverse(), String(b).split('').reverse()];
  const columns: string[] = [];
  let carry = 0;
  const written: number[] = [];
  for (let i = 0; i < Math.max(da.length, db.length); i++) {
    const terms = [da[i] ?? '0', db[i] ?? '0', ...(i > 0 ? [String(carry)] : [])];
    const sum = terms.reduce((acc, t) => acc + Number(t), 0);
    columns.push(`${PLACES[i]}: ${terms.join('+')} = ${sum}, write ${sum % 10} carry ${Math.floor(sum / 10)}`);
    written.push(sum % 10);
    carry = Math.floor(sum / 10);
  }
  if (carry > 0) columns.push(`the last carry ${carry} is written in front`);
  const c = a + b;
  return {
    text: `Compute ${a}+${b}.`,
    answer: String(c),
    worked: {
      goal: `add ${a} and ${b}`,
      direct: `${a}+${b} = ${c}`,
      columns,
      readout: `Reading the written digits from the left: ${c}`,
      check: `${c}-${b} = ${a}`,
    },
  };
}

/** a · d (one digit d) column by column from the right, the carry written out. */
function multiplication(a: number, d: number): Omit<Problem, 'level' | 'kind'> {
  const da = String(a).split('').reverse();
  const columns: string[] = [];
  let carry = 0;
  for (let i = 0; i < da.length; i++) {
    const v = Number(da[i]) * d + carry;
    columns.push(`${PLACES[i]}: ${da[i]}*${d}+${carry} = ${v}, write ${v % 10} carry ${Math.floor(v / 10)}`);
    carry = Math.floor(v / 10);
  }
  if (carry > 0) columns.push(`the last carry ${carry} is written in front`);
  const c = a * d;
  return {
    text: `Compute ${a}*${d}.`,
    answer: String(c),
    worked: {
      goal: `multiply ${a} by ${d}`,
      direct: `${a}*${d} = ${c}`,
      columns,
      readout: `Reading the written digits from the left: ${c}`,
      check: `${c}/${d} = ${a}`,
    },
  };
}

/**
 * Level 1: a 2-digit plus a 1-digit number (either order); level L ≥ 2: two L-digit numbers, or an L-digit
 * number times one digit 2–9. Each level adds one column to the procedure.
 */
function levelGenerators(level: Level): Record<string, Generator> {
  if (level === 1)
    return {
      add: (rng) => addition(digits(rng, 2), digits(rng, 1)),
      addSmallFirst: (rng) => addition(digits(rng, 1), digits(rng, 2)),
    };
  return {
    add: (rng) => addition(digits(rng, level), digits(rng, level)),
    mulDigit: (rng) => multiplication(digits(rng, level), between(rng, 2, 9)),
  };
}

const GENERATORS: Record<Level, Record<string, Generator>> = {
  1: levelGenerators(1),
  2: levelGenerators(2),
  3: levelGenerators(3),
  4: levelGenerators(4),
  5: levelGenerators(5),
};

/** The generator kinds of each level, for tests and statistics. */
export function kindsOf(level: Level): string[] {
  return Object.keys(GENERATORS[level]);
}

/** FNV-1a of the text: decides the split from the problem alone, whatever seed drew it. */
function textHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** About 1 problem in 8 of every kind is held out. */
export function splitOf(text: string): Split {
  return textHash(text) % 8 === 0 ? 'test' : 'train';
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
