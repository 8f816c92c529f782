// Runs an evaluation: checks every gold answer, skips problems already in samples.jsonl,
// sends the rest through the generator in chunks (one continuous-batching call per chunk,
// appended to samples.jsonl when it finishes), verifies the answers, and writes results.json,
// results.md (the pass@k chart is drawn by report/, given as `chart`). The outcome depends only on the records, so a resumed run
// reports what an uninterrupted one would.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic, writeOrFail } from '../util/fs.ts';
import { contentHash, modelFiles, type ContentHash } from '../util/content-hash.ts';
import { lockFolder } from '../util/lock.ts';
import { markFolder } from '../util/ownership.ts';
import type { BenchmarkSpec, EvalProblem } from './benchmarks.ts';
import {
  buildPrompt,
  problemSeed,
  STOP_STRINGS,
  type AnswerVerifier,
  type Completion,
  type Generator,
  type PromptStyle,
  type SamplingSettings,
} from './protocol.ts';
import {
  benchmarkResult,
  metricsOf,
  overallOf,
  resultsMarkdown,
  type EvalResults,
  type Throughput,
} from './results.ts';
import { problemKey, SamplesLog, type ProblemRecord, type SampleRecord } from './samples-log.ts';

export interface EvalJob {
  spec: BenchmarkSpec;
  /** The file the problems came from (recorded in results). */
  file: string;
  problems: EvalProblem[];
  sampling: SamplingSettings;
}

export interface EvalProgress {
  /** Sequences (samples) finished so far in this run, and in all. */
  samplesDone: number;
  samplesTotal: number;
  problemsDone: number;
  problemsTotal: number;
}

export interface RunEvalOptions {
  outDir: string;
  /** Shown in the tables (the model folder). */
  model: string;
  /** The model's local folder, whose content a resumed run must match (a changed model is refused). */
  modelDir?: string;
  jobs: EvalJob[];
  generate: Generator;
  verifier: AnswerVerifier;
  prompt: PromptStyle;
  seed: number;
  /**
   * Samples per generator call: problems are packed until their samples reach this, so a crash
   * loses at most one chunk and the sampler still sees a large batch to keep full.
   */
  chunkSamples: number;
  onProgress?: (p: EvalProgress) => void;
  onWarning?: (message: string) => void;
  /** Draws the pass@k chart after the results are written (report's writePasskChart); none when absent. */
  chart?: (outDir: string, results: EvalResults) => Promise<void>;
}

/** What a run's folder was started with; a resume must match it for the benchmarks both have. */
interface RunManifest {
  model: string;
  /** The model's content (config, weights, tokenizer), when its folder was given: what a resume checks. */
  modelContent?: ContentHash;
  prompt: PromptStyle;
  seed: number;
  benchmarks: Record<string, SamplingSettings>;
}

function sameSampling(a: SamplingSettings, b: SamplingSettings): boolean {
  return a.n === b.n && a.temperature === b.temperature && a.topP === b.topP && a.maxTokens === b.maxTokens;
}

function readManifest(file: string): RunManifest {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunManifest;
  } catch (err) {
    return fail(
      `${file}: unreadable (${(err as Error).message}); delete it only if samples.jsonl beside it came from this model and settings`,
    );
  }
}

/** "model.safetensors: sha256 1a2b3c4d… → 9f8e7d6c…; tokenizer.json: added": what differs between two model contents. */
function contentChanges(before: ContentHash, now: ContentHash): string {
  const byName = (c: ContentHash) => new Map(Object.entries(c.files).map(([f, d]) => [path.basename(f), d.sha256]));
  const [a, b] = [byName(before), byName(now)];
  const short = (h: string | undefined) => (h === undefined ? '(none)' : `${h.slice(0, 8)}…`);
  return [...new Set([...a.keys(), ...b.keys()])]
    .filter((n) => a.get(n) !== b.get(n))
    .sort()
    .map((n) => `${n}: sha256 ${short(a.get(n))} → ${short(b.get(n))}`)
    .join('; ');
}

/** What differs between the folder's earlier run and this one, for the benchmarks both have. */
function manifestChanges(before: RunManifest, now: RunManifest): string[] {
  const problems: string[] = [];
  // Samples of another model must not be mixed in: its content decides (a folder written before
  // red hashed models has only the path to go by).
  if (before.modelContent && now.modelContent) {
    if (before.modelContent.sha256 !== now.modelContent.sha256)
      problems.push(`the model changed (${contentChanges(before.modelContent, now.modelContent)})`);
  } else if (path.resolve(before.model) !== path.resolve(now.model))
    problems.push(`model ${before.model} → ${now.model}`);
  if (before.prompt !== now.prompt) problems.push(`prompt ${before.prompt} → ${now.prompt}`);
  if (before.seed !== now.seed) problems.push(`seed ${before.seed} → ${now.seed}`);
  for (const [name, s] of Object.entries(now.benchmarks)) {
    const b = before.benchmarks[name];
    if (b && !sameSampling(b, s)) problems.push(`${name}: ${JSON.stringify(b)} → ${JSON.stringify(s)}`);
  }
  return problems;
}

/**
 * Writes run.json, or checks that the folder's earlier run used the same model (by content) and
 * settings. `hasSamples`: whether samples.jsonl holds any record; without one (a run that failed
 * before its first chunk) the earlier settings guard nothing and are replaced, so the corrected
 * command just runs.
 */
function checkManifest(file: string, o: RunEvalOptions, hasSamples: boolean): void {
  const before = existsSync(file) && hasSamples ? readManifest(file) : null;
  const now: RunManifest = { model: o.model, prompt: o.prompt, seed: o.seed, benchmarks: {} };
  // The model's files are hashed once per change of size or mtime (the digests kept in run.json).
  if (o.modelDir !== undefined)
    now.modelContent = contentHash(modelFiles(o.modelDir), o.modelDir, before?.modelContent?.files);
  for (const j of o.jobs) now.benchmarks[j.spec.name] = j.sampling;
  if (before) {
    const problems = manifestChanges(before, now);
    if (problems.length > 0)
      fail(
        `${file}: this folder holds an evaluation with other settings (${problems.join('; ')}); its samples are not this run's: use another --out, or the same model and settings`,
      );
    now.benchmarks = { ...before.benchmarks, ...now.benchmarks };
  }
  writeOrFail(file, () => writeJsonAtomic(file, now));
}

/**
 * A gold answer the verifier cannot match even against itself in a box would make every sample
 * wrong; such problems are reported instead of scored.
 */
async function checkGolds(jobs: readonly EvalJob[], verifier: AnswerVerifier): Promise<void> {
  await Promise.all(
    jobs.flatMap((j) =>
      j.problems.map(async (p) => {
        if (p.gold === null) return;
        const first = Array.isArray(p.gold) ? p.gold[0] : p.gold;
        const v = await verifier.verify(p.gold, `\\boxed{${first}}`);
        if (!v.equal) {
          p.goldError = `the verifier cannot parse the gold answer ${JSON.stringify(first)}${v.reason ? ` (${v.reason})` : ''}`;
          p.gold = null;
        }
      }),
    ),
  );
}

interface Pending {
  job: EvalJob;
  problem: EvalProblem;
}

/** One generator call can mix benchmarks whose samples differ only in count. */
function sameDecoding(a: SamplingSettings, b: SamplingSettings): boolean {
  return a.temperature === b.temperature && a.topP === b.topP && a.maxTokens === b.maxTokens;
}

/** Consecutive pending problems with the same decoding settings, about `chunkSamples` samples each. */
function chunksOf(pending: readonly Pending[], chunkSamples: number): Pending[][] {
  const chunks: Pending[][] = [];
  let cur: Pending[] = [];
  let size = 0;
  for (const p of pending) {
    if (
      cur.length > 0 &&
      (size + p.job.sampling.n > chunkSamples || !sameDecoding(cur[0].job.sampling, p.job.sampling))
    ) {
      chunks.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(p);
    size += p.job.sampling.n;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

/** What a write error in an evaluation folder leaves behind, and how to go on. */
const RESUME_HINT = 'the problems finished so far are kept in samples.jsonl and will not be redone';

/** Runs the evaluation in `o.outDir`, which it holds locked (one writer per folder). */
export async function runEval(o: RunEvalOptions): Promise<EvalResults> {
  if (!(o.chunkSamples >= 1)) fail(`chunk size must be ≥ 1 sample, got ${o.chunkSamples}`);
  const lock = lockFolder(o.outDir, 'eval');
  try {
    return await evalInFolder(o);
  } finally {
    lock.release();
  }
}

async function evalInFolder(o: RunEvalOptions): Promise<EvalResults> {
  markFolder(o.outDir, 'eval', 'red eval');
  const log = SamplesLog.open(path.join(o.outDir, 'samples.jsonl'));
  await checkInputs(o, log);
  const pending = pendingProblems(o, log);
  const progress: EvalProgress = {
    samplesDone: 0,
    samplesTotal: pending.reduce((a, p) => a + p.job.sampling.n, 0),
    problemsDone: 0,
    problemsTotal: pending.length,
  };
  o.onProgress?.(progress);
  const started = performance.now();
  let tokens = 0;
  for (const chunk of chunksOf(pending, o.chunkSamples)) tokens += await runChunk(o, log, chunk, progress);
  const wallS = (performance.now() - started) / 1000;
  const results = collectResults(o, log);
  if (pending.length > 0) results.throughput = throughputOf(pending.length, progress.samplesTotal, tokens, wallS);
  writeResults(o.outDir, results);
  await o.chart?.(o.outDir, results);
  return results;
}

/** The folder's settings match (run.json), every gold answer parses, the verifier is warm. */
async function checkInputs(o: RunEvalOptions, log: SamplesLog): Promise<void> {
  checkManifest(path.join(o.outDir, 'run.json'), o, log.existing.size > 0);
  await Promise.all([checkGolds(o.jobs, o.verifier), o.verifier.warm?.()]);
  for (const j of o.jobs) {
    const bad = j.problems.filter((p) => p.gold === null);
    if (bad.length > 0) {
      o.onWarning?.(
        `${j.spec.name}: ${bad.length} problem(s) have a gold answer that cannot be parsed and are not scored (first: row ${bad[0].row}: ${bad[0].goldError})`,
      );
    }
  }
}

/** Scoreable problems not yet in samples.jsonl; a recorded one must be the same problem text. */
function pendingProblems(o: RunEvalOptions, log: SamplesLog): Pending[] {
  if (log.droppedBytes > 0)
    o.onWarning?.(`${log.file}: dropped an unfinished last line (${log.droppedBytes} bytes) from an interrupted run`);
  const pending: Pending[] = [];
  for (const job of o.jobs) {
    for (const problem of job.problems) {
      if (problem.gold === null) continue;
      const done = log.existing.get(problemKey(problem.benchmark, problem.index));
      if (!done) pending.push({ job, problem });
      else if (done.problem !== problem.problem || JSON.stringify(done.gold) !== JSON.stringify(problem.gold)) {
        // The data by content: a changed problem or gold answer makes the recorded verdicts another data set's.
        fail(
          `${log.file}: ${problem.benchmark} problem ${problem.index} differs from ${job.file} row ${problem.row} (its ${done.problem !== problem.problem ? 'text' : 'gold answer'}); the data changed since this folder was written; use another --out`,
        );
      }
    }
  }
  return pending;
}

/** Generates and verifies one chunk, appends it to samples.jsonl, rewrites the tables; returns its tokens. */
async function runChunk(o: RunEvalOptions, log: SamplesLog, chunk: Pending[], progress: EvalProgress): Promise<number> {
  const samplesBefore = progress.samplesDone;
  const completions = await generateChunk(o, chunk, progress);
  const records = await Promise.all(chunk.map(({ problem, job }, i) => scoreProblem(o, problem, job, completions[i])));
  writeOrFail(log.file, () => log.append(records), RESUME_HINT);
  // Partial tables after every chunk, so a long run can be read while it goes (chart at the end).
  writeResults(o.outDir, collectResults(o, log));
  progress.problemsDone += chunk.length;
  // A generator that does not report per sequence still moves the bar chunk by chunk.
  progress.samplesDone = samplesBefore + chunk.reduce((a, p) => a + p.job.sampling.n, 0);
  o.onProgress?.(progress);
  return records.reduce((a, r) => a + r.samples.reduce((b, x) => b + x.tokens, 0), 0);
}

/** One continuous-batching call for the chunk's prompts (they share the decoding settings). */
async function generateChunk(o: RunEvalOptions, chunk: Pending[], progress: EvalProgress): Promise<Completion[][]> {
  const s = chunk[0].job.sampling;
  const requests = chunk.map(({ problem, job }) => ({
    prompt: buildPrompt(o.prompt, problem.problem),
    n: job.sampling.n,
    seed: problemSeed(o.seed, problem.benchmark, problem.index),
  }));
  const completions = await o.generate(requests, {
    temperature: s.temperature,
    topP: s.topP,
    maxTokens: s.maxTokens,
    stopStrings: STOP_STRINGS,
    onSequenceDone: () => {
      progress.samplesDone++;
      o.onProgress?.(progress);
    },
  });
  if (completions.length !== chunk.length)
    fail(`generator returned ${completions.length} groups for ${chunk.length} prompts`);
  return completions;
}

/** Verifies one problem's samples against its gold answer: the record samples.jsonl keeps. */
async function scoreProblem(
  o: RunEvalOptions,
  problem: EvalProblem,
  job: EvalJob,
  outs: Completion[],
): Promise<ProblemRecord> {
  if (outs.length !== job.sampling.n)
    fail(`generator returned ${outs.length} samples for a prompt that asked ${job.sampling.n}`);
  const gold = problem.gold as string | string[];
  const samples = await Promise.all(
    outs.map(async (c): Promise<SampleRecord> => {
      const v = await o.verifier.verify(gold, c.text);
      return {
        text: c.text,
        extracted: v.extracted ?? null,
        correct: v.equal,
        tokens: c.tokens,
        finish: c.finishReason,
        ...(v.reason !== undefined && !v.equal ? { reason: v.reason } : {}),
      };
    }),
  );
  return {
    benchmark: problem.benchmark,
    index: problem.index,
    row: problem.row,
    ...(problem.id !== undefined ? { id: problem.id } : {}),
    ...(problem.level !== undefined ? { level: problem.level } : {}),
    problem: problem.problem,
    gold,
    n: samples.length,
    correct: samples.filter((x) => x.correct).length,
    samples,
  };
}

function throughputOf(problems: number, samples: number, tokens: number, wallS: number): Throughput {
  return {
    problems,
    samples,
    tokens,
    wallS,
    problemsPerS: problems / wallS,
    samplesPerS: samples / wallS,
    tokensPerS: tokens / wallS,
  };
}

/** Results over every record written so far (problems still to run count as `unfinished`). */
function collectResults(o: RunEvalOptions, log: SamplesLog): EvalResults {
  const benchmarks = o.jobs.map((j) => benchmarkResult(j.spec, j.file, j.sampling, j.problems, log.existing));
  const overall = overallOf(benchmarks);
  return {
    model: o.model,
    prompt: o.prompt,
    seed: o.seed,
    benchmarks,
    overall,
    metrics: metricsOf(benchmarks, overall),
  };
}

/** results.json and results.md (the pass@k chart is the caller's `chart`). */
export function writeResults(outDir: string, results: EvalResults): void {
  const files: [string, string][] = [
    ['results.json', JSON.stringify(results, null, 2) + '\n'],
    ['results.md', resultsMarkdown(results)],
  ];
  for (const [name, data] of files) {
    const file = path.join(outDir, name);
    writeOrFail(file, () => writeFileAtomic(file, data), RESUME_HINT);
  }
}
