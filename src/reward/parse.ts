// Normalised LaTeX → a small answer structure, so that sets, intervals, tuples, matrices, equations
// and inequalities are compared part by part and only leaf expressions reach the CAS.
// Splitting is done on the top level of brackets only; `(`/`[` and `)`/`]` count alike so that
// half-open intervals such as `[1,2)` balance.
import type { NoteForm } from './forms.ts';
import { addRational, mulRational, parseRational, rational, rationalToLatex, type Rational } from './numbers.ts';

export type RelOp = '=' | '<' | '\\le' | '>' | '\\ge' | '\\ne';

export type Answer =
  | { kind: 'number'; value: Rational; percent: boolean; latex: string }
  | { kind: 'expr'; latex: string }
  | { kind: 'text'; text: string }
  /** `(A)`, `A`; `rest` is what follows the letter (`(C) 12`), compared with non-choice golds. */
  | { kind: 'choice'; letter: string; rest: Answer | null }
  /** `\{…\}` or a bare comma list: order-free. */
  | { kind: 'set'; items: Answer[]; braces: boolean; plusMinus?: true }
  /** `(a,b)`, `[a,b)`, `(x,y,z)`: tuples, points and intervals, ordered, ends kept. */
  | { kind: 'seq'; open: '(' | '['; close: ')' | ']'; items: Answer[] }
  /** `A \cup B`: order-free. */
  | { kind: 'union'; items: Answer[] }
  | { kind: 'matrix'; rows: Answer[][] }
  /** `x=5`, `x\le 5`, `1<x\le 3`: sides.length = ops.length + 1. */
  | { kind: 'relation'; ops: RelOp[]; sides: Answer[] };

// Deeper nesting than this is read as one opaque expression (1,000 nested parentheses must not
// exhaust the stack).
const MAX_DEPTH = 16;

const OPENERS = new Set(['(', '[', '{']);
const CLOSERS = new Set([')', ']', '}']);

/** Splits `s` at top-level matches of `sep` (a sticky regex tried at each top-level position). */
export function splitTop(s: string, sep: RegExp): { parts: string[]; seps: string[] } {
  const parts: string[] = [];
  const seps: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      const next = s[i + 1];
      if (next === '{' || next === '}') {
        depth += next === '{' ? 1 : -1;
        i++;
        continue;
      }
      // `\begin{…}` … `\end{…}` nest like brackets.
      if (s.startsWith('\\begin{', i)) depth++;
      else if (s.startsWith('\\end{', i)) depth--;
    } else if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) depth--;
    if (depth !== 0) continue;
    sep.lastIndex = i;
    const m = sep.exec(s);
    if (m && m[0].length > 0) {
      parts.push(s.slice(start, i));
      seps.push(m[0]);
      start = i + m[0].length;
      i = start - 1;
    }
  }
  parts.push(s.slice(start));
  return { parts, seps };
}

/** Index of the bracket that closes the one at `open` (any bracket kind), or -1. */
function closingIndex(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      if (s[i + 1] === '{') depth++;
      else if (s[i + 1] === '}') depth--;
      i++;
    } else if (OPENERS.has(c)) depth++;
    else if (CLOSERS.has(c)) depth--;
    if (depth === 0) return s[i] === '}' && s[i - 1] === '\\' ? i - 1 : i;
  }
  return -1;
}

// `;` separates items too: `(1,2); (3,4)`.
const COMMA = /[,;]/y;
const SEMICOLON = /;/y;
const RELATION = /=|<|>|\\le(?![A-Za-z])|\\ge(?![A-Za-z])|\\ne(?![A-Za-z])|\\approx(?![A-Za-z])/y;
const CUP = /\\cup(?![A-Za-z])/y;
const ROW_SEP = /\\\\/y;
const CELL_SEP = /&/y;

/** Parses a normalised answer; null for an empty string. `note` learns the forms it read. */
export function parseAnswer(s: string, note: NoteForm = () => undefined): Answer | null {
  return parseAt(s, 0, note);
}

function parseAt(s: string, depth: number, note: NoteForm): Answer | null {
  s = s.trim();
  if (s === '') return null;
  if (depth > MAX_DEPTH) return { kind: 'expr', latex: s };
  if (s === '\\emptyset') return { kind: 'set', items: [], braces: true };
  for (const step of PARSE_STEPS) {
    const a = step(s, depth, note);
    if (a !== undefined) return a;
  }
  return { kind: 'expr', latex: s };
}

/** One reading of an answer: undefined when it does not apply (null is a parse: of `()`). */
type ParseStep = (s: string, depth: number, note: NoteForm) => Answer | null | undefined;

/** `(B)`, `(B) 12`, `B`: a multiple-choice letter, with the answer after it. */
const choiceOf: ParseStep = (s, depth, note) => {
  const choice = /^\(([A-E])\)|^([A-E])$/.exec(s);
  if (!choice) return undefined;
  const rest = choice[1] === undefined ? null : parseAt(s.slice(3), depth + 1, note);
  return { kind: 'choice', letter: choice[1] ?? choice[2], rest };
};

// `x \in S`, `\theta \in S`, `x_1 \in S`: a name's membership states the set (Math-Verify reads it
// as the assignment x = S).
const MEMBERSHIP_RE = /^(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*\\in(?![A-Za-z])/;

/** Top-level `a=3,b=1;a=5,b=1` (tuples), `a, b`, `x \in S`, `A \cup B` and `x = 1` / `a < b`, in
 * that order of precedence. */
const listOrRelationOf: ParseStep = (s, depth, note) => {
  const groups = s.includes(';') ? splitTop(s, SEMICOLON).parts : [s];
  if (groups.length > 1 && groups.some((g) => splitTop(g, COMMA).parts.length > 1)) {
    note('semicolon-tuples');
    const tuples = groups.map((g): Answer => {
      const items = parseItems(splitTop(g, COMMA).parts, depth, note);
      return items.length === 1 ? items[0] : { kind: 'seq', open: '(', close: ')', items };
    });
    return { kind: 'set', items: tuples, braces: false };
  }
  const commas = splitTop(s, COMMA).parts;
  if (commas.length > 1) return { kind: 'set', items: parseItems(commas, depth, note), braces: false };
  const member = MEMBERSHIP_RE.exec(s);
  if (member) {
    note('membership');
    return parseAt(s.slice(member[0].length), depth + 1, note);
  }
  const cups = splitTop(s, CUP).parts;
  if (cups.length > 1) return { kind: 'union', items: parseItems(cups, depth, note) };
  const rel = splitTop(s, RELATION);
  if (rel.parts.length > 1 && rel.parts.every((p) => p.trim() !== '')) return relationOf(s, rel, depth, note);
  return undefined;
};

/** A relation chain. `\approx` keeps the chain before it, or only its right side when all before
 * it are names (`x \approx 3.14` is 3.14, `\pi \approx 3.14` is π), as Math-Verify's parser does;
 * an `=` chain holding a macro no parser knows keeps its last side (Math-Verify parses only the
 * last equation when the whole fails). */
function relationOf(s: string, rel: { parts: string[]; seps: string[] }, depth: number, note: NoteForm): Answer | null {
  if (rel.parts.length > 2 && rel.seps.every((o) => o === '=') && !/[,;]/.test(s) && holdsUnknownMacro(rel.parts)) {
    note('unknown-macro-chain');
    return parseAt(rel.parts[rel.parts.length - 1], depth + 1, note);
  }
  let sides = [rel.parts[0]];
  let ops: string[] = [];
  rel.seps.forEach((op, i) => {
    const next = rel.parts[i + 1];
    if (op !== '\\approx') {
      ops.push(op);
      sides.push(next);
      return;
    }
    note('approx-chain');
    if (sides.every(isSymbolsOnly)) {
      sides = [next];
      ops = [];
    }
  });
  if (sides.length === 1) return parseAt(sides[0], depth + 1, note);
  return {
    kind: 'relation',
    ops: ops as RelOp[],
    sides: sides.map((p) => parseAt(p, depth + 1, note) ?? { kind: 'expr', latex: p }),
  };
}

// The commands Math-Verify's LaTeX parser reads (after normalisation); any other in a side makes
// the whole chain unreadable to it.
const KNOWN_COMMANDS = new Set(
  (
    'frac sqrt cdot times div pm mp infty le ge ne lt gt approx in notin cup cap setminus emptyset subset ' +
    'subseteq sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp lg max min gcd lcm det ' +
    'mod bmod pmod lfloor rfloor lceil rceil vert lvert rvert mid langle rangle binom choose sum prod int ' +
    'lim to partial prime ldots cdots dots vdots overline bar hat vec dot ddot tilde widehat widetilde ' +
    'mathbb mathcal operatorname begin end boxed angle triangle circ degree % { } , alpha beta gamma delta ' +
    'epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi omicron pi varpi rho varrho sigma ' +
    'varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega'
  ).split(' '),
);
const holdsUnknownMacro = (sides: string[]): boolean =>
  sides.some((side) => [...side.matchAll(/\\([A-Za-z]+)/g)].some((m) => !KNOWN_COMMANDS.has(m[1])));

/** Math-Verify's `is_expr_of_only_symbols`: names (letters, Greek letters, subscripted) joined by
 * operators, fractions and powers, with no number anywhere (`\frac{AB}{CD}`, `a+b`, `x`), and so a
 * label rather than a value. */
export function isSymbolsOnly(latex: string): boolean {
  const s = latex.replace(/_\{[^{}]*\}|_[A-Za-z0-9]/g, '');
  const tokens = s.match(/\\[A-Za-z]+|\S/g) ?? [];
  const name = (t: string): boolean => /^[A-Za-z]$/.test(t) || (GREEK.has(t.slice(1)) && t.startsWith('\\'));
  const glue = (t: string): boolean =>
    /^[+\-*/:^(){}|']$/.test(t) || t === '\\frac' || t === '\\cdot' || t === '\\times';
  return tokens.some(name) && tokens.every((t) => name(t) || glue(t));
}

const GREEK = new Set(
  (
    'alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa lambda mu nu xi omicron rho ' +
    'varrho sigma varsigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Upsilon Phi Psi Omega'
  ).split(' '),
);

/** `\{…\}` a set, and `{…}` holding commas (Math-Verify's parser reads it as a set too, while
 * `{x}` is a group); `(…)` / `[…]` an interval or tuple, a parenthesised answer, or a bracketed
 * matrix. */
const bracketedOf: ParseStep = (s, depth, note) => {
  if (s.startsWith('\\{') && s.endsWith('\\}') && closingIndex(s, 0) === s.length - 2) {
    const inner = s.slice(2, -2);
    return { kind: 'set', items: parseItems(splitTop(inner, COMMA).parts, depth, note), braces: true };
  }
  if (s[0] === '{' && closingIndex(s, 0) === s.length - 1) {
    const items = splitTop(s.slice(1, -1), COMMA).parts;
    if (items.length === 1) return parseAt(items[0], depth + 1, note);
    note('brace-set');
    return { kind: 'set', items: parseItems(items, depth, note), braces: true };
  }
  const first = s[0];
  const last = s[s.length - 1];
  if (!((first === '(' || first === '[') && (last === ')' || last === ']') && closingIndex(s, 0) === s.length - 1))
    return undefined;
  const items = splitTop(s.slice(1, -1), COMMA).parts;
  if (items.length > 1) return { kind: 'seq', open: first, close: last, items: parseItems(items, depth, note) };
  if (first === '(' && last === ')') return parseAt(s.slice(1, -1), depth + 1, note);
  // `\left[\begin{array}…\end{array}\right]`: a matrix in brackets.
  const inner = parseAt(s.slice(1, -1), depth + 1, note);
  return inner?.kind === 'matrix' ? inner : { kind: 'expr', latex: s };
};

/** `1\pm\sqrt{5}` is the two values 1+√5 and 1−√5 (`\mp` takes the opposite sign); `\pm 7` is −7
 * and 7, in that order, as Math-Verify lists them (the order counts against a tuple). */
const plusMinusOf: ParseStep = (s, depth, note) => {
  if (!/\\(?:pm|mp)(?![A-Za-z])/.test(s)) return undefined;
  const plus = s.replace(/\\pm(?![A-Za-z])/g, '+').replace(/\\mp(?![A-Za-z])/g, '-');
  const minus = s.replace(/\\pm(?![A-Za-z])/g, '-').replace(/\\mp(?![A-Za-z])/g, '+');
  const values = /^\\pm(?![A-Za-z])/.test(s) ? [minus, plus] : [plus, minus];
  return { kind: 'set', items: parseItems(values, depth, note), braces: false, plusMinus: true };
};

/** A matrix environment (not a determinant), row by row. */
const matrixOf: ParseStep = (s, depth, note) => {
  const matrix = /^\\begin\{([pbBvV]?matrix|array)\}([\s\S]*)\\end\{\1\}$/.exec(s);
  if (!matrix || matrix[1] === 'vmatrix' || matrix[1] === 'Vmatrix') return undefined;
  let body = matrix[2];
  if (matrix[1] === 'array') body = body.replace(/^\{[^{}]*\}/, '');
  const rows = splitTop(body, ROW_SEP)
    .parts.filter((r) => r.trim() !== '')
    .map((r) => parseItems(splitTop(r, CELL_SEP).parts, depth, note));
  return { kind: 'matrix', rows };
};

/** A number (or percentage), a numeral in another base, or a word; else undefined (an expression). */
const atomOf: ParseStep = (s) => {
  const percent = s.endsWith('\\%');
  const bare = percent ? s.slice(0, -2) : s;
  const value = parseRational(bare);
  if (value) return { kind: 'number', value, percent, latex: bare };
  // A numeral in another base, `52_8` / `4210_{5}`: compared by its digits, never by value.
  const based = /^(\d+)_\{?(\d+)\}?$/.exec(bare);
  if (based) return { kind: 'text', text: `${based[1]}_${based[2]}` };
  // Words ("Monday", "NorthAmerica") are compared as words, not as products of symbols.
  if (/^[A-Za-z]{3,}$/.test(bare) && !/^(?:sin|cos|tan|log|ln|exp)/.test(bare)) return { kind: 'text', text: bare };
  return undefined;
};

/** The readings in order of precedence: the first that applies wins. */
const PARSE_STEPS: readonly ParseStep[] = [
  choiceOf,
  listOrRelationOf,
  bracketedOf,
  plusMinusOf,
  (s) => matrixArithmetic(s) ?? undefined,
  matrixOf,
  atomOf,
];

function parseItems(parts: string[], depth: number, note: NoteForm): Answer[] {
  const out: Answer[] = [];
  for (const p of parts) {
    const a = parseAt(p, depth + 1, note);
    // `\{1\pm\sqrt5, -2\}` has three elements, not two.
    if (a && a.kind === 'set' && a.plusMinus) out.push(...a.items);
    else if (a) out.push(a);
  }
  return out;
}

type Grid = Rational[][];

const MATRIX_RE = /^[[(]?\\begin\{([pbBvV]?matrix|array)\}/;

/** A numeric matrix written in full (`\begin{pmatrix}…\end{pmatrix}`, bracketed or not) at the
 * start of `s`, and its length; null when it is not one or an entry is not a plain number. */
function leadingMatrix(s: string): { grid: Grid; length: number } | null {
  const m = MATRIX_RE.exec(s);
  if (!m || m[1] === 'vmatrix' || m[1] === 'Vmatrix') return null;
  const endTag = `\\end{${m[1]}}`;
  const end = s.indexOf(endTag);
  if (end < 0) return null;
  let length = end + endTag.length;
  const bracketed = s[0] === '[' || s[0] === '(';
  if (bracketed) {
    if (s[length] !== (s[0] === '[' ? ']' : ')')) return null;
    length++;
  }
  let body = s.slice(m[0].length, end);
  if (m[1] === 'array') body = body.replace(/^\{[^{}]*\}/, '');
  const grid: Grid = [];
  for (const row of splitTop(body, ROW_SEP).parts) {
    if (row.trim() === '') continue;
    const cells = splitTop(row, CELL_SEP).parts.map((c) => parseRational(c));
    if (cells.some((c) => c === null)) return null;
    grid.push(cells as Rational[]);
  }
  if (grid.length === 0 || grid.some((r) => r.length !== grid[0].length)) return null;
  return { grid, length };
}

function gridMul(a: Grid, b: Grid): Grid | null {
  if (a[0].length !== b.length) return null;
  return a.map((row) =>
    b[0].map((_, j) => row.reduce((acc, x, k) => addRational(acc, mulRational(x, b[k][j])), rational(0n, 1n))),
  );
}

/** One term of a matrix sum: `2\begin{pmatrix}…\end{pmatrix}\cdot\begin{pmatrix}…\end{pmatrix}`. */
function matrixTerm(term: string): Grid | null {
  let scalar = rational(1n, 1n);
  const lead = /^([+-]?(?:\d+(?:\.\d+)?|\\frac\{[^{}]+\}\{[^{}]+\}))(?:\\cdot|\\times)?(?=[[(]?\\begin)/.exec(term);
  if (lead) {
    const v = parseRational(lead[1]);
    if (!v) return null;
    scalar = v;
    term = term.slice(lead[0].length);
  }
  let grid: Grid | null = null;
  while (term !== '') {
    const m = leadingMatrix(term);
    if (!m) return null;
    grid = grid === null ? m.grid : gridMul(grid, m.grid);
    if (!grid) return null;
    term = term.slice(m.length).replace(/^(?:\\cdot|\\times)/, '');
  }
  return grid && grid.map((row) => row.map((x) => mulRational(scalar, x)));
}

/** A sum or product of numeric matrices written out (`A+B`, `AB`, `2A`), evaluated; null when `s`
 * is not one (a single matrix is left to the element-wise reader). */
function matrixArithmetic(s: string): Answer | null {
  if (!s.includes('\\begin{') || s.length > 5000) return null;
  const { parts, seps } = splitTop(s, /[+-]/y);
  if (parts.length === 1 && leadingMatrix(s)?.length === s.length) return null;
  let sum: Grid | null = null;
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === '') {
      if (i === 0) continue;
      return null;
    }
    let g = matrixTerm(parts[i]);
    if (!g) return null;
    if (i > 0 && seps[i - 1] === '-') g = g.map((row) => row.map((x) => ({ ...x, num: -x.num })));
    if (sum === null) sum = g;
    else if (sum.length !== g.length || sum[0].length !== g[0].length) return null;
    else sum = sum.map((row, r) => row.map((x, c) => addRational(x, (g as Grid)[r][c])));
  }
  if (!sum) return null;
  return {
    kind: 'matrix',
    rows: sum.map((row) =>
      row.map((value) => ({ kind: 'number', value, percent: false, latex: rationalToLatex(value) })),
    ),
  };
}
