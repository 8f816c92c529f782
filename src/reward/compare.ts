// Structural equivalence of two parsed answers (Math-Verify's semantics): sets and unions order-free,
// tuples/intervals ordered with their ends, matrices element-wise, `x=5` ~ `5`, `x\le5` ~ `5\ge x`
// ~ `(-\infty,5]`, percentages, choices. Plain numbers are settled here; any other pair of leaves
// goes to `leafEqual` (the CAS pool), which may throw CasTimeout.
import type { Form, NoteForm } from './forms.ts';
import { isSymbolsOnly, type Answer, type RelOp } from './parse.ts';
import { equalToPlacesWritten, rationalEqual, scale, rationalToLatex } from './numbers.ts';

/** 'equal': the same value; 'proportional': l/r is a non-zero constant (equations up to scale);
 * 'positive': a positive constant (inequalities, whose direction a negative factor would flip). */
export type LeafMode = 'equal' | 'proportional' | 'positive';
export type LeafEqual = (gold: string, pred: string, mode?: LeafMode) => Promise<boolean>;

/** What a comparison needs besides the answers: the CAS for leaves, and where to note the forms
 * (forms.ts) a verdict passed through. */
export interface Cmp {
  leaf: LeafEqual;
  note: NoteForm;
}

/** Which rule decided a comparison (for `red verify --explain`); set by the top-level call only. */
export interface Trace {
  rule?: string;
}

type Leaf = Extract<Answer, { kind: 'number' | 'expr' | 'text' }>;

function isLeaf(a: Answer): a is Leaf {
  return a.kind === 'number' || a.kind === 'expr' || a.kind === 'text';
}

/** LaTeX of a leaf as the CAS should read it (a percentage divided by 100). */
function leafLatex(a: Leaf): string {
  switch (a.kind) {
    case 'number':
      return a.percent ? rationalToLatex(scale(a.value, 1n, 100n)) : a.latex;
    case 'expr':
      return a.latex;
    case 'text':
      return a.text;
    default:
      return a satisfies never;
  }
}

/** `x`, `M`, `f(n)`, `a_1`, `\theta`: the left side of an assignment such as `x=5`. */
function isName(a: Answer): boolean {
  if (a.kind === 'choice') return a.rest === null;
  if (a.kind !== 'expr' && a.kind !== 'text') return false;
  const s = a.kind === 'expr' ? a.latex : a.text;
  // A word such as `Area` (parsed as text) names a quantity too.
  return /^(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?(?:'*)(?:\([A-Za-z0-9,]*\))?$/.test(s) || /^[A-Za-z]+$/.test(s);
}

/** A label standing for the answer: a name, a tuple of names `(p,q)`, a ratio of names
 * `V_1:V_2`, a length `|AB|`, `\overline{AB}`, `\angle ABC`, or any expression of names alone
 * (`\frac{AB}{CD}`, `a+b`: Math-Verify's assignment test). */
function isLabel(a: Answer): boolean {
  return isNamedLabel(a) || isSymbolsLabel(a);
}

function isNamedLabel(a: Answer): boolean {
  if (isName(a)) return true;
  if (a.kind === 'seq') return a.open === '(' && a.close === ')' && a.items.every(isName);
  return a.kind === 'expr' && LABEL_RE.test(a.latex);
}

const isSymbolsLabel = (a: Answer): boolean => a.kind === 'expr' && isSymbolsOnly(a.latex);

const NAME = String.raw`(?:[A-Za-z]+|\\[A-Za-z]+)(?:_\{?\w+\}?)?`;
const LABEL_RE = new RegExp(
  String.raw`^(?:${NAME}(?::${NAME})+|\|[A-Za-z]+\||\\overline\{[A-Za-z]+\}|m?\\angle ?[A-Za-z]+|[A-Za-z]_\{\\?[A-Za-z][^{}]*\})$`,
);

/** `x = a = b = 11` is the assignment `x = 11` (Math-Verify keeps the first and last sides). */
function collapseAssignment(rel: Extract<Answer, { kind: 'relation' }>): Extract<Answer, { kind: 'relation' }> {
  if (rel.sides.length > 2 && rel.ops.every((o) => o === '=') && isLabel(rel.sides[0])) {
    return { kind: 'relation', ops: ['='], sides: [rel.sides[0], rel.sides[rel.sides.length - 1]] };
  }
  return rel;
}

/** `(l)-(r)` for an equation `l = r` between two leaves, else null. */
function zeroForm(rel: Extract<Answer, { kind: 'relation' }>): string | null {
  if (rel.sides.length !== 2 || !isLeaf(rel.sides[0]) || !isLeaf(rel.sides[1])) return null;
  return `(${leafLatex(rel.sides[0])})-(${leafLatex(rel.sides[1])})`;
}

const FLIP: Record<RelOp, RelOp> = { '=': '=', '<': '>', '>': '<', '\\le': '\\ge', '\\ge': '\\le', '\\ne': '\\ne' };

/** An inequality chain written left-to-right with `<`/`\le` (`5\ge x` → `x\le 5`). */
function ascending(rel: Extract<Answer, { kind: 'relation' }>): Extract<Answer, { kind: 'relation' }> {
  if (rel.ops.every((o) => o === '>' || o === '\\ge')) {
    return { kind: 'relation', ops: rel.ops.map((o) => FLIP[o]).reverse(), sides: [...rel.sides].reverse() };
  }
  return rel;
}

const NEG_INF: Answer = { kind: 'expr', latex: '-\\infty' };
const POS_INF: Answer = { kind: 'expr', latex: '\\infty' };

const neg = (a: Answer): Answer =>
  a.kind === 'number'
    ? { ...a, value: { ...a.value, num: -a.value.num }, latex: `-(${a.latex})` }
    : { kind: 'expr', latex: `-(${isLeaf(a) ? leafLatex(a) : ''})` };

/** `|z|`: the variable inside an absolute value, or null. */
function absOf(a: Answer): boolean {
  return a.kind === 'expr' && /^\|[A-Za-z](?:_\{?\w+\}?)?\|$/.test(a.latex);
}

/** `x<5` → `(-\infty,5)`, `1\le x<3` → `[1,3)`, `|z|<2` → `(-2,2)`, `1\le|z|\le3` → `[-3,-1]\cup[1,3]`;
 * null when the relation is not of that shape. */
function asInterval(relation: Extract<Answer, { kind: 'relation' }>): Answer | null {
  const rel = ascending(relation);
  if (!rel.ops.every((o) => o === '<' || o === '\\le')) return null;
  const open = (o: RelOp): '(' | '[' => (o === '<' ? '(' : '[');
  const close = (o: RelOp): ')' | ']' => (o === '<' ? ')' : ']');
  const [a, b, c] = rel.sides;
  if (rel.ops.length === 1) {
    if (absOf(a) && isLeaf(b)) return { kind: 'seq', open: '(', close: close(rel.ops[0]), items: [neg(b), b] };
    if (absOf(b) && isLeaf(a)) {
      const lo: Answer = { kind: 'seq', open: '(', close: rel.ops[0] === '<' ? ')' : ']', items: [NEG_INF, neg(a)] };
      return { kind: 'union', items: [lo, { kind: 'seq', open: open(rel.ops[0]), close: ')', items: [a, POS_INF] }] };
    }
    if (isName(a) && !isName(b)) return { kind: 'seq', open: '(', close: close(rel.ops[0]), items: [NEG_INF, b] };
    if (isName(b) && !isName(a)) return { kind: 'seq', open: open(rel.ops[0]), close: ')', items: [a, POS_INF] };
    return null;
  }
  if (rel.ops.length === 2 && absOf(b) && isLeaf(a) && isLeaf(c)) {
    const [o1, o2] = rel.ops;
    const lo: Answer = { kind: 'seq', open: open(o2), close: close(o1), items: [neg(c), neg(a)] };
    return { kind: 'union', items: [lo, { kind: 'seq', open: open(o1), close: close(o2), items: [a, c] }] };
  }
  if (rel.ops.length === 2 && isName(b))
    return { kind: 'seq', open: open(rel.ops[0]), close: close(rel.ops[1]), items: [a, c] };
  return null;
}

/** A relation, or a list of relations joined by "or" (`x<-2, x>2`), as an interval or union. */
function asSetOfReals(a: Answer): Answer | null {
  if (a.kind === 'relation') return asInterval(a);
  if (a.kind !== 'set' || a.braces || a.items.length < 2) return null;
  const parts: Answer[] = [];
  for (const item of a.items) {
    const iv = item.kind === 'relation' ? asInterval(item) : null;
    if (!iv) return null;
    if (iv.kind === 'union') parts.push(...iv.items);
    else parts.push(iv);
  }
  return { kind: 'union', items: parts };
}

/** A string that two answers share exactly when their parsed structures are identical. */
function answerKey(a: Answer): string {
  return JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

// Past this many elements, sets are matched by identical parsed structure only: the pairwise search
// is quadratic and runs in the main thread, where no timeout can stop it.
const MAX_PAIRWISE_ITEMS = 200;

/** Greedy matching is exact here: equivalence is transitive, so any match of an item is as good as another. */
async function sameMultiset(gs: Answer[], ps: Answer[], cmp: Cmp): Promise<boolean> {
  if (gs.length !== ps.length) return false;
  const used = new Array<boolean>(ps.length).fill(false);
  const pKeys = ps.map(answerKey);
  const pairwise = gs.length <= MAX_PAIRWISE_ITEMS;
  for (const g of gs) {
    let found = -1;
    // Identical spellings first: they cost nothing and are the usual case.
    const key = answerKey(g);
    for (let j = 0; j < ps.length && found < 0; j++) if (!used[j] && pKeys[j] === key) found = j;
    for (let j = 0; pairwise && j < ps.length && found < 0; j++)
      if (!used[j] && (await answersEqual(g, ps[j], cmp))) found = j;
    if (found < 0) return false;
    used[found] = true;
  }
  return true;
}

async function sameSequence(gs: Answer[], ps: Answer[], cmp: Cmp): Promise<boolean> {
  if (gs.length !== ps.length) return false;
  for (let i = 0; i < gs.length; i++) if (!(await answersEqual(gs[i], ps[i], cmp))) return false;
  return true;
}

async function leavesEqual(g: Leaf, p: Leaf, cmp: Cmp, trace?: Trace): Promise<boolean> {
  if (g.kind === 'number' && p.kind === 'number') {
    if (trace) trace.rule = g.value.decimal || p.value.decimal ? 'number (rounded to 6 decimals)' : 'number (exact)';
    if (g.percent === p.percent) {
      if (rationalEqual(g.value, p.value)) return true;
      if (!equalToPlacesWritten(g.value, p.value)) return false;
      if (trace) trace.rule = 'number (to the digits written)';
      cmp.note('rounded-decimal');
      return true;
    }
    // One side wrote a percent sign: 28\% = 0.28, and 28\% is accepted for a gold of 28.
    if (trace) trace.rule = 'percent';
    const pct = g.percent ? g : p;
    const other = g.percent ? p : g;
    return rationalEqual(scale(pct.value, 1n, 100n), other.value) || rationalEqual(pct.value, other.value);
  }
  if (g.kind === 'text' && p.kind === 'text') {
    if (trace) trace.rule = 'text';
    return textKey(g.text) === textKey(p.text);
  }
  // A base-b numeral against a bare one (`52_8` vs `52`): the digits must match.
  const digits = (a: Leaf): string | null =>
    a.kind === 'text'
      ? (/^(\d+)_\d+$/.exec(a.text)?.[1] ?? null)
      : a.kind === 'number' && a.value.den === 1n && !a.percent
        ? a.latex
        : null;
  if ((g.kind === 'text' && /^\d+_\d+$/.test(g.text)) || (p.kind === 'text' && /^\d+_\d+$/.test(p.text))) {
    if (trace) trace.rule = 'base-b digits';
    const dg = digits(g);
    return dg !== null && dg === digits(p);
  }
  // A word against an expression that spells it (`\text{yes}` vs `yes` read as y·e·s).
  if (
    (g.kind === 'text' && p.kind === 'expr' && textKey(g.text) === textKey(p.latex)) ||
    (p.kind === 'text' && g.kind === 'expr' && textKey(p.text) === textKey(g.latex))
  ) {
    if (trace) trace.rule = 'text';
    return true;
  }
  if (trace) trace.rule = 'cas';
  return cmp.leaf(leafLatex(g), leafLatex(p));
}

/** Text compared as words: case, spaces and punctuation do not count. */
function textKey(s: string): string {
  return s
    .toLowerCase()
    .replace(/\\(?:text|textbf|textit|textrm|mathrm|mbox|operatorname)\s*\{([^{}]*)\}/g, '$1')
    .replace(/[\s.,;:!?'"`~{}\\]+/g, '');
}

/** Two relations: side by side, read both ways, up to rearrangement and a constant factor, or as
 * the same set of reals. */
async function relationsEqual(
  gold: Extract<Answer, { kind: 'relation' }>,
  pred: Extract<Answer, { kind: 'relation' }>,
  cmp: Cmp,
  trace?: Trace,
): Promise<boolean> {
  const g = ascending(collapseAssignment(gold));
  const p = ascending(collapseAssignment(pred));
  const set = (rule: string): true => {
    if (trace) trace.rule = rule;
    return true;
  };
  const sameOps = g.ops.length === p.ops.length && g.ops.every((o, i) => o === p.ops[i]);
  if (sameOps) {
    if (await sameSequence(g.sides, p.sides, cmp)) return set('relation (side by side)');
    // `a = b` is `b = a`.
    if (g.ops.every((o) => o === '=' || o === '\\ne') && (await sameSequence(g.sides, [...p.sides].reverse(), cmp)))
      return set('relation (sides swapped)');
  }
  const gz = zeroForm(g);
  const pz = zeroForm(p);
  if (gz !== null && pz !== null && sameOps) {
    if (g.ops[0] === '=' || g.ops[0] === '\\ne') {
      // An equation rearranged (`5x-7y+4=0` vs `5x+4=7y`) or scaled: l−r agree up to a factor.
      if ((await cmp.leaf(gz, pz)) || (await cmp.leaf(gz, `-(${pz})`)) || (await cmp.leaf(gz, pz, 'proportional')))
        return set('equation (rearranged/scaled)');
    } else if (await cmp.leaf(gz, pz, 'positive')) return set('inequality (rearranged/scaled)');
  }
  if (sameOps) return false;
  const gi = asInterval(gold);
  const pi = asInterval(pred);
  if (gi !== null && pi !== null && (await answersEqual(gi, pi, cmp))) return set('inequality as interval');
  return false;
}

type Seq = Extract<Answer, { kind: 'seq' }>;
type By = (rule: string, r: boolean | Promise<boolean>) => Promise<boolean>;

const isTuple = (a: Answer): a is Seq => a.kind === 'seq' && a.open === '(' && a.close === ')';

/** `verdict`, noting `form` when it is true. */
async function noted(cmp: Cmp, form: Form, verdict: Promise<boolean>): Promise<boolean> {
  const v = await verdict;
  if (v) cmp.note(form);
  return v;
}

/** Answers of different kinds that may still state the same thing; null when no such rule applies. */
function crossKindEqual(
  gold: Answer,
  pred: Answer,
  cmp: Cmp,
  trace: Trace | undefined,
  by: By,
): Promise<boolean> | null {
  // An assignment `x = 5` against a bare value compares its right side; an equation in the
  // prediction against a bare gold too (Math-Verify follows the gold's form).
  if (gold.kind === 'relation' && pred.kind !== 'relation') {
    const g = collapseAssignment(gold);
    if (g.ops.every((o) => o === '=') && isLabel(g.sides[0])) {
      if (!isNamedLabel(g.sides[0])) cmp.note('labelled-side');
      return by('assignment (right side)', answersEqual(g.sides[g.sides.length - 1], pred, cmp));
    }
    const iv = asInterval(gold);
    const ps = asSetOfReals(pred);
    if (iv !== null && ps !== null) return by('inequality as interval', answersEqual(iv, ps, cmp));
    return by('interval', iv !== null && (pred.kind === 'seq' || pred.kind === 'union') && answersEqual(iv, pred, cmp));
  }
  if (pred.kind === 'relation' && gold.kind !== 'relation') {
    if (pred.ops.every((o) => o === '='))
      return by('equation (right side)', answersEqual(gold, pred.sides[pred.sides.length - 1], cmp));
    const iv = asInterval(pred);
    return by(
      'inequality as interval',
      iv !== null && (gold.kind === 'seq' || gold.kind === 'union') && answersEqual(gold, iv, cmp),
    );
  }
  // `x<-2 or x>2` against a union of intervals.
  if ((gold.kind === 'union' || gold.kind === 'seq') && pred.kind === 'set') {
    const ps = asSetOfReals(pred);
    if (ps) return by('inequalities as union', answersEqual(gold, ps, cmp));
  }
  // A set or bare list against a parenthesised tuple (Math-Verify's open interval or tuple against
  // a finite set): in order when the gold is the tuple, in any order when the gold is the set.
  if (isTuple(gold) && pred.kind === 'set' && pred.items.length > 1)
    return noted(cmp, 'tuple-set', by('tuple against set (in order)', sameSequence(gold.items, pred.items, cmp)));
  if (gold.kind === 'set' && gold.items.length > 1 && isTuple(pred))
    return noted(cmp, 'tuple-set', by('set against tuple (any order)', sameMultiset(gold.items, pred.items, cmp)));
  // A one-element set against a single value, and a choice letter followed by its value.
  if (gold.kind === 'set' && gold.items.length === 1 && pred.kind !== 'set')
    return answersEqual(gold.items[0], pred, cmp, trace);
  if (pred.kind === 'set' && pred.items.length === 1 && gold.kind !== 'set')
    return answersEqual(gold, pred.items[0], cmp, trace);
  if (pred.kind === 'choice' && gold.kind !== 'choice')
    return by('choice value', pred.rest !== null && answersEqual(gold, pred.rest, cmp));
  // A letter gold written out as a bare expression (`C`) by the model.
  if (gold.kind === 'choice' && pred.kind !== 'choice')
    return by('choice letter', pred.kind === 'expr' && pred.latex === gold.letter);
  return null;
}

/** Whether `pred` states the same answer as `gold`; `trace` (top level only) learns the rule. */
export async function answersEqual(gold: Answer, pred: Answer, cmp: Cmp, trace?: Trace): Promise<boolean> {
  if (isLeaf(gold) && isLeaf(pred)) return leavesEqual(gold, pred, cmp, trace);
  const by: By = async (rule, r) => {
    const v = await r;
    if (trace) trace.rule = rule;
    return v;
  };
  const cross = crossKindEqual(gold, pred, cmp, trace, by);
  if (cross) return cross;

  switch (gold.kind) {
    case 'number':
    case 'expr':
    case 'text':
      return by('different kinds', false);
    case 'choice':
      return by('choice letter', pred.kind === 'choice' && pred.letter === gold.letter);
    case 'set': {
      const pm = gold.plusMinus || (pred.kind === 'set' && pred.plusMinus);
      const same = by('set (any order)', pred.kind === 'set' && sameMultiset(gold.items, pred.items, cmp));
      return pm ? noted(cmp, 'pm-set', same) : same;
    }
    case 'union':
      return by('union (any order)', pred.kind === 'union' && sameMultiset(gold.items, pred.items, cmp));
    case 'seq':
      if (pred.kind === 'matrix') return answersEqual(pred, gold, cmp, trace);
      return by(
        'tuple/interval (in order)',
        pred.kind === 'seq' &&
          pred.open === gold.open &&
          pred.close === gold.close &&
          sameSequence(gold.items, pred.items, cmp),
      );
    case 'matrix': {
      if (pred.kind === 'seq') {
        // A column or row vector against a parenthesised tuple, element by element.
        const flat = gold.rows.every((r) => r.length === 1)
          ? gold.rows.map((r) => r[0])
          : gold.rows.length === 1
            ? gold.rows[0]
            : null;
        return by(
          'vector as tuple',
          flat !== null && pred.open === '(' && pred.close === ')' && sameSequence(flat, pred.items, cmp),
        );
      }
      if (pred.kind !== 'matrix' || pred.rows.length !== gold.rows.length) return by('matrix (element-wise)', false);
      for (let i = 0; i < gold.rows.length; i++)
        if (!(await sameSequence(gold.rows[i], pred.rows[i], cmp))) return by('matrix (element-wise)', false);
      return by('matrix (element-wise)', true);
    }
    case 'relation':
      return pred.kind === 'relation' && relationsEqual(gold, pred, cmp, trace);
    default:
      return gold satisfies never;
  }
}
