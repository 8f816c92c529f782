// `red eval`: the paper's evaluation protocol on its benchmarks (or any JSONL/Parquet file),
// resumable, writing results.json/.md, samples.jsonl and the pass@k chart; and
// `red eval --compare DIR…`: several evaluated models side by side in one Markdown table.
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';

export interface EvalCliOptions {
  model?: string;
  data?: string;
  benchmarks: string;
  problemField: string;
  answerField: string;
  levelField: string;
  idField?: string;
  n?: number;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  limit?: number;
  seed: number;
  prompt: string;
  chunk: number;
  maxBatch: number;
  backend: string;
  precision: string;
  out?: string;
  compare?: string[];
}

function numberOption(name: string, check: (x: number) => boolean, expected: string): (value: string) => number {
  return (value: string) => {
    const x = Number(value);
    if (value.trim() === '' || !Number.isFinite(x) || !check(x)) fail(`--${name} must be ${expected}, got '${value}'`);
    return x;
  };
}
const positiveInt = (name: string) => numberOption(name, (x) => Number.isInteger(x) && x >= 1, 'a positive integer');

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      "evaluate a model with the paper's protocol (qwen-boxed prompt, avg@32 / pass@1 at T=0.6, ≤8192 tokens), or --compare evaluated folders",
    )
    .option('--model <dir>', 'model folder (config.json, safetensors, tokenizer) or Hub id org/name[@rev]')
    .option(
      '--data <dir>',
      'folder (or Hub dataset id) holding the benchmark files (math500.jsonl, aime24.jsonl, aime25.jsonl, amc83.jsonl, minerva_math.jsonl, olympiadbench.jsonl)',
    )
    .option(
      '--benchmarks <list>',
      'comma-separated: registry names, or files as name=path.jsonl|.parquet (the field options below apply)',
      'aime24,aime25,amc,math500,minerva,olympiad',
    )
    .option('--problem-field <path>', 'problem field of file benchmarks (dotted path)', 'problem')
    .option(
      '--answer-field <path>',
      'gold field of file benchmarks; boxed:FIELD takes the last \\boxed{} of FIELD',
      'answer',
    )
    .option('--level-field <path>', 'difficulty field of file benchmarks, reported per level when present', 'level')
    .option('--id-field <path>', 'id field of file benchmarks, copied to samples.jsonl')
    .option('--n <n>', 'samples per problem, overriding the protocol (32 for AIME/AMC, 1 otherwise)', positiveInt('n'))
    .option(
      '--temperature <t>',
      'sampling temperature (default 0.6)',
      numberOption('temperature', (x) => x >= 0, 'a number ≥ 0'),
    )
    .option(
      '--top-p <p>',
      'nucleus mass (default 1)',
      numberOption('top-p', (x) => x > 0 && x <= 1, 'in (0, 1]'),
    )
    .option('--max-tokens <m>', 'most new tokens per sample (default 8192)', positiveInt('max-tokens'))
    .option('--limit <k>', 'only the first K problems of each benchmark', positiveInt('limit'))
    .option(
      '--seed <s>',
      'sampling seed (each problem draws from its own stream)',
      numberOption('seed', (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer'),
      0,
    )
    .option('--prompt <style>', 'qwen-boxed (chat template) or raw (problem text only)', 'qwen-boxed')
    .option(
      '--chunk <samples>',
      'samples per generation call; progress is saved after each',
      positiveInt('chunk'),
      1024,
    )
    .option('--max-batch <n>', 'sequences decoded at once (KV-cache slots)', positiveInt('max-batch'), 64)
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option(
      '--precision <name>',
      'fp32, or bf16: weights in bfloat16, GEMMs accumulating in fp32 (faster where the CPU has avx512_bf16)',
      'fp32',
    )
    .option('--out <dir>', 'output folder (resumes when it holds an unfinished run); optional with --compare')
    .option('--compare <dirs...>', 'put these evaluated folders side by side (Markdown table)')
    .action(async (opts: EvalCliOptions) => {
      if (opts.compare) await compareAction(opts.compare, opts.out);
      else await evalAction(opts);
    });
}

async function compareAction(dirs: string[], out: string | undefined): Promise<void> {
  const { compareFolders } = await import('../eval/compare.ts');
  const md = await compareFolders(dirs, out);
  process.stdout.write(md);
}

type EvalJobs = Awaited<ReturnType<typeof benchmarkJobs>>;
type EvalModel = Awaited<ReturnType<typeof loadEvalModel>>;
type Warn = (message: string) => void;

/**
 * `red eval --model M --out DIR`: the folder checked (red's or new, no input), the benchmarks
 * and the model loaded, the memory checked, the evaluation run with a progress display, the
 * tables printed.
 */
async function evalAction(opts: EvalCliOptions): Promise<void> {
  if (!opts.model) fail('--model is required (or use --compare)');
  if (!opts.out) fail('--out is required');
  const { PROMPT_STYLES } = await import('../eval/protocol.ts');
  const prompt = PROMPT_STYLES.find((p) => p === opts.prompt);
  if (!prompt) fail(`--prompt must be one of ${PROMPT_STYLES.join(', ')}, got '${opts.prompt}'`);
  const { checkOutFolder } = await import('../util/ownership.ts');
  checkOutFolder(opts.out, { command: 'red eval', kind: 'eval', alsoInto: ['run'] });
  const progress = await progressReporter();
  const warn: Warn = (w) => {
    progress.pause();
    process.stderr.write(`warning: ${w}\n`);
  };
  const jobs = await benchmarkJobs(opts, warn);
  const loaded = await loadEvalModel(opts.model, opts, prompt === 'qwen-boxed');
  await checkEvalSizes(opts, jobs, loaded, warn);
  try {
    const results = await runWithInterrupt(opts, opts.out, prompt, jobs, loaded, progress, warn);
    progress.stop();
    await printEvalResults(results, loaded.stats, opts.out);
  } finally {
    progress.stop();
    await (await import('../eval/generator.ts')).mathVerifier.close?.();
  }
}

/** --out is none of the inputs; the run fits in memory; a response limit past the model's positions is said. */
async function checkEvalSizes(opts: EvalCliOptions, jobs: EvalJobs, loaded: EvalModel, warn: Warn): Promise<void> {
  const { checkOutIsNoInput } = await import('../util/ownership.ts');
  const { samplingMemory } = await import('../model/footprint.ts');
  const { checkMemoryFits } = await import('../util/memory.ts');
  const inputs = [
    { option: '--model', path: loaded.dir },
    { option: '--data', path: opts.data },
    ...jobs.map((j) => ({ option: `--benchmarks ${j.spec.name}`, path: j.file })),
  ];
  checkOutIsNoInput(opts.out!, inputs);
  const config = loaded.model.config;
  const maxTokens = Math.max(...jobs.map((j) => j.sampling.maxTokens));
  const n = Math.max(...jobs.map((j) => j.sampling.n));
  // A call holds about --chunk samples, or one problem's n when that is more.
  const samples = Math.max(opts.chunk, n);
  const size = {
    samples,
    slots: Math.min(opts.maxBatch, samples),
    positions: maxTokens + 1,
    sizedBy: { positions: '--max-tokens or --max-batch', samples: '--n or --chunk' },
  };
  checkMemoryFits('this evaluation', samplingMemory(config, size, opts.precision === 'bf16'));
  if (maxTokens >= config.maxPositionEmbeddings)
    warn(
      `--max-tokens ${maxTokens} is not below the model's max_position_embeddings ${config.maxPositionEmbeddings} (config.json): long responses run into positions it was not trained on`,
    );
}

/** runEval with Ctrl-C saying what is kept and how to resume (exit 130). */
async function runWithInterrupt(
  opts: EvalCliOptions,
  out: string,
  prompt: import('../eval/protocol.ts').PromptStyle,
  jobs: EvalJobs,
  loaded: EvalModel,
  progress: Awaited<ReturnType<typeof progressReporter>>,
  warn: Warn,
) {
  const path = await import('node:path');
  const { runEval } = await import('../eval/run.ts');
  const { writePasskChart } = await import('../report/passk.ts');
  const { samplerGenerator, mathVerifier } = await import('../eval/generator.ts');
  const onSigint = () => {
    progress.stop();
    interruptedNote(path.join(out, 'samples.jsonl'));
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  try {
    return await runEval({
      outDir: out,
      model: opts.model!,
      modelDir: loaded.dir,
      jobs,
      generate: samplerGenerator({
        model: loaded.model,
        tokenizer: loaded.tokenizer,
        maxBatch: opts.maxBatch,
        stats: loaded.stats,
      }),
      verifier: mathVerifier,
      prompt,
      seed: opts.seed,
      chunkSamples: opts.chunk,
      chart: writePasskChart,
      onProgress: progress.update,
      onWarning: warn,
    });
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** The tables on stdout; the sampler's throughput and the files written on stderr. */
async function printEvalResults(
  results: import('../eval/results.ts').EvalResults,
  stats: EvalModel['stats'],
  out: string,
): Promise<void> {
  const path = await import('node:path');
  const { resultsMarkdown } = await import('../eval/results.ts');
  process.stdout.write(resultsMarkdown(results));
  if (stats.decodeSeconds > 0) {
    process.stderr.write(
      `sampler: prefill ${stats.prefillTokens} tokens in ${stats.prefillSeconds.toFixed(1)} s, decode ${stats.decodeTokens} tokens in ${stats.decodeSeconds.toFixed(1)} s (${(stats.decodeTokens / stats.decodeSeconds).toFixed(1)} tokens/s)\n`,
    );
  }
  process.stderr.write(`wrote ${path.join(out, 'results.json')}, results.md, samples.jsonl, passk.svg, passk.png\n`);
}

/** Each --benchmarks entry resolved (registry name or file, Hub ids fetched), loaded, with its sampling protocol. */
async function benchmarkJobs(opts: EvalCliOptions, warn: (message: string) => void) {
  const path = await import('node:path');
  const { existsSync } = await import('node:fs');
  const { resolveBenchmark, loadBenchmark, benchmarkPath } = await import('../eval/benchmarks.ts');
  const { samplingFor } = await import('../eval/protocol.ts');
  const hub = await import('../hub/snapshot.ts');
  const names = opts.benchmarks
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) fail('--benchmarks is empty');
  const fields = {
    problem: opts.problemField,
    answer: opts.answerField,
    level: opts.levelField,
    ...(opts.idField ? { id: opts.idField } : {}),
  };
  const overrides = {
    ...(opts.n !== undefined ? { n: opts.n } : {}),
    ...(opts.temperature !== undefined ? { temperature: opts.temperature } : {}),
    ...(opts.topP !== undefined ? { topP: opts.topP } : {}),
    ...(opts.maxTokens !== undefined ? { maxTokens: opts.maxTokens } : {}),
  };
  const dataDir = opts.data === undefined ? undefined : await hub.resolveDataDir(opts.data, '--data');
  const jobs = [];
  const seen = new Set<string>();
  for (const arg of names) {
    let spec = resolveBenchmark(arg, fields);
    if (seen.has(spec.name)) fail(`--benchmarks names '${spec.name}' twice`);
    seen.add(spec.name);
    if (benchmarkPath(spec, dataDir) === spec.file)
      spec = { ...spec, file: await hub.resolveDataFile(spec.file, `--benchmarks ${spec.name}`) };
    const file = benchmarkPath(spec, dataDir);
    if (!existsSync(file))
      fail(
        `${file}: benchmark file not found${opts.data ? ` (is --data ${opts.data} the folder holding ${path.basename(file)}?)` : ''}`,
      );
    jobs.push({
      spec,
      file,
      problems: await loadBenchmark(spec, dataDir, opts.limit, warn),
      sampling: samplingFor(spec, overrides),
    });
  }
  return jobs;
}

/** The model (a folder or a Hub id) on the chosen backend and precision, its local folder, its tokenizer and its sampler's counters. */
async function loadEvalModel(id: string, opts: EvalCliOptions, needsChatTemplate: boolean) {
  const { Qwen2Model } = await import('../model/qwen2.ts');
  const { newGenerateStats } = await import('../rollout/sampler.ts');
  const { loadTokenizer } = await import('../model/tokenizer.ts');
  const { getBackend } = await import('../engine/index.ts');
  const { parsePrecision } = await import('../engine/precision.ts');
  const hub = await import('../hub/snapshot.ts');
  const backendPref =
    opts.backend === 'auto' || opts.backend === 'native' || opts.backend === 'reference'
      ? opts.backend
      : fail(`--backend must be auto, native or reference, got '${opts.backend}'`);
  const precision = parsePrecision(opts.precision, '--precision');
  const modelDir = await hub.resolveModelPath(id, '--model');
  const model = await Qwen2Model.load(modelDir, { backend: getBackend(backendPref), precision });
  const tokenizer = loadTokenizer(modelDir, model.config.vocabSize);
  if (needsChatTemplate && !tokenizer.hasChatTemplate)
    fail(
      `${id}: tokenizer_config.json has no chat_template, which --prompt qwen-boxed needs; use --prompt raw (the problem text alone), or a chat model`,
    );
  return { dir: modelDir, model, tokenizer, stats: newGenerateStats() };
}

/** Ctrl-C: finished problems are already in samples.jsonl (appended chunk by chunk); say so. */
function interruptedNote(file: string): void {
  const saved = existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '').length
    : 0;
  process.stderr.write(
    `\nred eval: interrupted; ${saved} finished problem(s) are kept in ${file}; run the same command to resume from there\n`,
  );
}

/** A cli-progress bar over samples on a terminal; a plain line per finished chunk otherwise. */
async function progressReporter(): Promise<{
  update: (p: import('../eval/run.ts').EvalProgress) => void;
  pause: () => void;
  stop: () => void;
}> {
  const started = performance.now();
  if (process.stderr.isTTY) {
    const { SingleBar } = await import('cli-progress');
    const bar = new SingleBar({
      format: 'eval [{bar}] {value}/{total} samples | {problems} problems | {eta_formatted} left',
      stream: process.stderr,
      hideCursor: true,
    });
    let running = false;
    return {
      update: (p) => {
        if (!running) {
          bar.start(p.samplesTotal, p.samplesDone, { problems: `${p.problemsDone}/${p.problemsTotal}` });
          running = true;
        } else bar.update(p.samplesDone, { problems: `${p.problemsDone}/${p.problemsTotal}` });
      },
      pause: () => {
        if (running) bar.stop();
        running = false;
      },
      stop: () => {
        if (running) bar.stop();
        running = false;
      },
    };
  }
  let lastProblems = -1;
  return {
    update: (p) => {
      if (p.problemsDone === lastProblems) return;
      lastProblems = p.problemsDone;
      const s = (performance.now() - started) / 1000;
      process.stderr.write(
        `eval: ${p.problemsDone}/${p.problemsTotal} problems, ${p.samplesDone}/${p.samplesTotal} samples, ${s.toFixed(0)} s\n`,
      );
    },
    pause: () => {},
    stop: () => {},
  };
}
