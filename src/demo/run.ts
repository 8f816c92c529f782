// `red demo`: RED against the paper's baselines on the built-in task, end to end on a laptop.
// Data and base model (cached), then every Table 2 method trained with the same budget (steps,
// prompts per step), seeds and base, each evaluated on the held-out split; the table and the
// report go to one folder. A method already finished in that folder with the same config, seed
// and code is reused, so an interrupted demo resumes where it stopped.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { writeBuiltinDataset } from '../data/task/builtin.ts';
import { getBackend, type BackendPreference } from '../engine/index.ts';
import { closeVerifier } from '../reward/index.ts';
import { resolveStages } from '../rl/options.ts';
import { CheckpointManager } from '../train/checkpoint.ts';
import { applySets, configToYaml, resolveTrainConfig } from '../train/config.ts';
import { createProgress } from '../train/metrics.ts';
import { pretrain, PRETRAIN_DEFAULTS } from '../train/pretrain.ts';
import { buildEnv, loadCommandConfig } from '../train/run.ts';
import { Trainer } from '../train/trainer.ts';
import { fail } from '../util/errors.ts';
import { cachedContentHash, modelFiles } from '../util/content-hash.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { buildReport } from '../report/build.ts';
import { machineInfo, sha256File } from '../report/machine.ts';
import type { EvalResults } from '../eval/results.ts';
import { evaluateHeldOut } from './evaluate.ts';
import { DEMO_METHODS, type DemoBudget } from './budget.ts';

export interface DemoOptions {
  /** Everything goes here: base/, data/, runs/<method>/seed-<n>/, results.md/.json, report.html, figures/. */
  out: string;
  budget: DemoBudget;
  /** Folder reused across demos for the data and the base model; null = build them in `out`. */
  cacheDir: string | null;
  /** Subset of the methods (default: all of Table 2). */
  methods?: readonly string[];
  /** Seeds per method: budget.seed, budget.seed + 1, … (default 1); the table shows mean ± s.e. */
  seeds?: number;
  /** Start from this model folder instead of pretraining one (it is copied to OUT/base). */
  baseModel?: string;
  backend?: BackendPreference;
  /**
   * `key.path=value` overrides of the shared training config, as `red train --set` (e.g.
   * `algorithm.accuracyIncludesOffline=false` for an ablation): every run gets them, and
   * train-config.yaml records them.
   */
  sets?: readonly string[];
  /** One line per phase (default: stdout). */
  log?: (line: string) => void;
}

export interface DemoRunTiming {
  name: string;
  seed: number;
  /** True when a finished run of the same config and code was reused. */
  reused: boolean;
  trainSeconds: number;
  evalSeconds: number;
}

export interface DemoResult {
  out: string;
  seconds: number;
  runs: DemoRunTiming[];
  /** The results table (Markdown). */
  markdown: string;
}

/** A short hash of what determines a cached artefact (options + the generator's source). */
function cacheKey(value: unknown, sources: readonly string[]): string {
  const h = createHash('sha256').update(JSON.stringify(value));
  for (const s of sources) h.update(readFileSync(new URL(s, import.meta.url)));
  return h.digest('hex').slice(0, 12);
}

const DATA_SOURCES = [
  '../data/task/problems.ts',
  '../data/task/teacher.ts',
  '../data/task/builtin.ts',
  '../data/task/tokenizer.ts',
];
const BASE_SOURCES = [
  ...DATA_SOURCES,
  '../data/task/documents.ts',
  '../data/task/model.ts',
  '../train/pretrain.ts',
  '../train/optimizer.ts',
  '../rl/sft.ts',
];
/** Everything a trained and evaluated run depends on: training, rollouts, verifier, eval, engine. */
const RUN_SOURCE_DIRS = [
  '../data/',
  '../engine/',
  '../eval/',
  '../model/',
  '../reward/',
  '../rl/',
  '../rollout/',
  '../train/',
  '../util/',
];
const RUN_SOURCES = [
  './evaluate.ts',
  ...RUN_SOURCE_DIRS.flatMap((d) => sourceFiles(new URL(d, import.meta.url)).map((f) => `${d}${f}`)),
];

/** The .ts files under a source folder (relative paths, sorted, so the hash is stable). */
function sourceFiles(dir: URL): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(new URL(rel, dir)).sort()) {
      const child = `${rel}${name}`;
      if (statSync(new URL(child, dir)).isDirectory()) walk(`${child}/`);
      else if (/\.(ts|mjs)$/.test(name)) out.push(child);
    }
  };
  walk('');
  return out;
}

/** The native kernels' binary, when built: a rebuilt engine may change results. */
function nativeBinary(): Buffer | null {
  const file = new URL('../../build/Release/red_native.node', import.meta.url);
  return existsSync(file) ? readFileSync(file) : null;
}

/** The file in a finished run folder holding the key of what produced it. */
const RUN_KEY_FILE = 'demo_key.json';

/** A finished run whose key matches: its eval results and timing are there. */
function finishedRun(dir: string, key: string): boolean {
  try {
    const k = JSON.parse(readFileSync(path.join(dir, RUN_KEY_FILE), 'utf8')) as { key?: unknown };
    return k.key === key && complete(dir, ['eval/results.json', 'wall_time.json', 'metrics.jsonl']);
  } catch {
    return false;
  }
}

function complete(dir: string, files: readonly string[]): boolean {
  return files.every((f) => existsSync(path.join(dir, f)));
}

/** What a model folder given with --base must hold. */
const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];

/** The methods, the base model, the backend and the --set overrides are valid: checked before anything is written. */
export function checkDemoOptions(o: Pick<DemoOptions, 'methods' | 'baseModel' | 'backend' | 'budget' | 'sets'>): void {
  const methods = o.methods ?? DEMO_METHODS;
  if (methods.length === 0) fail(`--methods is empty; give some of ${DEMO_METHODS.join(', ')}`);
  for (const m of methods)
    if (!(DEMO_METHODS as readonly string[]).includes(m))
      fail(`--methods: unknown method '${m}'; expected some of ${DEMO_METHODS.join(', ')}`);
  if (o.baseModel !== undefined && !complete(o.baseModel, MODEL_FILES))
    fail(`--base ${o.baseModel}: not a model folder with ${MODEL_FILES.join(', ')}`);
  getBackend(o.backend); // --backend native without the addon fails now, not after the data is built
  if (o.sets?.length) resolveTrainConfig(demoConfig(o.budget, 'base', 'train.jsonl', o.backend, o.sets), '--set');
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  checkDemoOptions(o);
  const log = o.log ?? ((line: string) => console.log(line));
  const b = o.budget;
  const methods = o.methods ?? DEMO_METHODS;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const clock = () => ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
  const say = (line: string) => log(`[${clock()} s] ${line}`);
  const out = path.resolve(o.out);
  try {
    mkdirSync(out, { recursive: true });
  } catch (err) {
    fail(`cannot create the output folder ${o.out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const dataDir = prepareData(o, out, say);
  const baseDir = await prepareBase(o, out, say);
  // One config for every method; each run only names its method.
  const configFile = path.join(out, 'train-config.yaml');
  writeFileAtomic(configFile, demoConfigYaml(b, baseDir, path.join(dataDir, 'train.jsonl'), o.backend, o.sets));
  const seeds = Array.from({ length: o.seeds ?? 1 }, (_, i) => b.seed + i);
  const shared = { o, out, baseDir, configFile, testFile: path.join(dataDir, 'test.jsonl'), say };
  const ctx: RunContext = { ...shared, keyOf: runKeys(shared, dataDir) };
  const runs: DemoRunTiming[] = [];
  const runDirs: string[] = [];
  try {
    runs.push(await evaluateBase(ctx));
    for (const method of methods)
      for (const seed of seeds) {
        const r = await runMethod(ctx, method, seed, seeds.length > 1);
        runs.push(r.timing);
        runDirs.push(r.dir);
      }
  } finally {
    await closeVerifier();
  }
  const t = performance.now();
  const report = await buildReport({
    runDirs,
    out,
    base: { dir: baseDir, evalDir: path.join(out, 'base-eval') },
    title: `red demo (${b.name} budget): RED against the baselines on the built-in task`,
    notes: demoNotes(b, o.baseModel, seeds, o.sets ?? []),
    backend: o.backend,
    provenance: {
      machine: machineInfo(getBackend(o.backend)),
      baseModelSha256: sha256File(path.join(baseDir, 'model.safetensors')),
    },
  });
  say(
    `report: ${path.relative(process.cwd(), report.html) || report.html}, ${report.figures.length} figures (${secs(t)})`,
  );
  const cpu = process.cpuUsage(cpu0);
  const seconds = (performance.now() - t0) / 1000;
  log(
    `done in ${seconds.toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU (this process; on a busy machine the CPU time is the better guide to an idle one's wall time)`,
  );
  return { out, seconds, runs, markdown: report.markdown };
}

/** What every phase after the base model shares. */
interface RunContext {
  o: DemoOptions;
  out: string;
  baseDir: string;
  configFile: string;
  testFile: string;
  say: (line: string) => void;
  /** The reuse key of a run (method, seed, budget) given everything it depends on. */
  keyOf: (what: unknown) => string;
}

/** 1. Data: train/held-out JSONL of the built-in task, from the cache when it has them. */
function prepareData(o: DemoOptions, out: string, say: (line: string) => void): string {
  const t = performance.now();
  const b = o.budget;
  const dataDir = path.join(out, 'data');
  const dataOpts = { seed: b.seed, train: b.data.train, test: b.data.test };
  const dataFiles = ['train.jsonl', 'test.jsonl', 'tokenizer.json', 'tokenizer_config.json'];
  let how = 'built';
  if (o.cacheDir) {
    const cached = path.join(o.cacheDir, `data-${cacheKey(dataOpts, DATA_SOURCES)}`);
    if (complete(cached, dataFiles)) how = `reused ${cached}`;
    else writeBuiltinDataset({ ...dataOpts, out: cached });
    rmSync(dataDir, { recursive: true, force: true });
    cpSync(cached, dataDir, { recursive: true, preserveTimestamps: true });
  } else writeBuiltinDataset({ ...dataOpts, out: dataDir });
  const rows = (f: string) => readFileSync(path.join(dataDir, f), 'utf8').trim().split('\n').length;
  say(`data: ${how}, ${rows('train.jsonl')} train / ${rows('test.jsonl')} held-out problems (${secs(t)})`);
  return dataDir;
}

/** 2. The base model: the tiny Qwen2 pretrained from scratch (partial ability), given, or cached. */
async function prepareBase(o: DemoOptions, out: string, say: (line: string) => void): Promise<string> {
  const t = performance.now();
  const b = o.budget;
  const baseDir = path.join(out, 'base');
  const pre = { ...b.pretrain, evalPerLevel: 0, evalSamples: 1 };
  let how = 'pretrained';
  let target = o.cacheDir ? path.join(o.cacheDir, `base-${cacheKey(pre, BASE_SOURCES)}`) : baseDir;
  if (o.baseModel !== undefined) {
    target = path.resolve(o.baseModel); // checked by checkDemoOptions
    how = `given ${o.baseModel}`;
  } else if (o.cacheDir && complete(target, MODEL_FILES)) how = `reused ${target}`;
  else await pretrain({ ...pre, out: target, backend: o.backend });
  if (target !== baseDir) {
    rmSync(baseDir, { recursive: true, force: true });
    cpSync(target, baseDir, { recursive: true, preserveTimestamps: true }); // mtimes kept: the hashes stay cached
  }
  say(`base model: ${how}${o.baseModel === undefined ? `, ${b.pretrain.steps} steps` : ''} (${secs(t)})`);
  return baseDir;
}

/**
 * What a run depends on besides its method and seed: the shared config, the base weights, the
 * data, the evaluation settings and the code (a change to any of them retrains).
 */
function runKeys(ctx: Omit<RunContext, 'keyOf'>, dataDir: string): (what: unknown) => string {
  // The base model and the data by content, each file's hash kept while its size and mtime hold.
  const inputs = [...modelFiles(ctx.baseDir), path.join(dataDir, 'train.jsonl'), ctx.testFile];
  const common = createHash('sha256')
    .update(readFileSync(ctx.configFile))
    .update(cachedContentHash(inputs, ctx.out, path.join(ctx.out, '.red-digests.json')))
    .update(JSON.stringify(ctx.o.budget.eval))
    .update(cacheKey(null, RUN_SOURCES))
    .update(nativeBinary() ?? '')
    .digest('hex');
  return (what) => createHash('sha256').update(common).update(JSON.stringify(what)).digest('hex').slice(0, 16);
}

/** The base model on the held-out split (reused when base-eval/ holds this key's results). */
async function evaluateBase(ctx: RunContext): Promise<DemoRunTiming> {
  const t = performance.now();
  const b = ctx.o.budget;
  const baseEvalDir = path.join(ctx.out, 'base-eval');
  const baseKey = ctx.keyOf({ base: true, seed: b.seed });
  const reused = finishedBaseEval(baseEvalDir, baseKey);
  const evalOpts = { model: ctx.baseDir, testFile: ctx.testFile, out: baseEvalDir, budget: b, seed: b.seed };
  const result = reused ?? (await evaluateHeldOut({ ...evalOpts, backend: ctx.o.backend }));
  if (!reused) writeJsonAtomic(path.join(baseEvalDir, RUN_KEY_FILE), { key: baseKey });
  const acc = `eval acc ${pct(result.overall.acc)} LEN ${result.overall.len.toFixed(0)}`;
  ctx.say(`base: ${reused ? 'reused, ' : ''}${acc} (${secs(t)})`);
  return {
    name: 'base',
    seed: b.seed,
    reused: reused !== null,
    trainSeconds: 0,
    evalSeconds: (performance.now() - t) / 1000,
  };
}

/** One method at one seed, trained and evaluated (or reused), with its one log line. */
async function runMethod(
  ctx: RunContext,
  method: string,
  seed: number,
  manySeeds: boolean,
): Promise<{ dir: string; timing: DemoRunTiming }> {
  const b = ctx.o.budget;
  const dir = path.join(ctx.out, 'runs', method, `seed-${seed}`);
  const label = manySeeds ? `${method} (seed ${seed})` : method;
  const r = await trainAndEvaluate({
    dir,
    method,
    seed,
    key: ctx.keyOf({ method, seed, steps: b.train.steps }),
    configFile: ctx.configFile,
    testFile: ctx.testFile,
    budget: b,
    backend: ctx.o.backend,
  });
  const acc = `eval acc ${pct(r.eval.overall.acc)} LEN ${r.eval.overall.len.toFixed(0)}`;
  ctx.say(
    r.timing.reused
      ? `${label}: reused (finished earlier with the same config and code); ${acc}`
      : `${label}: ${r.steps} step${r.steps === 1 ? '' : 's'} in ${r.timing.trainSeconds.toFixed(1)} s; ${acc} (${r.timing.evalSeconds.toFixed(1)} s)`,
  );
  return { dir, timing: r.timing };
}

/**
 * One method at one seed: reused when DIR holds a finished run with this key, else trained from
 * scratch and evaluated; the key file is written last, so only a finished run is ever reused.
 */
async function trainAndEvaluate(r: {
  dir: string;
  method: string;
  seed: number;
  key: string;
  configFile: string;
  testFile: string;
  budget: DemoBudget;
  backend?: BackendPreference;
}): Promise<{ timing: DemoRunTiming; eval: EvalResults; steps: number }> {
  const { dir, method, seed } = r;
  if (finishedRun(dir, r.key)) {
    const wall = JSON.parse(readFileSync(path.join(dir, 'wall_time.json'), 'utf8')) as {
      train_s: number;
      eval_s: number;
    };
    const res = JSON.parse(readFileSync(path.join(dir, 'eval', 'results.json'), 'utf8')) as EvalResults;
    return {
      timing: { name: method, seed, reused: true, trainSeconds: wall.train_s, evalSeconds: wall.eval_s },
      eval: res,
      steps: 0,
    };
  }
  rmSync(dir, { recursive: true, force: true });
  const t = performance.now();
  const steps = await trainOne(r.configFile, dir, method, seed, r.budget.train.steps);
  const trainSeconds = (performance.now() - t) / 1000;
  const latest = new CheckpointManager(path.join(dir, 'checkpoints'), 1).latest();
  if (!latest) fail(`${dir}: training left no checkpoint`);
  const te = performance.now();
  const res = await evaluateHeldOut({
    model: latest.dir,
    testFile: r.testFile,
    out: path.join(dir, 'eval'),
    budget: r.budget,
    seed,
    backend: r.backend,
  });
  const evalSeconds = (performance.now() - te) / 1000;
  writeJsonAtomic(path.join(dir, 'wall_time.json'), { train_s: trainSeconds, eval_s: evalSeconds });
  writeJsonAtomic(path.join(dir, RUN_KEY_FILE), { key: r.key }); // last: the run is finished
  return { timing: { name: method, seed, reused: false, trainSeconds, evalSeconds }, eval: res, steps };
}

/** The base model's evaluation when an earlier demo left it with the same key. */
function finishedBaseEval(dir: string, key: string): EvalResults | null {
  if (!(existsSync(path.join(dir, 'results.json')) && keyMatches(dir, key))) return null;
  return JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as EvalResults;
}

function keyMatches(dir: string, key: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, RUN_KEY_FILE), 'utf8')) as { key?: unknown }).key === key;
  } catch {
    return false;
  }
}

/**
 * Trains one method as `red train --config FILE --method M --set seed=S --out DIR` would, without
 * its console lines. Every method gets `steps` optimiser steps in all: a method of several stages
 * (sft-grpo) splits them between its stages, so no method trains longer than another.
 */
async function trainOne(configFile: string, dir: string, method: string, seed: number, steps: number): Promise<number> {
  const probe = loadCommandConfig({ config: configFile, out: dir, method, sets: [], resume: false });
  const stageCount = resolveStages(probe.algorithm).length;
  const perStage = Math.max(1, Math.floor(steps / stageCount)); // never more steps than a one-stage method
  const config = loadCommandConfig({
    config: configFile,
    out: dir,
    method,
    sets: [`seed=${seed}`, `schedule.totalSteps=${perStage}`, `checkpoint.every=${perStage}`],
    resume: false,
  });
  const stages = resolveStages(config.algorithm);
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, 'config.yaml'), configToYaml(config));
  const env = await buildEnv(
    config,
    stages.some((s) => s.klCoef > 0),
  );
  const trainer = new Trainer(env, { config, stages, outDir: dir, resume: false, progress: createProgress('none') });
  try {
    return await trainer.run();
  } finally {
    await env.engine.close();
  }
}

/**
 * The shared training config: examples/builtin/base.yaml's recipe (G, prompts per step, learning
 * rates, ReLIFT's buffer = one step of prompts) at the budget's size, then the --set overrides.
 * Checkpoints only at the end.
 */
function demoConfig(
  b: DemoBudget,
  modelDir: string,
  trainFile: string,
  backend: BackendPreference | undefined,
  sets: readonly string[] = [],
): Record<string, unknown> {
  const t = b.train;
  const config: Record<string, unknown> = {
    seed: b.seed,
    model: { path: modelDir },
    ...(backend ? { engine: { backend } } : {}),
    data: { train: trainFile, maxPromptTokens: 128 },
    rollout: { groupSize: t.groupSize, promptsPerStep: t.promptsPerStep, maxTokens: t.maxTokens },
    optim: { lr: t.rlLr },
    sft: { lr: t.sftLr, batchSize: t.promptsPerStep },
    schedule: { totalSteps: t.steps },
    algorithm: { sftInterleave: { bufferSize: t.promptsPerStep } },
    checkpoint: { every: t.steps, keep: 1 },
    log: { progress: 'none' },
  };
  applySets(config, sets);
  return config;
}

/** demoConfig as the YAML file every run reads. */
export function demoConfigYaml(
  b: DemoBudget,
  modelDir: string,
  trainFile: string,
  backend?: BackendPreference,
  sets: readonly string[] = [],
): string {
  const set = sets.length > 0 ? ` (with --set ${sets.join(' ')})` : '';
  return (
    `# red demo (${b.name} budget): the config every method shares${set}; each run adds only its method.\n` +
    YAML.stringify(demoConfig(b, modelDir, trainFile, backend, sets))
  );
}

function demoNotes(
  b: DemoBudget,
  baseModel: string | undefined,
  seeds: readonly number[],
  sets: readonly string[],
): string[] {
  const half = Math.max(1, Math.floor(b.train.steps / 2));
  return [
    ...(sets.length > 0 ? [`Every run with --set ${sets.join(' ')} (the presets otherwise unchanged).`] : []),
    `Budget '${b.name}': every method trains ${b.train.steps} optimiser steps in all (sft-grpo: ${half} SFT steps then ${half} GRPO steps) of ${b.train.promptsPerStep} prompts each, G = ${b.train.groupSize}, responses ≤ ${b.train.maxTokens} tokens, from the same base model. Group filtering (drop groups whose members all score alike, redraw up to 6 times) is on for every method that samples; the Rollouts, Groups/step (the effective batch, of ${b.train.promptsPerStep} wanted) and Train tokens columns give the compute each method used.`,
    seeds.length > 1
      ? `Seeds ${seeds.join(', ')} per method (training and evaluation sampling); figures are the mean over seeds ± its standard error; the curves and the token view show seed ${seeds[0]}.`
      : `One seed (${seeds[0]}); the ± in the verdict is the binomial standard error of the evaluation samples, not seed-to-seed variation (use --seeds N for that).`,
    baseModel !== undefined
      ? `Base model: ${baseModel} (given with --base), copied to base/.`
      : `Base model: pretrained ${b.pretrain.steps} steps from scratch (seed ${b.pretrain.seed}) on lines of f's table (${Math.round(PRETRAIN_DEFAULTS.tableShare * 100)}% of documents), direct answers of levels 1–2 of the training split and a ${Math.round(PRETRAIN_DEFAULTS.traceShare * 100)}% share of teacher traces (the chain of values) of levels 1–2 only: the base knows every step and has never written a chain of 3–5.`,
    `Evaluation: the first ${b.eval.problems} held-out problems, avg@${b.eval.samples} at temperature ${b.eval.temperature}, ≤ ${b.eval.maxTokens} tokens; LEN = mean response tokens; pass@k for k = 1…${b.eval.samples} from the same samples (the base evaluated with seed ${b.seed}).`,
    'Method options are the presets of src/rl/options.ts, unchanged (e.g. luffy trains at half the shared lr, as RED-SPEC: 1e-6 vs 2e-6); nothing is tuned per method.',
  ];
}

function secs(t: number): string {
  return `${((performance.now() - t) / 1000).toFixed(1)} s`;
}

function pct(x: number): string {
  return Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : '-';
}
