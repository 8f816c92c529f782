// Normalised LaTeX → a small answer structure, so that sets, intervals, tuples, matrices, equations
// and inequalities are compared part by part and only leaf expressions reach the CAS.
// Splitting is done on the top level of brackets only; `(`/`[` and `)`/`]` count alike so that
// half-open intervals such as `[1,2)` balance.
import { parseRational, type Rational } from './numbers.ts';

export type RelOp = '=' | '<' | '\\le' | '>' | '\\ge';

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

const COMMA = /,/y;
const RELATION = /=|<|>|\\le(?![A-Za-z])|\\ge(?![A-Za-z])/y;
const CUP = /\\cup(?![A-Za-z])/y;
const ROW_SEP = /\\\\/y;
const CELL_SEP = /&/y;

/** Parses a normalised answer; null for an empty string. */
export function parseAnswer(s: string, depth = 0): Answer | null {
  s = s.trim();
  if (s === '') return null;
  if (depth > MAX_DEPTH) return { kind: 'expr', latex: s };
  if (s === '\\emptyset') return { kind: 'set', items: [], braces: true };

  const choice = /^\(([A-E])\)|^([A-E])$/.exec(s);
  if (choice) {
    const rest = choice[1] === undefined ? null : parseAnswer(s.slice(3), depth + 1);
    return { kind: 'choice', letter: choice[1] ?? choice[2], rest };
  }

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

  if (s.startsWith('\\{') && s.endsWith('\\}') && closingIndex(s, 0) === s.length - 2) {
    const inner = s.slice(2, -2);
    return { kind: 'set', items: parseItems(splitTop(inner, COMMA).parts, depth), braces: true };
  }

  const first = s[0];
  const last = s[s.length - 1];
  if ((first === '(' || first === '[') && (last === ')' || last === ']') && closingIndex(s, 0) === s.length - 1) {
    const items = splitTop(s.slice(1, -1), COMMA).parts;
    if (items.length > 1) return { kind: 'seq', open: first, close: last, items: parseItems(items, depth) };
    if (first === '(' && last === ')') return parseAnswer(s.slice(1, -1), depth + 1);
    // `\left[\begin{array}…\end{array}\right]`: a matrix in brackets.
    const inner = parseAnswer(s.slice(1, -1), depth + 1);
    return inner?.kind === 'matrix' ? inner : { kind: 'expr', latex: s };
  }

  // `1\pm\sqrt{5}` is the two values 1+√5 and 1−√5 (`\mp` takes the opposite sign).
  if (/\\(?:pm|mp)(?![A-Za-z])/.test(s)) {
    const plus = s.replace(/\\pm(?![A-Za-z])/g, '+').replace(/\\mp(?![A-Za-z])/g, '-');
    const minus = s.replace(/\\pm(?![A-Za-z])/g, '-').replace(/\\mp(?![A-Za-z])/g, '+');
    return { kind: 'set', items: parseItems([plus, minus], depth), braces: false, plusMinus: true };
  }

  const matrix = /^\\begin\{([pbBvV]?matrix|array)\}([\s\S]*)\\end\{\1\}$/.exec(s);
  if (matrix && matrix[1] !== 'vmatrix' && matrix[1] !== 'Vmatrix') {
    let body = matrix[2];
    if (matrix[1] === 'array') body = body.replace(/^\{[^{}]*\}/, '');
    const rows = splitTop(body, ROW_SEP)
      .parts.filter((r) => r.trim() !== '')
      .map((r) => parseItems(splitTop(r, CELL_SEP).parts, depth));
    return { kind: 'matrix', rows };
  }

  const percent = s.endsWith('\\%');
  const bare = percent ? s.slice(0, -2) : s;
  const value = parseRational(bare);
  if (value) return { kind: 'number', value, percent, latex: bare };

  // A numeral in another base, `52_8` / `4210_{5}`: compared by its digits, never by value.
  const based = /^(\d+)_\{?(\d+)\}?$/.exec(bare);
  if (based) return { kind: 'text', text: `${based[1]}_${based[2]}` };

  // Words ("Monday", "NorthAmerica") are compared as words, not as products of symbols.
  if (/^[A-Za-z]{3,}$/.test(bare) && !/^(?:sin|cos|tan|log|ln|exp)/.test(bare)) return { kind: 'text', text: bare };
  return { kind: 'expr', latex: s };
}

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
