// The built-in task: short math problems with exact answers at five difficulty levels, each with
// its worked solution as data (steps, checks, an alternative route) for the teacher to write out.
// Train and held-out problems never overlap: the split is a hash of the problem text.
// Levels: 1 one-step sums with a single-digit operand and the times table; 2 two-digit sums,
// differences and exact division; 3 two-step arithmetic, ax+b=c, remainders; 4 fractions,
// ax-b=cx+d, powers mod m, three-term expressions; 5 word problems, a 2x2 system, (a-b)(c+d)-e.
import { fail } from '../../util/errors.ts';
import { Rng } from '../../util/rng.ts';

export type Level = 1 | 2 | 3 | 4 | 5;
export const LEVELS: readonly Level[] = [1, 2, 3, 4, 5];
export type Split = 'train' | 'test';

/** The solution of one problem as plain statements the teacher arranges into text. */
export interface Worked {
  /** What is asked, as a phrase: "compute 37+45", "solve 3x+5=26 for x". */
  goal: string;
  /** The short solution's steps, in order ("37+45 = 82"). */
  steps: string[];
  /** A check of the result by an inverse operation or substitution. */
  checks: string[];
  /** The same result reached another way. */
  alternative: string[];
}

export interface Problem {
  level: Level;
  /** Which generator made it (for statistics and tests). */
  kind: string;
  /** The problem statement, tens of characters. */
  text: string;
  /** The exact answer: an integer ("82", "-3") or a reduced fraction ("5/6"). */
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

export function gcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** A coefficient as written before a variable: 1 → "", -1 → "-". */
function coef(k: number): string {
  return k === 1 ? '' : k === -1 ? '-' : String(k);
}

/** n/d in lowest terms, as "n/d" or "n" when it is whole (d > 0). */
export function fraction(n: number, d: number): string {
  const g = gcd(n, d) || 1;
  const [rn, rd] = [n / g, d / g];
  return rd === 1 ? String(rn) : `${rn}/${rd}`;
}

/** "6/8 = 3/4", or just "5/6" when already in lowest terms. */
function withReduced(raw: string, reduced: string): string {
  return raw === reduced ? raw : `${raw} = ${reduced}`;
}

/** The step rewriting p/q over the common denominator d (none when q already is d). */
function expand(p: number, q: number, d: number): string[] {
  return q === d ? [] : [`${p}/${q} = ${p * (d / q)}/${d}`];
}

const NAMES = ['Ann', 'Ben', 'Cal', 'Dee', 'Eli', 'Fay', 'Gus', 'Ivy', 'Max', 'Sam'];
const ITEMS = ['pens', 'cards', 'eggs', 'books', 'cups', 'coins'];

const level1: Record<string, Generator> = {
  add1(rng) {
    const [a, b] = [between(rng, 1, 9), between(rng, 1, 9)];
    return {
      text: `Compute ${a}+${b}.`,
      answer: String(a + b),
      worked: {
        goal: `compute ${a}+${b}`,
        steps: [`${a}+${b} = ${a + b}`],
        checks: [`${a + b}-${b} = ${a}`],
        alternative: [`${b}+${a} = ${a + b}`],
      },
    };
  },
  mul1(rng) {
    const [a, b] = [between(rng, 2, 9), between(rng, 2, 9)];
    const c = a * b;
    return {
      text: `Compute ${a}*${b}.`,
      answer: String(c),
      worked: {
        goal: `compute ${a}*${b}`,
        steps: [`${a}*${b} = ${c}`],
        checks: [`${c}/${b} = ${a}`],
        alternative: [`${a}*${b} = ${a}*10-${a}*${10 - b} = ${a * 10}-${a * (10 - b)} = ${c}`],
      },
    };
  },
  addSmall(rng) {
    const [a, b] = [between(rng, 10, 99), between(rng, 1, 9)];
    const [t, u] = [a - (a % 10), a % 10];
    return {
      text: `Compute ${a}+${b}.`,
      answer: String(a + b),
      worked: {
        goal: `compute ${a}+${b}`,
        // Digit by digit, so a held-out sum is built from one-digit facts seen in training.
        steps: [`${u}+${b} = ${u + b}`, `${t}+${u + b} = ${a + b}`],
        checks: [`${a + b}-${b} = ${a}`],
        alternative: [`${a}+${b} = ${a + b}`],
      },
    };
  },
  subSmall(rng) {
    const [a, b] = [between(rng, 10, 99), between(rng, 1, 9)];
    // Units first, borrowing ten when the units digit is too small: 23-5 → 13-5 = 8, 10+8 = 18.
    const [t, u] = [a - (a % 10), a % 10];
    const [hi, lo] = u >= b ? [u, t] : [u + 10, t - 10];
    return {
      text: `Compute ${a}-${b}.`,
      answer: String(a - b),
      worked: {
        goal: `compute ${a}-${b}`,
        steps: [`${hi}-${b} = ${hi - b}`, `${lo}+${hi - b} = ${a - b}`],
        checks: [`${a - b}+${b} = ${a}`],
        alternative: [`${b}+${a - b} = ${a}`, `So ${a}-${b} = ${a - b}`],
      },
    };
  },
};

const level2: Record<string, Generator> = {
  add(rng) {
    const [a, b] = [between(rng, 10, 99), between(rng, 10, 99)];
    const c = a + b;
    const [ta, tb] = [a - (a % 10), b - (b % 10)];
    return {
      text: `Compute ${a}+${b}.`,
      answer: String(c),
      worked: {
        goal: `compute ${a}+${b}`,
        steps: [`${a % 10}+${b % 10} = ${(a % 10) + (b % 10)}`, `${ta}+${tb} = ${ta + tb}`, `${ta + tb}+${(a % 10) + (b % 10)} = ${c}`],
        checks: [`${c}-${b} = ${a}`],
        alternative: [`${a}+${b} = ${c}`],
      },
    };
  },
  sub(rng) {
    const a = between(rng, 20, 99);
    const b = between(rng, 10, a - 1);
    const c = a - b;
    const tb = b - (b % 10);
    return {
      text: `Compute ${a}-${b}.`,
      answer: String(c),
      worked: {
        goal: `compute ${a}-${b}`,
        steps: [`${a}-${tb} = ${a - tb}`, `${a - tb}-${b % 10} = ${c}`],
        checks: [`${c}+${b} = ${a}`],
        alternative: [`${a}-${b} = ${c}`],
      },
    };
  },
  div(rng) {
    const [q, b] = [between(rng, 2, 19), between(rng, 2, 9)];
    const a = q * b;
    return {
      text: `Compute ${a}/${b}.`,
      answer: String(q),
      worked: {
        goal: `compute ${a}/${b}`,
        steps: [`${a}/${b} = ${q}`],
        checks: [`${q}*${b} = ${a}`],
        alternative: q >= 10
          ? [`${b}*10 = ${b * 10}`, `${a}-${b * 10} = ${a - b * 10}`, `${a - b * 10}/${b} = ${q - 10}`, `10+${q - 10} = ${q}`]
          : [`${b}*${q} = ${a}`, `so ${a}/${b} = ${q}`],
      },
    };
  },
};

const level3: Record<string, Generator> = {
  addMul(rng) {
    const [a, b, c] = [between(rng, 2, 30), between(rng, 2, 12), between(rng, 2, 9)];
    const p = b * c;
    return {
      text: `Compute ${a}+${b}*${c}.`,
      answer: String(a + p),
      worked: {
        goal: `compute ${a}+${b}*${c}`,
        steps: [`${b}*${c} = ${p}`, `${a}+${p} = ${a + p}`],
        checks: [`${a + p}-${p} = ${a}`, `${p}/${c} = ${b}`],
        alternative: [`${c}*${b} = ${p}`, `${p}+${a} = ${a + p}`],
      },
    };
  },
  parenMul(rng) {
    const plus = rng.int(2) === 0;
    const a = between(rng, 5, 20);
    const b = plus ? between(rng, 2, 15) : between(rng, 1, a - 1);
    const c = between(rng, 2, 9);
    const s = plus ? a + b : a - b;
    const op = plus ? '+' : '-';
    return {
      text: `Compute (${a}${op}${b})*${c}.`,
      answer: String(s * c),
      worked: {
        goal: `compute (${a}${op}${b})*${c}`,
        steps: [`${a}${op}${b} = ${s}`, `${s}*${c} = ${s * c}`],
        checks: [`${s * c}/${c} = ${s}`],
        alternative: [`${a}*${c} = ${a * c}`, `${b}*${c} = ${b * c}`, `${a * c}${op}${b * c} = ${s * c}`],
      },
    };
  },
  mul2(rng) {
    let a = between(rng, 11, 49);
    if (a % 10 === 0) a++; // a zero units digit makes the split into tens and units empty
    const b = between(rng, 2, 9);
    const [t, u] = [a - (a % 10), a % 10];
    return {
      text: `Compute ${a}*${b}.`,
      answer: String(a * b),
      worked: {
        goal: `compute ${a}*${b}`,
        steps: [`${t}*${b} = ${t * b}`, `${u}*${b} = ${u * b}`, `${t * b}+${u * b} = ${a * b}`],
        checks: [`${a * b}/${b} = ${a}`],
        alternative: [`${a}*${b} = ${a}*10-${a}*${10 - b} = ${a * 10}-${a * (10 - b)} = ${a * b}`],
      },
    };
  },
  linear(rng) {
    const [a, x, b] = [between(rng, 2, 9), between(rng, 1, 15), between(rng, 1, 30)];
    const plus = rng.int(2) === 0 || a * x <= b;
    const c = plus ? a * x + b : a * x - b;
    const lhs = plus ? `${a}x+${b}` : `${a}x-${b}`;
    const moved = plus ? `${c}-${b}` : `${c}+${b}`;
    return {
      text: `Solve ${lhs}=${c}.`,
      answer: String(x),
      worked: {
        goal: `solve ${lhs}=${c} for x`,
        steps: [`${a}x = ${moved} = ${a * x}`, `x = ${a * x}/${a} = ${x}`],
        checks: [`${a}*${x}${plus ? '+' : '-'}${b} = ${a * x}${plus ? '+' : '-'}${b} = ${c}`],
        alternative: [`x = (${moved})/${a}`, `(${moved})/${a} = ${a * x}/${a} = ${x}`],
      },
    };
  },
  mod(rng) {
    const m = between(rng, 3, 12);
    const a = between(rng, m + 1, 99);
    const k = Math.floor(a / m);
    const r = a % m;
    return {
      text: `Find ${a} mod ${m}.`,
      answer: String(r),
      worked: {
        goal: `find the remainder of ${a} divided by ${m}`,
        steps: [`${m}*${k} = ${m * k}`, `${a}-${m * k} = ${r}`],
        checks: [`${r} < ${m}`, `${m * k}+${r} = ${a}`],
        alternative: [`${m}*${k + 1} = ${m * (k + 1)}, which is more than ${a}`, `So the quotient is ${k} and ${a}-${m * k} = ${r}`],
      },
    };
  },
};

const level4: Record<string, Generator> = {
  fracAdd(rng) {
    const [q, s] = [between(rng, 2, 9), between(rng, 2, 9)];
    const [p, r] = [between(rng, 1, q - 1), between(rng, 1, s - 1)];
    const d = (q * s) / gcd(q, s);
    const [pp, rr] = [p * (d / q), r * (d / s)];
    const ans = fraction(pp + rr, d);
    const raw = `${pp + rr}/${d}`;
    return {
      text: `Compute ${p}/${q}+${r}/${s}.`,
      answer: ans,
      worked: {
        goal: `compute ${p}/${q}+${r}/${s}`,
        steps: [...expand(p, q, d), ...expand(r, s, d), `${pp}/${d}+${rr}/${d} = ${withReduced(raw, ans)}`],
        checks: [`${raw}-${rr}/${d} = ${pp}/${d}${pp / d === p / q && pp !== p ? ` = ${p}/${q}` : ''}`],
        alternative: [`${p}/${q}+${r}/${s} = (${p}*${s}+${r}*${q})/(${q}*${s})`, `(${p * s}+${r * q})/${q * s} = ${withReduced(`${p * s + r * q}/${q * s}`, fraction(p * s + r * q, q * s))}`],
      },
    };
  },
  linear2(rng) {
    // ax-b = cx+d with a > c, x ≥ 2 so that b = (a-c)x-d ≥ 1 leaves room for d ≥ 1.
    const c = between(rng, 1, 6);
    const a = between(rng, c + 1, 9);
    const x = between(rng, 2, 12);
    const k = a - c;
    const d = between(rng, 1, Math.min(30, k * x - 1));
    const b = k * x - d;
    return {
      text: `Solve ${a}x-${b}=${coef(c)}x+${d}.`,
      answer: String(x),
      worked: {
        goal: `solve ${a}x-${b}=${coef(c)}x+${d} for x`,
        steps: k === 1 ? [`${a}x-${coef(c)}x = ${d}+${b}`, `x = ${d + b}`] : [`${a}x-${coef(c)}x = ${d}+${b}`, `${k}x = ${d + b}`, `x = ${d + b}/${k} = ${x}`],
        checks: [`${a}*${x}-${b} = ${a * x - b}`, `${c}*${x}+${d} = ${c * x + d}`, `Both sides are ${a * x - b}`],
        alternative: [`Subtracting ${a}x from both sides: -${b} = ${coef(c - a)}x+${d}`, `${coef(c - a)}x = -${b}-${d} = ${-b - d}`, `x = ${-b - d}/${c - a} = ${x}`],
      },
    };
  },
  powMod(rng) {
    const [b, e, m] = [between(rng, 2, 9), between(rng, 3, 6), between(rng, 3, 11)];
    const steps: string[] = [];
    let v = b % m;
    // Successive powers reduced mod m: b^i mod m = (b^(i-1) mod m)·b mod m.
    steps.push(`${b} mod ${m} = ${v}`);
    for (let i = 2; i <= e; i++) {
      const next = (v * b) % m;
      steps.push(`${b}^${i}: ${v}*${b} = ${v * b}, ${v * b} mod ${m} = ${next}`);
      v = next;
    }
    const full = b ** e;
    return {
      text: `Find ${b}^${e} mod ${m}.`,
      answer: String(v),
      worked: {
        goal: `find ${b}^${e} mod ${m}`,
        steps,
        checks: [`${v} < ${m}`],
        alternative: [`${b}^${e} = ${full}`, `${m}*${Math.floor(full / m)} = ${m * Math.floor(full / m)}`, `${full}-${m * Math.floor(full / m)} = ${v}`],
      },
    };
  },
  fracSub(rng) {
    let q: number, s: number, p: number, r: number;
    do {
      [q, s] = [between(rng, 2, 9), between(rng, 2, 9)];
      [p, r] = [between(rng, 1, q - 1), between(rng, 1, s - 1)];
    } while (p * s === r * q); // a zero difference is no problem to pose
    let [qq, ss] = [q, s];
    if (p * s < r * q) [p, qq, r, ss] = [r, s, p, q]; // keep the result positive
    const d = (qq * ss) / gcd(qq, ss);
    const [pp, rr] = [p * (d / qq), r * (d / ss)];
    const ans = fraction(pp - rr, d);
    const raw = `${pp - rr}/${d}`;
    return {
      text: `Compute ${p}/${qq}-${r}/${ss}.`,
      answer: ans,
      worked: {
        goal: `compute ${p}/${qq}-${r}/${ss}`,
        steps: [...expand(p, qq, d), ...expand(r, ss, d), `${pp}/${d}-${rr}/${d} = ${withReduced(raw, ans)}`],
        checks: [`${raw}+${rr}/${d} = ${pp}/${d}${pp !== p ? ` = ${p}/${qq}` : ''}`],
        alternative: [`(${p}*${ss}-${r}*${qq})/(${qq}*${ss}) = ${withReduced(`${p * ss - r * qq}/${qq * ss}`, fraction(p * ss - r * qq, qq * ss))}`],
      },
    };
  },
  threeTerm(rng) {
    const [q, b] = [between(rng, 2, 12), between(rng, 2, 9)];
    const a = q * b;
    const [c, e] = [between(rng, 2, 9), between(rng, 2, 9)];
    const f = between(rng, 1, q + c * e - 1);
    const ce = c * e;
    const ans = q + ce - f;
    return {
      text: `Compute ${a}/${b}+${c}*${e}-${f}.`,
      answer: String(ans),
      worked: {
        goal: `compute ${a}/${b}+${c}*${e}-${f}`,
        steps: [`${a}/${b} = ${q}`, `${c}*${e} = ${ce}`, `${q}+${ce} = ${q + ce}`, `${q + ce}-${f} = ${ans}`],
        checks: [`${ans}+${f} = ${q + ce}`, `${q + ce}-${ce} = ${q}`, `${q}*${b} = ${a}`],
        alternative: [`${ce}-${f} = ${ce - f}`, `${q}+${ce - f} = ${ans}`],
      },
    };
  },
};

const level5: Record<string, Generator> = {
  boxes(rng) {
    const [name, item] = [pick(rng, NAMES), pick(rng, ITEMS)];
    const [a, b] = [between(rng, 3, 9), between(rng, 6, 15)];
    const c = between(rng, 2, a * b - 1);
    return {
      text: `${name} has ${a} bags of ${b} ${item} and gives away ${c}. How many are left?`,
      answer: String(a * b - c),
      worked: {
        goal: `find how many ${item} ${name} has left`,
        steps: [`${a}*${b} = ${a * b} ${item} in all`, `${a * b}-${c} = ${a * b - c}`],
        checks: [`${a * b - c}+${c} = ${a * b}`, `${a * b}/${b} = ${a} bags`],
        alternative: [`${b}*${a} = ${a * b}`, `${a * b}-${c} = ${a * b - c}`],
      },
    };
  },
  change(rng) {
    const name = pick(rng, NAMES);
    const [a, b] = [between(rng, 2, 9), between(rng, 2, 12)];
    const paid = (Math.floor((a * b) / 10) + 1 + rng.int(3)) * 10;
    return {
      text: `${name} buys ${a} pens at $${b} each and pays $${paid}. What is the change?`,
      answer: String(paid - a * b),
      worked: {
        goal: `find ${name}'s change`,
        steps: [`${a}*${b} = ${a * b} dollars`, `${paid}-${a * b} = ${paid - a * b}`],
        checks: [`${paid - a * b}+${a * b} = ${paid}`],
        alternative: [`${b}*${a} = ${a * b}`, `${paid}-${a * b} = ${paid - a * b}`],
      },
    };
  },
  system(rng) {
    const [x, y] = [between(rng, 2, 20), between(rng, 1, 19)];
    const [xx, yy] = x > y ? [x, y] : [y + 1, x];
    const [s, d] = [xx + yy, xx - yy];
    return {
      text: `x+y=${s} and x-y=${d}. Find x.`,
      answer: String(xx),
      worked: {
        goal: `find x when x+y=${s} and x-y=${d}`,
        steps: [`(x+y)+(x-y) = 2x = ${s}+${d} = ${2 * xx}`, `x = ${2 * xx}/2 = ${xx}`],
        checks: [`y = ${s}-${xx} = ${yy}`, `${xx}-${yy} = ${d}`],
        alternative: [`x = y+${d}`, `(y+${d})+y = ${s}, so 2y = ${s - d} and y = ${yy}`, `x = ${yy}+${d} = ${xx}`],
      },
    };
  },
  productDiff(rng) {
    const a = between(rng, 6, 15);
    const b = between(rng, 1, a - 2);
    const [c, d] = [between(rng, 2, 9), between(rng, 1, 9)];
    const l = (a - b) * (c + d);
    const e = between(rng, 1, l - 1);
    return {
      text: `Compute (${a}-${b})*(${c}+${d})-${e}.`,
      answer: String(l - e),
      worked: {
        goal: `compute (${a}-${b})*(${c}+${d})-${e}`,
        steps: [`${a}-${b} = ${a - b}`, `${c}+${d} = ${c + d}`, `${a - b}*${c + d} = ${l}`, `${l}-${e} = ${l - e}`],
        checks: [`${l - e}+${e} = ${l}`, `${l}/${c + d} = ${a - b}`],
        alternative: [`${a - b}*${c} = ${(a - b) * c}`, `${a - b}*${d} = ${(a - b) * d}`, `${(a - b) * c}+${(a - b) * d} = ${l}`, `${l}-${e} = ${l - e}`],
      },
    };
  },
};

const GENERATORS: Record<Level, Record<string, Generator>> = { 1: level1, 2: level2, 3: level3, 4: level4, 5: level5 };

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
      if (attempt >= 1000) fail(`could only generate ${out.length} distinct level-${level} ${options.split} problems of the ${options.count} asked; ask for fewer`);
      const p = generateProblem(rng, level);
      if (splitOf(p.text) !== options.split || (!options.repeats && seen.has(p.text))) continue;
      seen.add(p.text);
      out.push(p);
      break;
    }
  }
  return out;
}
