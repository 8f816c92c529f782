// Structural equivalence of two parsed answers (Math-Verify's semantics): sets and unions order-free,
// tuples/intervals ordered with their ends, matrices element-wise, `x=5` ~ `5`, `x\le5` ~ `5\ge x`
// ~ `(-\infty,5]`, percentages, choices. Plain numbers are settled here; any other pair of leaves
// goes to `leafEqual` (the CAS pool), which may throw CasTimeout.
import type { Answer, RelOp } from './parse.ts';
import { rationalEqual, scale, rationalToLatex } from './numbers.ts';

export type LeafEqual = (gold: string, pred: string) => Promise<boolean>;

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

/** `(l)-(r)` for an equation `l = r` between two leaves, else null. */
function zeroForm(rel: Extract<Answer, { kind: 'relation' }>): string | null {
  if (rel.sides.length !== 2 || !isLeaf(rel.sides[0]) || !isLeaf(rel.sides[1])) return null;
  return `(${leafLatex(rel.sides[0])})-(${leafLatex(rel.sides[1])})`;
}

const FLIP: Record<RelOp, RelOp> = { '=': '=', '<': '>', '>': '<', '\\le': '\\ge', '\\ge': '\\le' };

/** An inequality chain written left-to-right with `<`/`\le` (`5\ge x` → `x\le 5`). */
function ascending(rel: Extract<Answer, { kind: 'relation' }>): Extract<Answer, { kind: 'relation' }> {
  if (rel.ops.every((o) => o === '>' || o === '\\ge')) {
    return { kind: 'relation', ops: rel.ops.map((o) => FLIP[o]).reverse(), sides: [...rel.sides].reverse() };
  }
  return rel;
}

const NEG_INF: Answer = { kind: 'expr', latex: '-\\infty' };
const POS_INF: Answer = { kind: 'expr', latex: '\\infty' };

/** `x<5` → `(-\infty,5)`, `1\le x<3` → `[1,3)`; null when the relation is not of that shape. */
function asInterval(relation: Extract<Answer, { kind: 'relation' }>): Answer | null {
  const rel = ascending(relation);
  if (!rel.ops.every((o) => o === '<' || o === '\\le')) return null;
  const open = (o: RelOp): '(' | '[' => (o === '<' ? '(' : '[');
  const close = (o: RelOp): ')' | ']' => (o === '<' ? ')' : ']');
  const [a, b, c] = rel.sides;
  if (rel.ops.length === 1) {
    if (isName(a) && !isName(b)) return { kind: 'seq', open: '(', close: close(rel.ops[0]), items: [NEG_INF, b] };
    if (isName(b) && !isName(a)) return { kind: 'seq', open: open(rel.ops[0]), close: ')', items: [a, POS_INF] };
    return null;
  }
  if (rel.ops.length === 2 && isName(b)) return { kind: 'seq', open: open(rel.ops[0]), close: close(rel.ops[1]), items: [a, c] };
  return null;
}

/** A string that two answers share exactly when their parsed structures are identical. */
function answerKey(a: Answer): string {
  return JSON.stringify(a, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

// Past this many elements, sets are matched by identical parsed structure only: the pairwise search
// is quadratic and runs in the main thread, where no timeout can stop it.
const MAX_PAIRWISE_ITEMS = 200;

/** Greedy matching is exact here: equivalence is transitive, so any match of an item is as good as another. */
async function sameMultiset(gs: Answer[], ps: Answer[], leaf: LeafEqual): Promise<boolean> {
  if (gs.length !== ps.length) return false;
  const used = new Array<boolean>(ps.length).fill(false);
  const pKeys = ps.map(answerKey);
  const pairwise = gs.length <= MAX_PAIRWISE_ITEMS;
  for (const g of gs) {
    let found = -1;
    // Identical spellings first: they cost nothing and are the usual case.
    const key = answerKey(g);
    for (let j = 0; j < ps.length && found < 0; j++) if (!used[j] && pKeys[j] === key) found = j;
    for (let j = 0; pairwise && j < ps.length && found < 0; j++) if (!used[j] && (await answersEqual(g, ps[j], leaf))) found = j;
    if (found < 0) return false;
    used[found] = true;
  }
  return true;
}

async function sameSequence(gs: Answer[], ps: Answer[], leaf: LeafEqual): Promise<boolean> {
  if (gs.length !== ps.length) return false;
  for (let i = 0; i < gs.length; i++) if (!(await answersEqual(gs[i], ps[i], leaf))) return false;
  return true;
}

async function leavesEqual(g: Leaf, p: Leaf, leaf: LeafEqual): Promise<boolean> {
  if (g.kind === 'number' && p.kind === 'number') {
    if (g.percent === p.percent) return rationalEqual(g.value, p.value);
    // One side wrote a percent sign: 28\% = 0.28, and 28\% is accepted for a gold of 28.
    const pct = g.percent ? g : p;
    const other = g.percent ? p : g;
    return rationalEqual(scale(pct.value, 1n, 100n), other.value) || rationalEqual(pct.value, other.value);
  }
  if (g.kind === 'text' && p.kind === 'text') return g.text.toLowerCase() === p.text.toLowerCase();
  // A base-b numeral against a bare one (`52_8` vs `52`): the digits must match.
  const digits = (a: Leaf): string | null => (a.kind === 'text' ? (/^(\d+)_\d+$/.exec(a.text)?.[1] ?? null) : a.kind === 'number' && a.value.den === 1n && !a.percent ? a.latex : null);
  if ((g.kind === 'text' && /^\d+_\d+$/.test(g.text)) || (p.kind === 'text' && /^\d+_\d+$/.test(p.text))) {
    const dg = digits(g);
    return dg !== null && dg === digits(p);
  }
  return leaf(leafLatex(g), leafLatex(p));
}

/** Whether `pred` states the same answer as `gold`. */
export async function answersEqual(gold: Answer, pred: Answer, leaf: LeafEqual): Promise<boolean> {
  if (isLeaf(gold) && isLeaf(pred)) return leavesEqual(gold, pred, leaf);

  // An assignment `x = 5` against a bare value compares its right side.
  if (gold.kind === 'relation' && pred.kind !== 'relation') {
    if (gold.ops.every((o) => o === '=') && isName(gold.sides[0])) return answersEqual(gold.sides[gold.sides.length - 1], pred, leaf);
    const iv = asInterval(gold);
    return iv !== null && (pred.kind === 'seq' || pred.kind === 'union') && answersEqual(iv, pred, leaf);
  }
  if (pred.kind === 'relation' && gold.kind !== 'relation') {
    if (pred.ops.every((o) => o === '=') && isName(pred.sides[0])) return answersEqual(gold, pred.sides[pred.sides.length - 1], leaf);
    const iv = asInterval(pred);
    return iv !== null && (gold.kind === 'seq' || gold.kind === 'union') && answersEqual(gold, iv, leaf);
  }

  // A one-element set against a single value, and a choice letter followed by its value.
  if (gold.kind === 'set' && gold.items.length === 1 && pred.kind !== 'set') return answersEqual(gold.items[0], pred, leaf);
  if (pred.kind === 'set' && pred.items.length === 1 && gold.kind !== 'set') return answersEqual(gold, pred.items[0], leaf);
  if (pred.kind === 'choice' && gold.kind !== 'choice') return pred.rest !== null && answersEqual(gold, pred.rest, leaf);
  if (gold.kind === 'choice' && pred.kind !== 'choice') {
    // A letter gold written out as a bare expression (`C`) by the model.
    return pred.kind === 'expr' && pred.latex === gold.letter;
  }

  switch (gold.kind) {
    case 'number':
    case 'expr':
    case 'text':
      return false;
    case 'choice':
      return pred.kind === 'choice' && pred.letter === gold.letter;
    case 'set':
      return pred.kind === 'set' && sameMultiset(gold.items, pred.items, leaf);
    case 'union':
      return pred.kind === 'union' && sameMultiset(gold.items, pred.items, leaf);
    case 'seq':
      if (pred.kind === 'matrix') return answersEqual(pred, gold, leaf);
      return pred.kind === 'seq' && pred.open === gold.open && pred.close === gold.close && sameSequence(gold.items, pred.items, leaf);
    case 'matrix': {
      if (pred.kind === 'seq') {
        // A column or row vector against a parenthesised tuple, element by element.
        const flat = gold.rows.every((r) => r.length === 1) ? gold.rows.map((r) => r[0]) : gold.rows.length === 1 ? gold.rows[0] : null;
        return flat !== null && pred.open === '(' && pred.close === ')' && sameSequence(flat, pred.items, leaf);
      }
      if (pred.kind !== 'matrix' || pred.rows.length !== gold.rows.length) return false;
      for (let i = 0; i < gold.rows.length; i++) if (!(await sameSequence(gold.rows[i], pred.rows[i], leaf))) return false;
      return true;
    }
    case 'relation': {
      if (pred.kind !== 'relation') return false;
      const g = ascending(gold);
      const p = ascending(pred);
      if (g.ops.length !== p.ops.length || g.ops.some((o, i) => o !== p.ops[i])) {
        const gi = asInterval(gold);
        const pi = asInterval(pred);
        return gi !== null && pi !== null && answersEqual(gi, pi, leaf);
      }
      if (await sameSequence(g.sides, p.sides, leaf)) return true;
      if (!g.ops.every((o) => o === '=')) return false;
      // `a = b` is `b = a`.
      if (await sameSequence(g.sides, [...p.sides].reverse(), leaf)) return true;
      // An equation rearranged (`5x-7y+4=0` vs `5x+4=7y`): the same zero set when l−r agree up to sign.
      const gz = zeroForm(g);
      const pz = zeroForm(p);
      if (gz === null || pz === null) return false;
      return (await leaf(gz, pz)) || leaf(gz, `-(${pz})`);
    }
    default:
      return gold satisfies never;
  }
}
