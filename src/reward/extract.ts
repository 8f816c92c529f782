// Finding the answer: the final answer of a model response after `</think>`, chosen as Math-Verify
// chooses it (targets in priority order — "final answer is … I hope", then boxes and "final answer
// is …", "answer: …", "answer … $x$", and last the rightmost math or plain number; ties go to the
// rightmost), and the gold answer of a benchmark row in any of the shapes the benchmark files use
// (142.0, "$…$" lists, full solutions ending in a box, worked solutions without one). Every scan
// here is linear in the text.
import type { Form, NoteForm } from './forms.ts';

const BOX_RE = /\\(?:boxed|fbox)(?![A-Za-z])/g;

/** Index just past the `}` that closes the `{` at `open` (before `limit`), or -1 when the braces
 * never balance. `\{` and `\}` are literal braces (set notation), not grouping. */
export function matchBrace(text: string, open: number, limit = text.length): number {
  let depth = 0;
  for (let i = open; i < limit; i++) {
    const c = text[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** The content of the last `\boxed{…}` / `\fbox{…}` / `\boxed 5`, or null when there is none,
 * when it is empty, or when its braces never close (a response cut off inside the box).
 * `undefined` means the text has no box at all (so the fallbacks may be tried). */
export function lastBoxed(text: string): string | null | undefined {
  let start = -1;
  let end = -1;
  for (const m of text.matchAll(BOX_RE)) {
    start = m.index;
    end = m.index + m[0].length;
  }
  if (start < 0) return undefined;
  let i = end;
  while (i < text.length && /\s/.test(text[i])) i++;
  if (text[i] === '{') {
    const close = matchBrace(text, i);
    if (close < 0) return null;
    const inner = text.slice(i + 1, close - 1).trim();
    return inner === '' ? null : inner;
  }
  // `\boxed 5`: one token, up to white space or the end of the math.
  const m = /^[^\s$]+/.exec(text.slice(i));
  if (!m || i === end) return null;
  return m[0].replace(/[.,]+$/, '') || null;
}

/** Math inside the first `$…$` / `\(…\)` of a short span, else the span itself. */
function mathOf(span: string): string {
  const m = /\$\$?([^$]+)\$\$?|\\\(([\s\S]+?)\\\)/.exec(span);
  return (m ? (m[1] ?? m[2]) : span).trim();
}

/** Which extraction target supplied the answer (Math-Verify's targets and priorities):
 * 'final-answer' ("final answer is …", 0 or 50), 'boxed' (50), 'answer-colon' ("answer: …", 100),
 * 'answer-word' ("answer … $x$", 200), 'latex' (the last `$…$`, `\[…\]`, 300), 'number' (the last
 * plain number or arithmetic, 300), 'bare' (a short reply that is its own answer). */
export type ExtractRule = 'final-answer' | 'boxed' | 'answer-colon' | 'answer-word' | 'latex' | 'number' | 'bare';

export interface Extracted {
  answer: string;
  rule: ExtractRule;
  /** The form of issue 30 that finding it took ('several-boxes', 'decimal-comma'), if any. */
  form?: Form;
}

interface Candidate extends Extracted {
  priority: number;
  end: number;
  /** Where the math begins (latex candidates). */
  start?: number;
}

/** Better of two candidates: the lower priority, then the one ending further right. */
function better(a: Candidate | null, b: Candidate | null): Candidate | null {
  if (!a) return b;
  if (!b) return a;
  if (a.priority !== b.priority) return a.priority < b.priority ? a : b;
  return b.end >= a.end ? b : a;
}

// Math-Verify joins a box to the box after it when fewer than 10 characters separate them, or fewer
// than 70 that hold one of these and the two contents differ; a repeated content counts once.
const BOX_SEPARATOR_RE = /\b(?:and|or)\b|[,;]/i;

function boxesJoin(between: string, content: string, next: string): boolean {
  return between.length < 10 || (content !== next && between.length < 70 && BOX_SEPARATOR_RE.test(between));
}

/** The last box, joined with the boxes before it as Math-Verify joins them (`\boxed{2} and
 * \boxed{5}` is the set {2, 5}). Each box's braces are matched before the next box starts, so the
 * scan stays linear however many boxes there are. */
function boxedCandidate(text: string): Candidate | null | undefined {
  const starts = [...text.matchAll(BOX_RE)].map((m) => ({ at: m.index, after: m.index + m[0].length }));
  if (starts.length === 0) return undefined;
  const contents: string[] = [];
  let end = -1;
  let nextStart = text.length;
  for (let k = starts.length - 1; k >= 0; k--) {
    const last = k === starts.length - 1;
    const box = boxAt(text, starts[k].after, nextStart);
    // A box left open or empty: no answer when it is the last one; else the joining stops there.
    if (!box || (!box.braced && !last)) {
      if (last) return null;
      break;
    }
    if (!last && !boxesJoin(text.slice(box.end, nextStart), box.content, contents[0])) break;
    if (last) end = box.end;
    if (contents[0] !== box.content) contents.unshift(box.content);
    nextStart = starts[k].at;
  }
  const form = contents.length > 1 ? 'several-boxes' : undefined;
  return { answer: contents.join(','), rule: 'boxed', priority: 50, end, form };
}

/** The content of the box whose name ends at `i` (its braces closing before `limit`), and the
 * index just past it; `\boxed 5` is one token, up to white space or the end of the math. */
function boxAt(text: string, i: number, limit: number): { content: string; end: number; braced: boolean } | null {
  const nameEnd = i;
  while (i < limit && /\s/.test(text[i])) i++;
  if (text[i] === '{') {
    const close = matchBrace(text, i, limit);
    if (close < 0) return null;
    const content = text.slice(i + 1, close - 1).trim();
    return content === '' ? null : { content, end: close, braced: true };
  }
  const m = /^[^\s$]+/.exec(text.slice(i, Math.min(limit, i + 200)));
  if (!m || i === nameEnd) return null;
  const content = m[0].replace(/[.,]+$/, '');
  return content === '' ? null : { content, end: i + m[0].length, braced: false };
}

// "The final answer is 5." / "Answer: $\frac12$": what follows on its line is the answer.
const PHRASE_RE = /final answer.{0,100}?\s+is\s*:?|answer\s*(?:is)?\s*:/gi;

function phraseCandidate(text: string): Candidate | null {
  let best: Candidate | null = null;
  const hits = [...text.matchAll(PHRASE_RE)];
  for (let k = 0; k < hits.length; k++) {
    const at = hits[k].index + hits[k][0].length;
    const stop = k + 1 < hits.length ? hits[k + 1].index : text.length;
    const seg = text.slice(at, Math.min(stop, at + 500)).split('\n')[0];
    const lead = /^\s*(?:\*\*)?\s*/.exec(seg)![0].length;
    const rest = seg.slice(lead);
    // Math or a number right after the phrase is the answer; otherwise the rest of its line.
    const env = /^(?:\$\$?([^$]+)\$\$?|\\\(([^\n]+?)\\\)|\\\[([^\n]+?)\\\])/.exec(rest);
    const num = /^[$€£]?(-?\d+(?:[ ,]\d{3})*(?:[.,]\d+)?)(\s*(?:\\?%|percent(?:age)?|pct))?(?=$|[\s.,;:)*])/i.exec(
      rest,
    );
    let ans: string;
    let form: Form | undefined;
    let end = at + seg.length;
    let near: Candidate | null;
    if (env) {
      ans = (env[1] ?? env[2] ?? env[3]).trim();
      end = at + lead + env[0].length;
    } else if (num && !/^\.\d/.test(rest.slice(num[0].length))) {
      ({ answer: ans, form } = numberReading(num[1], num[2]));
      end = at + lead + num[0].length;
    } else if (/[A-Za-z]{2,}\s+[A-Za-z]{2,}/.test(rest) && (near = firstMathNear(text, at))) {
      // Prose after the phrase ("Answer: the number is 5."): the first math or number near it.
      ({ answer: ans, end, form } = near);
    } else {
      // A sentence end is a period followed by space or end, not a decimal point.
      ans = mathOf(rest)
        .replace(/\*\*/g, '')
        .replace(/\.(\s.*)?$/, '')
        .replace(/[.\s]+$/, '')
        .trim();
    }
    // `final answer is $\boxed{5}$`: the box is the answer (the boxed target reads it).
    if (ans === '' || /\\(?:boxed|fbox)(?![A-Za-z])/.test(ans)) continue;
    const final = /^final/i.test(hits[k][0]);
    const priority = final ? (/^\.?\s?I hope/.test(text.slice(end, end + 10)) ? 0 : 50) : 100;
    best = better(best, { answer: ans, rule: final ? 'final-answer' : 'answer-colon', priority, end, form });
  }
  return best;
}

// Math environments, as Math-Verify's plain-LaTeX target finds them: `$$…$$`, `\[…\]`, `$…$`,
// `\(…\)`, a bare `\frac{3}{4}`, and ` [ … ] ` between white space; a percent word may follow.
// No environment's content holds its own opener, so an unclosed `\[` costs one scan, not one per `\[`.
const ENV_RE =
  /(?<!\\)\$\$([^$]+?)\$\$|(?<!\\)\\\[((?:[^\\]|\\(?![[\]]))+?)\\\]|(?<![\\\d$])\$((?:\\\$|[^\n$])+?)(?<!\\)\$|\\\(((?:[^\n\\]|\\(?![()]))+?)\\\)|(-?\\[dt]?frac\{-?\d+(?:[.,]\d+)?\}\{-?\d+(?:[.,]\d+)?\})|(?<=\s)\[([^\n\][]+?)\](?=\s)/g;
const PERCENT_WORD_RE = /^\s*(?:\\?%|percent(?:age)?|pct)(?![A-Za-z])/i;
const ENV_JOINT_RE = /^\s*(?:,?\s*and|,?\s*or|,)\s*$/i;

/** The last math environment, joined with those right before it by `and`/`or`/`,` (a set). */
function latexCandidate(
  text: string,
  from: number,
  priority: number,
  rule: ExtractRule,
  window = Infinity,
): Candidate | null {
  const envs: Array<{ at: number; end: number; body: string }> = [];
  ENV_RE.lastIndex = from;
  for (let m = ENV_RE.exec(text); m; m = ENV_RE.exec(text)) {
    if (m.index - from > window) break;
    let body = (m[1] ?? m[2] ?? m[3] ?? m[4] ?? m[5] ?? m[6]).trim();
    let end = m.index + m[0].length;
    const pct = PERCENT_WORD_RE.exec(text.slice(end, end + 12));
    if (pct) {
      body += '\\%';
      end += pct[0].length;
    }
    if (body !== '') envs.push({ at: m.index, end, body });
    if (window !== Infinity) break;
  }
  if (envs.length === 0) return null;
  const parts = [envs[envs.length - 1].body];
  for (let k = envs.length - 2; k >= 0 && parts.length < 6; k--) {
    if (!ENV_JOINT_RE.test(text.slice(envs[k].end, envs[k + 1].at))) break;
    parts.unshift(envs[k].body);
  }
  return {
    answer: parts.join(','),
    rule,
    priority,
    end: envs[envs.length - 1].end,
    start: envs[envs.length - parts.length].at,
  };
}

// Plain numbers (`1,234.5`, `1 234`, a decimal comma `2,74`, `50 percent`, `$100`) and plain
// arithmetic (`3/4`, `2^10`), each after a space, `=` or the start, as Math-Verify's expression target.
const NUMBER_RE =
  /(?<=^|[\s=*])[$€£¥₹]?(?<![\d.])(-?[1-9]\d{0,2}(?:[ ,]\d{3})+(?:\.\d+)?(?!\d)|-?\d+[.,]\d+|\.\d+|-?\d+)(\s*(?:%|\\%|percent(?:age)?|pct)(?![A-Za-z]))?/gi;
const FIRST_NUMBER_RE = new RegExp(NUMBER_RE.source, 'i');
// A reply that is one plain number and nothing else (a full stop may end it).
const ONLY_NUMBER_RE = new RegExp(`^${NUMBER_RE.source}\\.?$`, 'i');
const EXPR_RE = /(?<=^|[\s=*])-?\(?-?\d[\d.+\-*×/^()÷]*[+\-*×/^÷][\d.+\-*×/^()÷]*[\d)]/g;
// An inline `$` that ends its line opens no math (inline math never spans lines), and Math-Verify
// reads nothing up to the `$` that closes such a span, not even a plain number inside it.
const BROKEN_SPAN_RE = /(?<![\\$])\$(?!\$)[ \t]*\n[^$]*(?<!\\)\$/g;

/** A plain number as LaTeX: separators dropped, a decimal comma made a point, a percent `\%`. */
function numberReading(num: string, percent: string | undefined): { answer: string; form?: Form } {
  let s = num;
  const decimalComma = /^-?\d+,\d+$/.test(s) && !/^-?[1-9]\d{0,2},\d{3}$/.test(s);
  if (decimalComma) s = s.replace(',', '.');
  s = s.replace(/[ ,]/g, '');
  const answer = percent ? `${s}\\%` : s;
  return decimalComma ? { answer, form: 'decimal-comma' } : { answer };
}

/** The rightmost plain number or arithmetic (the longer one where both end at the same place),
 * outside broken `$` spans. Matches come in order and do not overlap, so the last one ends furthest
 * right; only it is read. */
function numberCandidate(text: string): Candidate | null {
  const hidden = [...text.matchAll(BROKEN_SPAN_RE)].map((m) => [m.index, m.index + m[0].length]);
  const visible = (at: number): boolean => !hidden.some(([a, b]) => at > a && at < b);
  let num: RegExpExecArray | null = null;
  for (const m of text.matchAll(NUMBER_RE)) if (visible(m.index)) num = m;
  let expr: RegExpExecArray | null = null;
  for (const m of text.matchAll(EXPR_RE))
    if (visible(m.index) && (m[0].match(/\(/g)?.length ?? 0) === (m[0].match(/\)/g)?.length ?? 0)) expr = m;
  const end = (m: RegExpExecArray): number => m.index + m[0].length;
  if (expr && (!num || end(expr) >= end(num))) {
    const latex = expr[0].replace(/\*/g, '\\cdot ').replace(/×/g, '\\times ').replace(/÷/g, '\\div ');
    return { answer: latex, rule: 'number', priority: 300, end: end(expr) };
  }
  if (!num) return null;
  const { answer, form } = numberReading(num[1], num[2]);
  const c: Candidate = { answer, rule: 'number', priority: 300, end: end(num) };
  if (form) c.form = form;
  return c;
}

/** The first math or number starting within 50 characters after `from` (an 'answer-word' candidate);
 * only a bounded slice is searched. */
function firstMathNear(text: string, from: number): Candidate | null {
  const near = latexCandidate(text.slice(from, from + 2000), 0, 200, 'answer-word', 50);
  const env = near && { ...near, start: near.start! + from, end: near.end + from };
  const num = numberAfterAnswer(text.slice(from, from + 120).split('\n')[0]);
  if (!num || (env && from + num.at >= env.start)) return env;
  return { answer: num.answer, form: num.form, rule: 'answer-word', priority: 200, end: from + num.end };
}

/** The number an answer word points at, as Math-Verify reads it: the one after the last `=` within
 * 100 characters ("answer: 2 + 3 = 5"), else the first within 50; never one followed by `=`. */
function numberAfterAnswer(line: string): { answer: string; form?: Form; at: number; end: number } | null {
  const eq = line.slice(0, 100).lastIndexOf('=');
  const tries = eq >= 0 ? [eq + 1, 0] : [0];
  for (const from of tries) {
    const m = FIRST_NUMBER_RE.exec(line.slice(from));
    if (!m) continue;
    const at = from + m.index;
    const end = at + m[0].length;
    if ((from === 0 && m.index > 50) || /^\s*=/.test(line.slice(end))) continue;
    return { ...numberReading(m[1], m[2]), at, end };
  }
  return null;
}

/** "… the answer is $\frac{3}{4}$": the first math or number within 50 characters of the word. */
function answerWordCandidate(text: string): Candidate | null {
  let best: Candidate | null = null;
  // The last few mentions decide (the rightmost match wins); a text repeating the word costs no more.
  // Like Math-Verify's `(?i:answer)`, "answers" and "answered" count too.
  const hits = [...text.matchAll(/answer/gi)].slice(-20);
  for (const m of hits) {
    const from = m.index + m[0].length;
    best = better(best, firstMathNear(text, from));
  }
  return best;
}

/** The final answer of a full model response and the target it came from, or null. */
export function extractTarget(response: string): Extracted | null {
  const think = response.lastIndexOf('</think>');
  const text = think >= 0 ? response.slice(think + '</think>'.length) : response;
  const boxed = boxedCandidate(text);
  // A box cut off or left empty: the response failed to answer.
  if (boxed === null) return null;
  const best = better(boxed ?? null, phraseCandidate(text)) ?? answerWordCandidate(text) ?? unanchored(text);
  if (!best) return null;
  const found: Extracted = { answer: best.answer, rule: best.rule };
  if (best.form) found.form = best.form;
  return found;
}

/** No box and no answer phrase: the rightmost math or plain number (Math-Verify's priority 300),
 * or a bare short reply ("5", "x = 3 cm", "Evelyn") as its own answer; a number with a word after
 * it ("5 apples") is the number, and so is a reply that is one plain number ("2000,75"). */
function unanchored(text: string): Candidate | null {
  const latex = latexCandidate(text, 0, 300, 'latex');
  const number = numberCandidate(text);
  const bare = text.trim();
  const worded = /(?<![\\A-Za-z])(?!(?:sin|cos|tan|cot|sec|csc|log|ln|exp|sqrt|pi)(?![A-Za-z]))[A-Za-z]{3,}/.test(bare);
  if (
    !latex &&
    !(worded && number) &&
    !ONLY_NUMBER_RE.test(bare) &&
    bare !== '' &&
    bare.length <= 100 &&
    !bare.includes('\n') &&
    !/[A-Za-z]{2,}\s+[A-Za-z]{2,}/.test(bare)
  ) {
    const answer = mathOf(bare.replace(/\*\*/g, '')).replace(/\.$/, '');
    if (answer !== '') return { answer, rule: 'bare', priority: 300, end: text.length };
  }
  return better(latex, number);
}

/** The final answer of a full model response, or null when it gives none. */
export function extractAnswer(response: string): string | null {
  return extractTarget(response)?.answer ?? null;
}

/** Whether a gold reads as prose around math ("So $r = 3$ and …", "$12$ apples"): Math-Verify
 * parses a gold as it parses a response, so its answer is found the same way. */
function isWorkedSolution(s: string): boolean {
  if (!s.includes('$') && !s.includes('\\[') && !s.includes('\\(')) return false;
  return /[A-Za-z]{2,}/.test(s.replace(ENV_RE, ' '));
}

/** Normalises a gold field into the list of acceptable answers: numbers (142.0 → "142"),
 * "$…$" strings (dollars stripped), lists (each element; OlympiadBench), full solutions (the last
 * `\boxed{}`, as for Minerva), and worked solutions without a box (their answer, as a response's). */
export function goldAnswer(raw: string | number | readonly string[], note?: NoteForm): string[] {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) return [String(raw)];
    return [Number.isInteger(raw) ? raw.toFixed(0) : String(raw)];
  }
  if (Array.isArray(raw)) {
    const out: string[] = [];
    for (const r of raw) for (const g of goldAnswer(r, note)) if (!out.includes(g)) out.push(g);
    return out;
  }
  let s = String(raw).trim();
  const boxed = lastBoxed(s);
  const solved = typeof boxed !== 'string' && isWorkedSolution(s) ? extractTarget(s) : null;
  if (typeof boxed === 'string') s = boxed;
  else if (solved) {
    s = solved.answer;
    note?.('worked-solution');
  }
  // Unescaped `$` are math delimiters; `\$` is a dollar sign, kept for the normaliser.
  s = s
    .replace(/(^|[^\\])\$+/g, '$1')
    .replace(/^\$+/, '')
    .trim();
  s = s.replace(/^([+-]?\d+)\.0+$/, '$1');
  return s === '' ? [] : [s];
}
