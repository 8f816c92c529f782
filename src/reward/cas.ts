// The symbolic leaf comparison, run inside a CAS worker (it may hang on inputs such as
// `9^{9^{9^{9}}}`, which is why the pool guards it with a timeout). Two leaves are equal when the
// compute engine finds them structurally identical, or when their values agree: at the constant
// itself, or at fixed sample points for every free variable (a numeric identity test, in place
// of sympy's `simplify(a - b) == 0`).
import { ComputeEngine } from '@cortex-js/compute-engine';
import { evalJson } from './evalJson.ts';
import type { LeafMode } from './compare.ts';

type Engine = InstanceType<typeof ComputeEngine>;
type Expr = NonNullable<ReturnType<Engine['parse']>>;

// An unknown letter before parentheses: `c(x+1)` and `n(n-1)` are products, as a reader of an
// answer takes them; `f(x)`, `I(0)`, `x(t)` (one number or one symbol inside) are applications.
const PARSE_OPTIONS = {
  resolveApplication: (ctx: { arguments: ReadonlyArray<unknown> }): 'apply' | 'multiply' => {
    const [arg] = ctx.arguments;
    const atom =
      typeof arg === 'number' || typeof arg === 'string' || (typeof arg === 'object' && arg !== null && 'num' in arg);
    return ctx.arguments.length === 1 && atom ? 'apply' : 'multiply';
  },
};

export type CasVerdict = { equal: boolean; reason?: string; renamed?: boolean };

// Irregular points in (0.3, 2.9): far from the poles and branch cuts of typical answers, and no
// two of them in a simple ratio. The point just above 1 tells x^100000 from x^100001, which
// underflow or overflow alike everywhere else; the negative one tells √(x²) from x.
const SAMPLES = [0.7318, 1.5142, 2.3761, 1.1937, 0.4593, 2.8117, 1.000013, -1.3719];
// Step functions (`\lfloor\frac{2n-1}{5}\rfloor` against `…{6}\rfloor`) are constant across the
// points above; they are also compared on a wider range, where such near misses part.
const WIDE_SAMPLES = [3.1, 4.7, 5.3, 6.9, 8.2, 9.6, 11.4, 13.8, 17.3, 23.9, -4.6, -9.2];
const STEP_HEADS = new Set(['Floor', 'Ceil', 'Ceiling', 'Round', 'Mod', 'Fract', 'Fraction', 'Truncate']);

// A sum or product over a free bound (`\sum_{k=1}^{n}`) is defined at whole numbers only: such
// pairs are compared at whole points, where Σ_{k=1}^{n} k² and Σ_{k=1}^{n+1} k² part at once and
// Σ_{i=0}^{n} 2^i meets 2^{n+1}−1.
const WHOLE_SAMPLES = [1, 2, 3, 4, 5, 6, 8, 11];
const SERIES_HEADS = new Set(['Sum', 'Product']);

interface Samples {
  count: number;
  /** The value of variable `i` at sample point `k`. */
  at: (k: number, i: number) => number;
  /** Points where both sides must be defined. */
  minCompared: number;
}

/** The points at which two expressions with free variables are compared. */
function samplePoints(a: unknown, b: unknown): Samples {
  if (hasHead(a, SERIES_HEADS) || hasHead(b, SERIES_HEADS)) {
    return {
      count: WHOLE_SAMPLES.length,
      at: (k, i) => WHOLE_SAMPLES[(k + i * 3) % WHOLE_SAMPLES.length],
      minCompared: 5,
    };
  }
  const points = hasHead(a, STEP_HEADS) || hasHead(b, STEP_HEADS) ? [...SAMPLES, ...WIDE_SAMPLES] : SAMPLES;
  return { count: points.length, at: (k, i) => points[(k + i * 2) % points.length] + 0.01 * i, minCompared: 2 };
}

/** `noiseFloor`: differences below it are rounding noise (at sample points, where doubles are
 * used: sin²x + cos²x − 1 comes out as ~1e-16, not 0). */
function valuesClose(a: number, b: number, noiseFloor = 0): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  const diff = Math.abs(a - b);
  const big = Math.max(Math.abs(a), Math.abs(b));
  if (diff <= noiseFloor) return true;
  // Below 1e-3, 6 decimals are too coarse (5.3e-9 would equal 0): 6 significant digits instead.
  if (big < 1e-3) return diff <= 1e-6 * big;
  // Rounded to 6 decimals (Math-Verify's float rule), or equal to 1e-9 relative for large values.
  return Math.round(a * 1e6) === Math.round(b * 1e6) || diff <= 1e-9 * big;
}

const SAMPLE_NOISE = 1e-12;

/** Whether MathJSON holds an inexact number (`1.5`, `2e-9`): then Math-Verify's float rules apply. */
function hasDecimal(json: unknown): boolean {
  if (typeof json === 'number') return !Number.isInteger(json);
  if (Array.isArray(json)) return json.some(hasDecimal);
  if (json !== null && typeof json === 'object') {
    const num = (json as { num?: unknown }).num;
    return typeof num === 'string' && /[.]|e-/i.test(num);
  }
  return false;
}

function numericValue(e: Expr): { re: number; im: number } | null {
  const v = e.N();
  const re = v.re;
  const im = v.im;
  if (typeof re !== 'number' || Number.isNaN(re) || typeof im !== 'number' || Number.isNaN(im)) return null;
  return { re, im };
}

function sameValue(a: Expr, b: Expr, finiteOnly = false): boolean | null {
  const va = numericValue(a);
  const vb = numericValue(b);
  if (!va || !vb) return null;
  // At a sample point, an overflow on both sides says nothing about equality.
  if (finiteOnly && ![va.re, va.im, vb.re, vb.im].every(Number.isFinite)) return null;
  const floor = finiteOnly ? SAMPLE_NOISE : 0;
  return valuesClose(va.re, vb.re, floor) && valuesClose(va.im, vb.im, floor);
}

const BOUND_HEADS = new Set(['Sum', 'Product', 'Integrate', 'Limit', 'D', 'Derivative']);
const UNSAMPLED_HEADS = new Set(['Integrate', 'Limit', 'D', 'Derivative']);

function hasHead(json: unknown, heads: Set<string>): boolean {
  if (!Array.isArray(json)) return false;
  if (typeof json[0] === 'string' && heads.has(json[0])) return true;
  return json.some((x) => hasHead(x, heads));
}

const ACCENT_NAME: Record<string, string> = { overline: 'bar', widehat: 'hat', widetilde: 'tilde' };
const ACCENT_RE = /\\(dot|ddot|hat|bar|vec|tilde|check|breve|overline|widehat|widetilde)\s*\{\s*(\\?[A-Za-z]+)\s*\}/g;

export class CasComparer {
  private readonly ce: Engine = new ComputeEngine();

  private parse(input: string): Expr | null {
    // An accented symbol (`\dot{x}_0`, `\ddot{\theta}`, `\hat{n}`) is a variable of its own: the
    // engine reads `\dot{x}` as the time derivative of a constant, 0, which hid whole terms.
    const latex = input.replace(
      ACCENT_RE,
      (_m, accent: string, name: string) =>
        `\\operatorname{${name.replace(/\\/g, '')}${ACCENT_NAME[accent] ?? accent}}`,
    );
    const e = this.ce.parse(latex, PARSE_OPTIONS);
    if (e.isValid) return e;
    // Spellings the engine rejects but a reader does not: `[…]` as grouping, `\zeta`/`\Gamma` as
    // variables (the engine reads them as functions), commands in subscripts (`L_{\odot}`).
    const retry = latex
      .replace(/\[/g, '(')
      .replace(/\]/g, ')')
      .replace(/\\(zeta|Gamma)(?![A-Za-z])/g, '\\operatorname{$1}')
      .replace(/_\{\\([A-Za-z]+)\}/g, '_{$1}');
    if (retry === latex) return null;
    const again = this.ce.parse(retry, PARSE_OPTIONS);
    return again.isValid ? again : null;
  }

  /** Each comparison runs in a scope of its own: the engine declares the symbols it meets (and
   * infers their types from use), and one answer's `f(x)` must not change how the next one's `f^2`
   * reads. */
  compare(goldLatex: string, predLatex: string, mode: LeafMode = 'equal', rename = false): CasVerdict {
    this.ce.pushScope();
    try {
      const a = this.parse(goldLatex);
      let b = this.parse(predLatex);
      if (!a || !b) return { equal: false, reason: `unparseable ${!a ? 'gold' : 'prediction'}` };
      const renamed = rename ? this.renamed(a, b) : null;
      if (renamed) b = renamed;
      const verdict =
        mode === 'equal' ? this.compareInScope(a, b) : this.proportionalInScope(a, b, mode === 'positive');
      return renamed && verdict.equal ? { ...verdict, renamed: true } : verdict;
    } finally {
      this.ce.popScope();
    }
  }

  /** `pred` with its free variables renamed to the gold's, in sorted order, when both have as many
   * and they differ (Math-Verify's `strict=False`: `g(s)` is `g(t)`); else null. */
  private renamed(gold: Expr, pred: Expr): Expr | null {
    const gv = [...gold.unknowns].sort();
    const pv = [...pred.unknowns].sort();
    if (gv.length === 0 || gv.length !== pv.length || gv.every((v, i) => v === pv[i])) return null;
    return pred.subs(Object.fromEntries(pv.map((v, i) => [v, this.ce.symbol(gv[i])])));
  }

  /** Whether gold/pred is one non-zero constant (positive when `positive`) wherever both are
   * defined: two zero forms of the same equation, or of the same inequality. */
  private proportionalInScope(a: Expr, b: Expr, positive: boolean): CasVerdict {
    const vars = [...new Set([...a.unknowns, ...b.unknowns])].sort();
    if (vars.length === 0 || hasHead(a.json, BOUND_HEADS) || hasHead(b.json, BOUND_HEADS)) return { equal: false };
    let ratio = NaN;
    let compared = 0;
    const samples = samplePoints(a.json, b.json);
    for (let k = 0; k < samples.count; k++) {
      const sub: Record<string, number> = {};
      vars.forEach((v, i) => (sub[v] = samples.at(k, i)));
      const fa = evalJson(a.json, sub);
      const fb = evalJson(b.json, sub);
      if (!Number.isFinite(fa) || !Number.isFinite(fb)) continue;
      const tiny = 1e-12 * Math.max(1, Math.abs(fa), Math.abs(fb));
      if (Math.abs(fa) <= tiny && Math.abs(fb) <= tiny) continue;
      if (Math.abs(fa) <= tiny || Math.abs(fb) <= tiny) return { equal: false };
      const r = fa / fb;
      if (Number.isNaN(ratio)) ratio = r;
      else if (Math.abs(r - ratio) > 1e-9 * Math.max(Math.abs(r), Math.abs(ratio))) return { equal: false };
      compared++;
    }
    if (compared < 3) return { equal: false, reason: 'not comparable' };
    return { equal: !positive || ratio > 0 };
  }

  private compareInScope(a: Expr, b: Expr): CasVerdict {
    if (a.isSame(b) || JSON.stringify(a.json) === JSON.stringify(b.json)) return { equal: true };
    const vars = [...new Set([...a.unknowns, ...b.unknowns])].sort();
    // An integral, limit or derivative with a free variable is not sampled: only the identical
    // form counts (no false positive from a few points where different forms agree).
    if (vars.length > 0 && (hasHead(a.json, UNSAMPLED_HEADS) || hasHead(b.json, UNSAMPLED_HEADS)))
      return { equal: false, reason: 'not comparable' };
    if (vars.length === 0) {
      // Exact on both sides (no decimal literal): the engine's own value test decides, at its
      // working precision, so 2^{1009} ≠ 2^{1009}+1, which no double could tell apart.
      if (!hasDecimal(a.json) && !hasDecimal(b.json)) {
        const eq = a.isEqual(b);
        if (eq !== undefined) return { equal: eq };
      }
      const same = sameValue(a, b);
      return same === null ? { equal: false, reason: 'not a number' } : { equal: same };
    }
    // Free variables: both sides must agree at every sample point where both are defined, and be
    // defined at two points at least (an expression and its restriction to a domain differ elsewhere).
    let compared = 0;
    const aJson = a.json;
    const bJson = b.json;
    const samples = samplePoints(aJson, bJson);
    for (let k = 0; k < samples.count; k++) {
      const sub: Record<string, number> = {};
      vars.forEach((v, i) => (sub[v] = samples.at(k, i)));
      // Fast real evaluation first; the engine (complex-capable, slower) where it cannot tell.
      const fa = evalJson(aJson, sub);
      const fb = evalJson(bJson, sub);
      const same =
        Number.isFinite(fa) && Number.isFinite(fb)
          ? valuesClose(fa, fb, SAMPLE_NOISE)
          : sameValue(a.subs(sub), b.subs(sub), true);
      if (same === false) return { equal: false };
      if (same === true) compared++;
    }
    return compared >= samples.minCompared ? { equal: true } : { equal: false, reason: 'not comparable' };
  }
}
