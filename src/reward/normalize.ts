// LaTeX clean-up before parsing: one spelling per meaning, so that `\dfrac12`, `\left(`, `1{,}000`,
// `5\text{ cm}`, `75^\circ`, `−3` and `≤` reach the parser as `\frac12`, `(`, `1000`, `5`, `75`,
// `-3` and `\le`. Purely textual; it never decides equality.
import { matchBrace } from './extract.ts';

const UNICODE: Array<[RegExp, string]> = [
  [/[\u2212\u2013\u2014\uFE63\uFF0D]/g, '-'],
  [/\u00D7/g, '\\times '],
  [/[\u00B7\u22C5]/g, '\\cdot '],
  [/\u00F7/g, '\\div '],
  [/\u03C0/g, '\\pi '],
  [/\u221E/g, '\\infty '],
  [/\u221A/g, '\\sqrt'],
  [/\u2264/g, '\\le '],
  [/\u2265/g, '\\ge '],
  [/\u2260/g, '\\ne '],
  [/\u222A/g, '\\cup '],
  [/\u2229/g, '\\cap '],
  [/\u2208/g, '\\in '],
  [/\u2248/g, '\\approx '],
  [/\u2205/g, '\\emptyset '],
  [/\u00B0/g, '^\\circ '],
  [/[\u00A0\u2009\u202F\u200B]/g, ' '],
];

// Words that are units (or currency) when they trail a number: "27 miles", "5\text{ cm}^2".
const UNIT_WORDS = [
  'cm',
  'mm',
  'km',
  'm',
  'nm',
  'inches',
  'inch',
  'in',
  'feet',
  'foot',
  'ft',
  'yards',
  'yard',
  'meters',
  'meter',
  'metres',
  'metre',
  'centimeters',
  'centimeter',
  'kilometers',
  'kilometer',
  'miles',
  'mile',
  'mph',
  'units',
  'unit',
  'degrees',
  'degree',
  'deg',
  'radians',
  'dollars',
  'dollar',
  'cents',
  'cent',
  'square',
  'sq',
  'cubic',
  'hours',
  'hour',
  'hrs',
  'hr',
  'h',
  'minutes',
  'minute',
  'min',
  'seconds',
  'second',
  'sec',
  's',
  'days',
  'day',
  'weeks',
  'week',
  'years',
  'year',
  'months',
  'month',
  'kg',
  'g',
  'grams',
  'gram',
  'pounds',
  'pound',
  'lbs',
  'lb',
  'ounces',
  'ounce',
  'oz',
  'liters',
  'liter',
  'litres',
  'l',
  'ml',
  'gallons',
  'gallon',
  'people',
  'students',
  'ways',
  'points',
  'coins',
  'cards',
  'marbles',
  'balls',
  'times',
  'percent',
  'per',
  'K',
  'J',
  'W',
  'Hz',
  'eV',
  'kHz',
  'MHz',
  'GHz',
  'pc',
  'kpc',
  'Mpc',
  'AU',
  'au',
  'ly',
  'V',
  'A',
  'N',
  'Pa',
  'atm',
  'mol',
  'erg',
  'C',
  'USD',
  'EUR',
  'GBP',
  'euros',
  'euro',
  'yuan',
  'yen',
  'rupees',
  'pounds',
];
const UNIT_SET = new Set(UNIT_WORDS);
const TRAILING_UNIT_RE = new RegExp(
  `(?<=[\\d}).])\\s*(?:\\\\(?:text|mbox|mathrm)\\s*\\{\\s*)?(?:${UNIT_WORDS.filter((u) => u.length > 1).join('|')})` +
    `(?:\\s*\\})?(?:\\^\\{?[23]\\}?)?\\.?$`,
);

/** True when `content` (of a `\text{}`) reads as units or words that trail a value. */
function isUnitText(content: string): boolean {
  const words = content
    .replace(/[~\\,]/g, ' ')
    .trim()
    .split(/[\s/.^{}\d-]+/)
    .filter(Boolean);
  return words.length > 0 && words.every((w) => UNIT_SET.has(w) || UNIT_SET.has(w.toLowerCase()));
}

const TEXT_CMD_RE =
  /\\(text|textbf|textit|textrm|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mbox|boldsymbol|operatorname)\s*\{/g;

/** Unwraps `\text{…}`-like groups; a trailing unit group after a value is dropped, "and"/"or"
 * become list commas. */
function unwrapText(s: string): string {
  for (let guard = 0; guard < 1000; guard++) {
    TEXT_CMD_RE.lastIndex = 0;
    const m = TEXT_CMD_RE.exec(s);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const close = matchBrace(s, open);
    if (close < 0) {
      s = s.slice(0, m.index) + s.slice(open + 1);
      continue;
    }
    const content = s.slice(open + 1, close - 1);
    const before = s.slice(0, m.index).trimEnd();
    let after = s.slice(close);
    let replacement = content;
    if (/^\s*(and|or)\s*$/i.test(content)) replacement = ',';
    else if (/[\w})]$/.test(before) && isUnitText(content)) {
      replacement = '';
      after = after.replace(/^\s*\^\s*\{?\s*[23]\s*\}?/, '');
    }
    s = s.slice(0, m.index) + replacement + after;
  }
  return s;
}

/** Normalised LaTeX of an answer (never throws; may return ''). */
export function normalizeLatex(input: string): string {
  let s = input;
  for (const [re, to] of UNICODE) s = s.replace(re, to);
  s = s
    .replace(/\\\$/g, ' ')
    .replace(/\$/g, ' ')
    .replace(/[€£¥₹]|\\(?:euro|pounds|yen)(?![A-Za-z])/g, ' ');
  s = s
    .trim()
    .replace(/^\\\[|\\\]$/g, '')
    .replace(/^\\\(|\\\)$/g, '');
  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits)(?![A-Za-z])/g, '');
  s = s.replace(/\\(?:left|right|[bB]igg?[lr]?)(?![A-Za-z])\s*(\.(?!\d))?/g, '');
  s = s.replace(/\\[dt]frac(?![A-Za-z])/g, '\\frac').replace(/\\[dt]binom(?![A-Za-z])/g, '\\binom');
  // Thousands separators: 1{,}000, 12,\!000, and (below) a bare 1,000,000.
  s = s.replace(/(\d)\{,\}(?=\d{3})/g, '$1').replace(/(\d),\\!\s*(?=\d{3})/g, '$1');
  s = s.replace(/\\!/g, '');
  s = s.replace(/(?<!\\)\\(?:[,;: ]|quad(?![A-Za-z])|qquad(?![A-Za-z])|enspace|thinspace)/g, ' ').replace(/~/g, ' ');
  // Degrees go, whatever their spelling; so does a percent sign's backslash.
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![A-Za-z])|\\circ(?![A-Za-z])|\\degree(?![A-Za-z])/g, '');
  s = s.replace(/\s*\\?%/g, '\\%');
  // Percent as a word: `50 percent`, `12\text{ pct}`, `7 percentage points`.
  s = s.replace(
    /(?<=[\d}.])\s*(?:\\(?:text|mbox|mathrm)\s*\{\s*)?(?:percent(?:age)?|pct)(?![A-Za-z])(?:\s*\})?/gi,
    '\\%',
  );
  s = unwrapText(s);
  s = s
    .replace(/\\(?:leqslant|leqq|leq)(?![A-Za-z])|<=/g, '\\le ')
    .replace(/\\(?:geqslant|geqq|geq)(?![A-Za-z])|>=/g, '\\ge ');
  // `x != 3` is x ≠ 3, but `5!=120` and `(n+1)!=…` are factorials.
  s = s
    .replace(/\\neq(?![A-Za-z])|\\not\s*=|(?<![\d)}])!=/g, '\\ne ')
    .replace(/\\lt(?![A-Za-z])/g, '<')
    .replace(/\\gt(?![A-Za-z])/g, '>');
  s = s.replace(/\\(?:varnothing)(?![A-Za-z])|\\\{\s*\\\}/g, '\\emptyset ');
  // All reals, as the interval it is.
  s = s.replace(/\\mathbb\s*\{?\s*R\s*\}?|\\R(?![A-Za-z])|\u211D/g, '(-\\infty,\\infty)');
  s = s.replace(/\\infinity(?![A-Za-z])|\binfinity\b|\\inf(?![A-Za-z])/gi, '\\infty ');
  // Code-style answers: `np.arcsin(10/13)`, `sqrt(2)`.
  s = s
    .replace(/\bnp\./g, '')
    .replace(/(?<![\\A-Za-z])(arcsin|arccos|arctan|sin|cos|tan|sqrt|log|ln|exp)(?=\()/g, '\\$1');
  // "t(0,4]" (OlympiadBench) is "t ∈ (0,4]": a letter before a half-open or closed interval.
  s = s.replace(/^\s*[A-Za-z]\s*(?=(?:\([^()[\]]*,[^()[\]]*\]|\[[^()[\]]*,[^()[\]]*[)\]])\s*$)/, '');
  s = s.replace(/\s+(?:and|or)\s+/gi, ',');
  // "≈ 3.14" and "= 5" with nothing on the left: the value alone (the parser reads `\approx` chains).
  s = s.replace(/^\s*(?:=|\\approx(?![A-Za-z]))\s*/, '');
  s = s.trim();
  for (let i = 0; i < 3; i++) s = s.replace(TRAILING_UNIT_RE, '').trim();
  s = s.replace(/[.\s]+$/, '');
  // Drop white space except where it separates a command from a following letter (`\pi r`).
  // `32, 349` is a list of two numbers; only `32,349` (no space) is thirty-two thousand.
  const spacedComma = /,\s/.test(s);
  s = s
    .replace(/(\\[A-Za-z]+)\s+(?=[A-Za-z])/g, '$1\u0000')
    .replace(/\s+/g, '')
    .replace(/\u0000/g, ' ');
  if (!spacedComma && /^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  s = s.replace(/^\+(?=[\d.\\])/, '');
  return s;
}
