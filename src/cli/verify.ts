// `red verify`: one verdict (`--gold G --pred P`, prints true/false) or a JSONL stream
// (`--jsonl FILE|-`): each line {"gold", "pred", "strict"?} comes back with "equal" (and "reason" when not
// equal; with --explain also "extracted", "target", "rule", "form") added, in input order, while later
// lines are still being verified. Exit codes as cmp and diff: 0 equal (every line), 1 not equal
// (some line), 2 trouble (a bad option, an unreadable file, a line that is not {"gold", "pred"}).
import type { Command } from 'commander';
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { fail, printError, systemErrorReason } from '../util/errors.ts';

interface VerifyCliOptions {
  gold?: string;
  pred?: string;
  explain: boolean;
  /** false (--no-strict): Math-Verify's strict=False, the prediction's variables renamed to the gold's. */
  strict: boolean;
  jsonl?: string;
  timeoutMs: string;
  workers?: string;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} must be a positive integer, got '${value}'`);
  return n;
}

async function write(line: string): Promise<void> {
  if (!process.stdout.write(line + '\n')) await new Promise<void>((r) => process.stdout.once('drain', () => r()));
}

export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check a model answer against a gold answer (Math-Verify semantics): --gold/--pred, or --jsonl FILE|-')
    .option('--gold <answer>', 'the gold answer (LaTeX, a number, or a solution ending in \\boxed{})')
    .option('--pred <response>', 'the model response (its last \\boxed{} is the answer)')
    .option(
      '--explain',
      'also print the reason, the extracted answer, its extraction target, the comparison rule that decided and the answer form (several-boxes, decimal-comma, approx-chain, …) it took',
      false,
    )
    .option(
      '--no-strict',
      "Math-Verify's strict=False: a prediction in other variable names than the gold's is compared after renaming them (g(s) = g(t)); a JSONL line's \"strict\": false does the same for that line",
    )
    .option('--jsonl <file>', 'verify each line {"gold", "pred"} of FILE ("-" = stdin), writing it back with "equal"')
    .option('--timeout-ms <ms>', 'CAS time allowed per comparison', '1000')
    .option('--workers <n>', 'CAS worker threads (default: number of cores)')
    .action(async (opts: VerifyCliOptions) => {
      try {
        const verdict = await verifyAction(opts);
        process.exitCode = verdict === 'equal' ? 0 : verdict === 'not equal' ? 1 : 2;
      } catch (err) {
        printError(err);
        process.exit(2);
      }
    });
}

type Verdict = 'equal' | 'not equal' | 'trouble';

async function verifyAction(opts: VerifyCliOptions): Promise<Verdict> {
  const timeoutMs = positiveInt(opts.timeoutMs, '--timeout-ms');
  const workers = opts.workers === undefined ? undefined : positiveInt(opts.workers, '--workers');
  if (opts.jsonl !== undefined && (opts.gold !== undefined || opts.pred !== undefined))
    fail('use either --jsonl or --gold/--pred, not both');
  if (opts.jsonl === undefined && (opts.gold === undefined || opts.pred === undefined))
    fail('red verify needs --gold and --pred (or --jsonl FILE)');
  const reward = await import('../reward/index.ts');
  if (workers !== undefined) reward.configureVerifier({ poolSize: workers });
  try {
    if (opts.jsonl !== undefined)
      return await verifyJsonl(opts.jsonl, { timeoutMs, strict: opts.strict }, opts.explain, reward.verify);
    const r = await reward.verify(opts.gold!, opts.pred!, { timeoutMs, strict: opts.strict });
    console.log(String(r.equal));
    if (opts.explain) {
      console.log(`reason: ${r.reason ?? (r.equal ? 'equal' : 'not_equal')}`);
      console.log(`extracted: ${r.extracted ?? '(none)'}`);
      console.log(`target: ${r.target ?? '(none)'}`);
      console.log(`rule: ${r.rule ?? '(none)'}`);
      if (r.form) console.log(`form: ${r.form}`);
    }
    return r.equal ? 'equal' : 'not equal';
  } finally {
    await reward.closeVerifier();
  }
}

type VerifyFn = typeof import('../reward/index.ts').verify;

// Lines in flight at once: enough to keep every worker busy, bounded so memory stays flat.
const WINDOW = 256;

/** The worse of two verdicts: trouble over not equal over equal. */
const RANK: Record<Verdict, number> = { equal: 0, 'not equal': 1, trouble: 2 };
const worse = (a: Verdict, b: Verdict): Verdict => (RANK[b] > RANK[a] ? b : a);

/** What every line is verified with, unless the line says otherwise ("strict"). */
interface LineDefaults {
  timeoutMs: number;
  strict: boolean;
}

async function verifyJsonl(file: string, defaults: LineDefaults, explain: boolean, verify: VerifyFn): Promise<Verdict> {
  const input = file === '-' ? process.stdin : createReadStream(file);
  const opened = new Promise<void>((resolve, reject) => {
    if (file === '-') resolve();
    else input.once('open', () => resolve()).once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    fail(`cannot read ${file}: ${systemErrorReason(err) ?? (err instanceof Error ? err.message : String(err))}`);
  }
  const lines = createInterface({ input, crlfDelay: Infinity });
  // Output in input order: a FIFO of pending lines, the oldest written as soon as it is settled.
  const pending: Array<Promise<VerifiedLine>> = [];
  let verdict: Verdict = 'equal';
  const flush = async () => {
    const done = await pending.shift()!;
    verdict = worse(verdict, done.verdict);
    await write(done.line);
  };
  let lineNo = 0;
  for await (const raw of lines) {
    lineNo++;
    if (raw.trim() === '') continue;
    pending.push(verifyLine(raw, lineNo, defaults, explain, verify));
    if (pending.length >= WINDOW) await flush();
  }
  while (pending.length > 0) await flush();
  return verdict;
}

interface VerifiedLine {
  line: string;
  verdict: Verdict;
}

async function verifyLine(
  raw: string,
  lineNo: number,
  defaults: LineDefaults,
  explain: boolean,
  verify: VerifyFn,
): Promise<VerifiedLine> {
  const trouble = (value: object): VerifiedLine => ({ line: JSON.stringify(value), verdict: 'trouble' });
  let row: unknown;
  try {
    row = JSON.parse(raw);
  } catch (err) {
    return trouble({
      line: lineNo,
      error: `line ${lineNo}: not JSON (${err instanceof Error ? err.message : String(err)})`,
      input: raw,
    });
  }
  if (row === null || typeof row !== 'object' || Array.isArray(row)) {
    return trouble({ line: lineNo, error: `line ${lineNo}: expected an object {"gold", "pred"}`, input: raw });
  }
  const obj = row as Record<string, unknown>;
  const gold = obj.gold;
  const pred = obj.pred;
  const goldOk =
    typeof gold === 'string' ||
    typeof gold === 'number' ||
    (Array.isArray(gold) && gold.every((g) => typeof g === 'string'));
  if (!goldOk || typeof pred !== 'string' || (obj.strict !== undefined && typeof obj.strict !== 'boolean')) {
    return trouble({
      ...obj,
      error: `line ${lineNo}: expected "gold" (string, number or list of strings), "pred" (string) and optionally "strict" (true or false)`,
    });
  }
  const strict = typeof obj.strict === 'boolean' ? obj.strict : defaults.strict;
  const r = await verify(gold as string | number | string[], pred, { timeoutMs: defaults.timeoutMs, strict });
  const why = explain ? { extracted: r.extracted, target: r.target, rule: r.rule, form: r.form } : {};
  return r.equal
    ? { line: JSON.stringify({ ...obj, equal: true, ...why }), verdict: 'equal' }
    : { line: JSON.stringify({ ...obj, equal: false, reason: r.reason, ...why }), verdict: 'not equal' };
}
