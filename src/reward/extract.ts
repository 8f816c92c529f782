// Finding the answer: the final answer of a model response (the last `\boxed{…}` after `</think>`,
// else "final answer is …" / "answer: …"), and the gold answer of a benchmark row in any of the
// shapes the benchmark files use (142.0, "$…$" lists, full solutions ending in a box).
// Every scan here is linear in the text, so a 100 KB response costs microseconds.

const BOX_RE = /\\(?:boxed|fbox)(?![A-Za-z])/g;

/** Index just past the `}` that closes the `{` at `open`, or -1 when the braces never balance.
 * `\{` and `\}` are literal braces (set notation), not grouping. */
export function matchBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
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

// "The final answer is 5." / "Answer: $\frac12$" — the last such phrase wins, and what follows it
// on its line is the answer.
const FALLBACK_RE = /final answer is|answer\s*(?:is)?\s*:/gi;

function fallbackAnswer(text: string): string | null {
  let end = -1;
  for (const m of text.matchAll(FALLBACK_RE)) end = m.index + m[0].length;
  if (end < 0) return null;
  const line = text.slice(end, end + 500).split('\n')[0].replace(/^\s*(?:\*\*)?\s*/, '');
  let ans = mathOf(line);
  // A sentence end is a period followed by space or end, not a decimal point.
  ans = ans.replace(/\*\*/g, '').replace(/\.(\s.*)?$/, '').replace(/[.\s]+$/, '').trim();
  return ans === '' ? null : ans;
}

/** The final answer of a full model response, or null when it gives none. */
export function extractAnswer(response: string): string | null {
  const think = response.lastIndexOf('</think>');
  const text = think >= 0 ? response.slice(think + '</think>'.length) : response;
  const boxed = lastBoxed(text);
  if (boxed !== undefined) return boxed;
  const phrase = fallbackAnswer(text);
  if (phrase !== null) return phrase;
  // A bare short reply ("5", "$\frac12$", "x = 3 cm") is its own answer; prose is not.
  const bare = text.trim();
  if (bare === '' || bare.length > 100 || bare.includes('\n') || /[A-Za-z]{2,}\s+[A-Za-z]{2,}/.test(bare)) return null;
  return mathOf(bare).replace(/\.$/, '') || null;
}

/** Normalises a gold field into the list of acceptable answers: numbers (142.0 → "142"),
 * "$…$" strings (dollars stripped), lists (each element; OlympiadBench), and full solutions
 * (the last `\boxed{}`, as for Minerva). */
export function goldAnswer(raw: string | number | readonly string[]): string[] {
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) return [String(raw)];
    return [Number.isInteger(raw) ? raw.toFixed(0) : String(raw)];
  }
  if (Array.isArray(raw)) {
    const out: string[] = [];
    for (const r of raw) for (const g of goldAnswer(r)) if (!out.includes(g)) out.push(g);
    return out;
  }
  let s = String(raw).trim();
  const boxed = lastBoxed(s);
  if (typeof boxed === 'string') s = boxed;
  // Unescaped `$` are math delimiters; `\$` is a dollar sign, kept for the normaliser.
  s = s.replace(/(^|[^\\])\$+/g, '$1').replace(/^\$+/, '').trim();
  s = s.replace(/^([+-]?\d+)\.0+$/, '$1');
  return s === '' ? [] : [s];
}
