// Normalised LaTeX → a small answer structure, so that sets, intervals, tuples, matrices, equations
// and inequalities are compared part by part and only leaf expressions reach the CAS.
// Splitting is done on the top level of brackets only; `(`/`[` and `)`/`]` count alike so that
// half-open intervals such as `[1,2)` balance.
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
const RELATION = /=|<|>|\\le(?![A-Za-z])|\\ge(?![A-Za-z])|\\ne(?![A-Za-z])/y;
const CUP = /\\cup(?![A-Za-z])/y;
const ROW_SEP = /\\\\/y;
const CELL_SEP = /&/y;

/** Parses a normalised answer; null for an empty string. */
export function parseAnswer(s: string, depth = 0): Answer | null {
  s = s.trim();
  if (s === '') return null;
  if (depth > MAX_DEPTH) return { kind: 'expr', latex: s };
  if (s === '\\emptyset') return { kind: 'set', items: [], braces: true };
  for (const step of PARSE_STEPS) {
    const a = step(s, depth);
    if (a !== undefined) return a;
  }
  return { kind: 'expr', latex: s };
}

/** One reading of an answer: undefined when it does not apply (null is a parse: of `()`). */
type ParseStep = (s: string, depth: number) => Answer | null | undefined;

/** `(B)`, `(B) 12`, `B`: a multiple-choice letter, with the answer after it. */
const choiceOf: ParseStep = (s, depth) => {
  const choice = /^\(([A-E])\)|^([A-E])$/.exec(s);
  if (!choice) return undefined;
  const rest = choice[1] === undefined ? null : parseAnswer(s.slice(3), depth + 1);
  return { kind: 'choice', letter: choice[1] ?? choice[2], rest };
};

/** Top-level `a, b`, `A \cup B` and `x = 1` / `a < b`, in that order of precedence. */
const listOrRelationOf: ParseStep = (s, depth) => {
  const commas = splitTop(s, COMMA).parts;
  if (commas.length > 1) return { kind: 'set', items: parseItems(commas, depth), braces: false };
  const cups = splitTop(s, CUP).parts;
  if (cups.length > 1) return { kind: 'union', items: parseItems(cups, depth) };
  const rel = splitTop(s, RELATION);
  if (rel.parts.length > 1 && rel.parts.every((p) => p.trim() !== '')) {
    return {
      kind: 'relation',
      ops: rel.seps as RelOp[],
      sides: rel.parts.map((p) => parseAnswer(p, depth + 1) ?? { kind: 'expr', latex: p }),
    };
  }
  return undefined;
};

/** `\{…\}` a set; `(…)` / `[…]` an interval or tuple, a parenthesised answer, or a bracketed matrix. */
const bracketedOf: ParseStep = (s, depth) => {
  if (s.startsWith('\\{') && s.endsWith('\\}') && closingIndex(s, 0) === s.length - 2) {
    const inner = s.slice(2, -2);
    return { kind: 'set', items: parseItems(splitTop(inner, COMMA).parts, depth), braces: true };
  }
  const first = s[0];
  const last = s[s.length - 1];
  if (!((first === '(' || first === '[') && (last === ')' || last === ']') && closingIndex(s, 0) === s.length - 1))
    return undefined;
  const items = splitTop(s.slice(1, -1), COMMA).parts;
  if (items.length > 1) return { kind: 'seq', open: first, close: last, items: parseItems(items, depth) };
  if (first === '(' && last === ')') return parseAnswer(s.slice(1, -1), depth + 1);
  // `\left[\begin{array}…\end{array}\right]`: a matrix in brackets.
  const inner = parseAnswer(s.slice(1, -1), depth + 1);
  return inner?.kind === 'matrix' ? inner : { kind: 'expr', latex: s };
};

/** `1\pm\sqrt{5}` is the two values 1+√5 and 1−√5 (`\mp` takes the opposite sign). */
const plusMinusOf: ParseStep = (s, depth) => {
  if (!/\\(?:pm|mp)(?![A-Za-z])/.test(s)) return undefined;
  const plus = s.replace(/\\pm(?![A-Za-z])/g, '+').replace(/\\mp(?![A-Za-z])/g, '-');
  const minus = s.replace(/\\pm(?![A-Za-z])/g, '-').replace(/\\mp(?![A-Za-z])/g, '+');
  return { kind: 'set', items: parseItems([plus, minus], depth), braces: false, plusMinus: true };
};

/** A matrix environment (not a determinant), row by row. */
const matrixOf: ParseStep = (s, depth) => {
  const matrix = /^\\begin\{([pbBvV]?matrix|array)\}([\s\S]*)\\end\{\1\}$/.exec(s);
  if (!matrix || matrix[1] === 'vmatrix' || matrix[1] === 'Vmatrix') return undefined;
  let body = matrix[2];
  if (matrix[1] === 'array') body = body.replace(/^\{[^{}]*\}/, '');
  const rows = splitTop(body, ROW_SEP)
    .parts.filter((r) => r.trim() !== '')
    .map((r) => parseItems(splitTop(r, CELL_SEP).parts, depth));
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

function parseItems(parts: string[], depth: number): Answer[] {
  const out: Answer[] = [];
  for (const p of parts) {
    const a = parseAnswer(p, depth + 1);
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
