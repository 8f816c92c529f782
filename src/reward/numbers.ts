// Exact numbers for the verifier's fast path: plain numeric answers (`142.0`, `-3/4`, `\frac{1}{2}`,
// `1.5e3`, `28\%`) are read into bigint rationals here, in the main thread, without the CAS.
// Anything this reader does not recognise (radicals, π, variables) is left to the CAS worker pool.

/** num/den in lowest terms, den > 0. `decimal` marks a value written with a decimal point or an
 * exponent, which Math-Verify compares after rounding to 6 decimals rather than exactly. */
export interface Rational {
  num: bigint;
  den: bigint;
  decimal: boolean;
  /** Digits after the point of a plain decimal literal as written (`0.67` → 2); absent otherwise. */
  places?: number;
}

function gcd(a: bigint, b: bigint): bigint {
  if (a < 0n) a = -a;
  if (b < 0n) b = -b;
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rational(num: bigint, den: bigint, decimal = false): Rational {
  if (den === 0n) throw new RangeError('zero denominator');
  if (den < 0n) {
    num = -num;
    den = -den;
  }
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g, decimal };
}

// Exponents beyond this are not "plain numbers": 1e999999 would allocate a huge bigint.
const MAX_EXPONENT = 400;

/** A decimal literal: `12`, `-0.5`, `.5`, `1.5e3`, `1.5E-3`. */
function parseDecimal(s: string): Rational | null {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,4}))?$/.exec(s);
  if (!m) return null;
  const [, sign, int, frac = '', exp] = m;
  if (int === '' && frac === '') return null;
  const e = exp === undefined ? 0 : Number(exp);
  if (Math.abs(e) > MAX_EXPONENT) return null;
  let num = BigInt((int || '0') + frac);
  let den = 10n ** BigInt(frac.length);
  if (e >= 0) num *= 10n ** BigInt(e);
  else den *= 10n ** BigInt(-e);
  if (sign === '-') num = -num;
  // "142.0" is an integer written as a float (the AMC files): it stays exact.
  const decimal = frac.replace(/0+$/, '') !== '' || exp !== undefined;
  const value = rational(num, den, decimal);
  return decimal && exp === undefined ? { num: value.num, den: value.den, decimal, places: frac.length } : value;
}

/** `a`, `\frac{a}{b}`, `\frac12`, `a/b`, `-\frac{a}{b}`, `a\times 10^{k}` with decimal a, b.
 * The input is already normalised (no spaces, `\dfrac` → `\frac`, no `\left`). */
export function parseRational(input: string): Rational | null {
  const s = input.replace(/\s+/g, '');
  if (s.length === 0 || s.length > 200) return null;
  const plain = parseDecimal(s);
  if (plain) return plain;
  let m = /^([+-]?)\\frac(?:\{([^{}]+)\}|(\d))(?:\{([^{}]+)\}|(\d))$/.exec(s);
  if (m) {
    const a = parseDecimal(m[2] ?? m[3]);
    const b = parseDecimal(m[4] ?? m[5]);
    if (!a || !b || b.num === 0n) return null;
    const q = divide(a, b);
    return m[1] === '-' ? { ...q, num: -q.num } : q;
  }
  // A mixed number, `1\frac{4}{5}` = 9/5 (the MATH answers' convention), proper fractions only.
  m = /^([+-]?)(\d+)\\frac(?:\{(\d+)\}|(\d))(?:\{(\d+)\}|(\d))$/.exec(s);
  if (m) {
    const whole = BigInt(m[2]);
    const a = BigInt(m[3] ?? m[4]);
    const b = BigInt(m[5] ?? m[6]);
    if (b === 0n || a >= b) return null;
    const q = rational(whole * b + a, b);
    return m[1] === '-' ? { ...q, num: -q.num } : q;
  }
  m = /^([+-]?[\d.]+)\/([+-]?[\d.]+)$/.exec(s);
  if (m) {
    const a = parseDecimal(m[1]);
    const b = parseDecimal(m[2]);
    if (!a || !b || b.num === 0n) return null;
    return divide(a, b);
  }
  // Scientific notation the way LaTeX writes it: 1.5\times10^{3}, 1.5\cdot10^{-3}, 10^{3}.
  m = /^(?:([+-]?[\d.]+)(?:\\times|\\cdot))?10\^(?:\{([+-]?\d{1,4})\}|(\d))$/.exec(s);
  if (m) {
    const mant = m[1] === undefined ? rational(1n, 1n) : parseDecimal(m[1]);
    const e = Number(m[2] ?? m[3]);
    if (!mant || Math.abs(e) > MAX_EXPONENT) return null;
    const p = 10n ** BigInt(Math.abs(e));
    const r = e >= 0 ? rational(mant.num * p, mant.den) : rational(mant.num, mant.den * p);
    return { ...r, decimal: mant.decimal || e < 0 || m[1] !== undefined };
  }
  return null;
}

function divide(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den, a.den * b.num, a.decimal || b.decimal);
}

export function addRational(a: Rational, b: Rational): Rational {
  return rational(a.num * b.den + b.num * a.den, a.den * b.den, a.decimal || b.decimal);
}

export function mulRational(a: Rational, b: Rational): Rational {
  return rational(a.num * b.num, a.den * b.den, a.decimal || b.decimal);
}

export function scale(a: Rational, num: bigint, den: bigint): Rational {
  return rational(a.num * num, a.den * den, a.decimal);
}

/** round(x · 10^6) with ties away from zero: the 6-decimal comparison Math-Verify applies to floats. */
function round6(a: Rational): bigint {
  const n = a.num * 1_000_000n;
  const neg = n < 0n;
  const abs = neg ? -n : n;
  const q = (2n * abs + a.den) / (2n * a.den);
  return neg ? -q : q;
}

const abs = (x: bigint): bigint => (x < 0n ? -x : x);

/** Exact equality, or equality after rounding to 6 decimals when either side was written as a
 * decimal (so 1/3 = 0.333333, but 1/3 ≠ 0.33 and 1/3 ≠ 1/3 + 10⁻⁹ written as a fraction).
 * Below 10⁻³, where 6 decimals are fewer than 3 significant digits (Minerva's 5.3e-9 would equal
 * 0), the rule is 6 significant digits instead: |a − b| ≤ 10⁻⁶·max(|a|, |b|). */
export function rationalEqual(a: Rational, b: Rational): boolean {
  if (a.num === b.num && a.den === b.den) return true;
  if (!a.decimal && !b.decimal) return false;
  const magA = abs(a.num) * b.den; // |a| and |b| over the common denominator a.den·b.den
  const magB = abs(b.num) * a.den;
  const big = magA > magB ? magA : magB;
  if (1000n * big >= a.den * b.den) return round6(a) === round6(b);
  return abs(a.num * b.den - b.num * a.den) * 1_000_000n <= big;
}

/** round(n/d) for d > 0, ties to even (as sympy's `round`). */
function roundHalfEven(n: bigint, d: bigint): bigint {
  const neg = n < 0n;
  const an = neg ? -n : n;
  let q = an / d;
  const twice = 2n * (an % d);
  if (twice > d || (twice === d && q % 2n === 1n)) q += 1n;
  return neg ? -q : q;
}

/** A decimal written with k places against an exact rational (neither written as a decimal): equal
 * when the rational rounded to k places is that decimal, so 0.3333 = 1/3 and 0.67 = 2/3, but
 * 0.666 ≠ 2/3 (issue 30: Math-Verify compares an approximate decimal to the digits written). */
export function equalToPlacesWritten(a: Rational, b: Rational): boolean {
  const [written, exact] = a.decimal ? [a, b] : [b, a];
  if (written.places === undefined || exact.decimal) return false;
  const unit = 10n ** BigInt(written.places);
  // written · 10^k is a whole number, since the decimal has k places.
  return roundHalfEven(exact.num * unit, exact.den) * written.den === written.num * unit;
}

export function rationalToString(a: Rational): string {
  return a.den === 1n ? a.num.toString() : `${a.num}/${a.den}`;
}

/** The double nearest a/b (used only to hand a number to the CAS as a decimal literal). */
export function rationalToLatex(a: Rational): string {
  if (a.den === 1n) return a.num.toString();
  const neg = a.num < 0n;
  const abs = neg ? -a.num : a.num;
  return `${neg ? '-' : ''}\\frac{${abs}}{${a.den}}`;
}
