// The answer verifier: the reward of every rollout and every evaluation score. A response's final
// answer is extracted, normalised, parsed into a structure and compared with each gold answer;
// plain numbers are settled in this thread, symbolic leaves in a pool of CAS workers with a hard
// timeout. Nothing throws out of verify(): failures become {equal:false, reason}.
import { availableParallelism } from 'node:os';
import { answersEqual, type Cmp, type LeafEqual, type Trace } from './compare.ts';
import type { Form, NoteForm } from './forms.ts';
import { extractTarget, goldAnswer, type ExtractRule } from './extract.ts';
import { normalizeLatex } from './normalize.ts';
import { parseAnswer, type Answer } from './parse.ts';
import { CasPool } from './pool.ts';

export { extractAnswer, extractTarget, goldAnswer } from './extract.ts';
export { normalizeLatex } from './normalize.ts';

export interface VerifyOptions {
  /** Worker time one verify() may spend in the CAS, in ms (default 1000); past it the verdict is
   * {equal:false, reason:'timeout'}. */
  timeoutMs?: number;
  /** Send every non-numeric leaf through the CAS, even when both spellings are identical (for the
   * verifier's own tests: it proves that each gold answer parses). Default false. */
  noShortcuts?: boolean;
  /** Variables matter (default true). With false, the prediction's free variables are renamed to
   * the gold's when they are as many, as Math-Verify's `strict=False` does (`g(s)` = `g(t)`). */
  strict?: boolean;
}

export interface VerifyResult {
  equal: boolean;
  /** Why not equal: 'no_answer', 'no_gold', 'timeout', 'too_long', 'not_equal', 'error: …', or
   * what the CAS could not read ('unparseable prediction', …). */
  reason?: string;
  /** The final answer found in the response. */
  extracted?: string;
  /** Which extraction target found it ('boxed', 'final-answer', 'latex', 'number', …). */
  target?: ExtractRule;
  /** Which comparison rule decided ('identical', 'number (exact)', 'set (any order)', 'cas', …). */
  rule?: string;
  /** The answer forms of issue 30 the verdict passed through, joined by '+' in the order they
   * applied ('several-boxes', 'decimal-comma', 'approx-chain', 'rounded-decimal', …; see forms.ts). */
  form?: string;
}

export type Gold = string | number | readonly string[];

export const DEFAULT_TIMEOUT_MS = 1000;
// Longer answers are not math answers; comparing them would only risk the CAS's time.
const MAX_ANSWER_CHARS = 10_000;

let pool: CasPool | null = null;
let poolSize = Math.max(1, availableParallelism());

/** Sets the number of CAS workers (default: the number of cores); takes effect on the next start. */
export function configureVerifier(opts: { poolSize?: number }): void {
  if (opts.poolSize !== undefined) poolSize = Math.max(1, Math.floor(opts.poolSize));
}

function getPool(): CasPool {
  pool ??= new CasPool(poolSize);
  return pool;
}

/** Starts every CAS worker now (so that the first comparisons do not wait for start-up). */
export async function warmVerifier(): Promise<void> {
  await getPool().warm();
}

/** Ends the CAS workers; a later verify() starts a fresh pool. */
export async function closeVerifier(): Promise<void> {
  const p = pool;
  pool = null;
  if (p) await p.close();
}

class CasTimeout extends Error {}

// An answer that is all one `\text{…}` of words (`\text{the x-axis}`, `\text{No}`) is text,
// compared as words.
const TEXT_ANSWER_RE =
  /^\s*\\(?:text|textbf|textit|textrm|mathrm|mbox)\s*\{([^{}$\\]*[A-Za-z]{2,}[^{}$\\]*)\}\s*\.?\s*$/;

function prepare(answer: string, note: NoteForm): { norm: string; parsed: Answer | null } {
  const norm = normalizeLatex(answer);
  const words = TEXT_ANSWER_RE.exec(answer)?.[1];
  // A choice `\text{(C)}` and a unit-only text stay with the parser.
  if (words !== undefined && !/^\s*\(?[A-E]\)/.test(words) && !/\d/.test(words) && normalizeLatex(words) !== '')
    return { norm, parsed: { kind: 'text', text: words.trim() } };
  return { norm, parsed: parseAnswer(norm, note) };
}

/** The CAS comparison of two leaves under one verify()'s time budget: `budget.ms` shrinks with each
 * comparison; past it, or on a worker's timeout, CasTimeout. */
function casLeaf(opts: VerifyOptions, budget: { ms: number; reason?: string }, note: NoteForm): LeafEqual {
  const shortcuts = !opts.noShortcuts;
  const rename = opts.strict === false;
  return async (a, b, mode = 'equal') => {
    if (shortcuts && a === b) return true;
    if (budget.ms <= 0) throw new CasTimeout();
    const r = await getPool().compare(a, b, budget.ms, mode, rename);
    budget.ms -= r.elapsedMs;
    if (r.status === 'timeout') throw new CasTimeout();
    if (r.reason) budget.reason = r.reason;
    if (r.renamed && r.status === 'equal') note('non-strict');
    return r.status === 'equal';
  };
}

/** Whether the response `prediction` gives the answer `gold` (a gold string, a number, a list of
 * acceptable golds, a full solution whose last `\boxed{}` is the answer, or a worked solution). */
export async function verify(gold: Gold, prediction: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  let extracted: string | undefined;
  try {
    const target = extractTarget(String(prediction));
    if (target === null) return { equal: false, reason: 'no_answer' };
    const found = target.answer;
    extracted = found;
    const forms = new Set<Form>(target.form ? [target.form] : []);
    const note: NoteForm = forms.add.bind(forms);
    const golds = goldAnswer(gold, note);
    if (golds.length === 0) return { equal: false, reason: 'no_gold', extracted };
    if (found.length > MAX_ANSWER_CHARS) return { equal: false, reason: 'too_long', extracted };
    const trace: Trace = {};
    const result = (equal: boolean, reason?: string): VerifyResult => {
      const r: VerifyResult = equal
        ? { equal, extracted, target: target.rule, rule: trace.rule }
        : { equal, reason, extracted, target: target.rule, rule: trace.rule };
      if (forms.size > 0) r.form = [...forms].join('+');
      return r;
    };
    const budget: { ms: number; reason?: string } = { ms: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS };
    const cmp: Cmp = { leaf: casLeaf(opts, budget, note), note };

    const pred = prepare(found, note);
    if (pred.parsed === null) return result(false, 'no_answer');
    // Any acceptable gold counts; one that runs out of CAS time does not stop the others (they may
    // still match without the CAS).
    let timedOut = false;
    for (const g of golds) {
      if (g.length > MAX_ANSWER_CHARS) continue;
      const gp = prepare(g, note);
      if (!opts.noShortcuts && gp.norm === pred.norm) {
        trace.rule = 'identical after normalisation';
        return result(true);
      }
      try {
        if (gp.parsed && (await answersEqual(gp.parsed, pred.parsed, cmp, trace))) return result(true);
      } catch (err) {
        if (!(err instanceof CasTimeout)) throw err;
        timedOut = true;
      }
    }
    return result(false, timedOut ? 'timeout' : (budget.reason ?? 'not_equal'));
  } catch (err) {
    if (err instanceof CasTimeout) return { equal: false, reason: 'timeout', extracted };
    return { equal: false, reason: `error: ${err instanceof Error ? err.message : String(err)}`, extracted };
  }
}

/** verify() over many pairs at once; the CAS leaves of all pairs share the worker pool. Results are
 * in the order of `pairs`. */
export async function verifyBatch(
  pairs: ReadonlyArray<{ gold: Gold; pred: string }>,
  opts: VerifyOptions = {},
): Promise<VerifyResult[]> {
  return Promise.all(pairs.map((p) => verify(p.gold, p.pred, opts)));
}

/** The trainer's reward: 1 when the response's final answer matches the gold answer, else 0
 * (no answer, a wrong one, a timeout and an error all score 0). */
export async function accuracyReward(response: string, gold: Gold, opts: VerifyOptions = {}): Promise<0 | 1> {
  return (await verify(gold, response, opts)).equal ? 1 : 0;
}
