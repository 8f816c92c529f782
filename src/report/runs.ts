// What a report knows about one training run, read only from its folder as `red train` and
// `red eval` leave it: config.yaml (method, seed, model, data), metrics.jsonl (one line per step),
// eval results (RUN/eval/results.json or RUN/results.json) and the demo's wall_time.json.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import type { EvalResults } from '../eval/results.ts';
import { CheckpointManager } from '../train/checkpoint.ts';
import type { Metrics } from '../train/metrics.ts';
import { fail } from '../util/errors.ts';

export interface RunSummary {
  /** Label in tables and legends: the folder's name (its parent's for a seed-N folder, one seed of a method). */
  name: string;
  dir: string;
  method: string | null;
  seed: number | null;
  /** config.yaml as written (null when absent). */
  configText: string | null;
  /** model.path and data.train of the config, when present. */
  modelPath: string | null;
  trainData: string | null;
  dataFields: string | null;
  responseLimit: number | null;
  /** One entry per logged step, in step order. */
  metrics: Metrics[];
  eval: EvalResults | null;
  /** Training wall time: the demo's measurement, else the sum of timing_s/step. */
  trainSeconds: number | null;
  evalSeconds: number | null;
  /** Newest complete checkpoint folder. */
  checkpoint: string | null;
}

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`${file}: not readable JSON (${(err as Error).message})`);
  }
}

/** metrics.jsonl → one object per step; a torn last line (a killed run) is skipped. */
export function readMetrics(file: string): Metrics[] {
  const out: Metrics[] = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      if (i >= lines.length - 2) return; // the last line of a run killed mid-write
      fail(`${file}: line ${i + 1} is not JSON`);
    }
    if (typeof value !== 'object' || value === null || typeof (value as Metrics).step !== 'number')
      fail(`${file}: line ${i + 1} has no numeric 'step'`);
    out.push(value as Metrics);
  });
  return out.sort((a, b) => a.step - b.step);
}

function get(obj: unknown, ...keys: string[]): unknown {
  let node = obj;
  for (const k of keys) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[k];
  }
  return node;
}

const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** RUN → "RUN"; METHOD/seed-43 → "METHOD" (the seeds of one method share its row). */
export function runLabel(dir: string): string {
  const full = path.resolve(dir);
  const base = path.basename(full);
  return /^seed-\d+$/.test(base) ? path.basename(path.dirname(full)) : base;
}

/** The mean of a metric over the steps that logged it; null when none did. */
export function metricMean(metrics: readonly Metrics[], key: string): number | null {
  const v = metrics.map((m) => m[key]).filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
}

/** The sum of a metric over the logged steps; null when no step logged it. */
export function metricSum(metrics: readonly Metrics[], key: string): number | null {
  const v = metrics.map((m) => m[key]).filter((x) => typeof x === 'number' && Number.isFinite(x));
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0);
}

export function loadRun(dir: string): RunSummary {
  if (!existsSync(dir)) fail(`${dir}: run folder not found`);
  const configFile = path.join(dir, 'config.yaml');
  const metricsFile = path.join(dir, 'metrics.jsonl');
  const evalFile = [path.join(dir, 'eval', 'results.json'), path.join(dir, 'results.json')].find((f) => existsSync(f));
  if (!existsSync(metricsFile) && !evalFile)
    fail(`${dir}: not a run folder (no metrics.jsonl, eval/results.json or results.json)`);

  let configText: string | null = null;
  let config: unknown = {};
  if (existsSync(configFile)) {
    configText = readFileSync(configFile, 'utf8');
    try {
      config = YAML.parse(configText) as unknown;
    } catch (err) {
      fail(`${configFile}: not valid YAML (${(err as Error).message})`);
    }
  }
  const metrics = existsSync(metricsFile) ? readMetrics(metricsFile) : [];
  const evalResults = evalFile ? (readJson(evalFile) as EvalResults) : null;
  if (evalResults && !Array.isArray(evalResults.benchmarks))
    fail(`${evalFile}: not a red eval results file (no 'benchmarks' list)`);

  const wallFile = path.join(dir, 'wall_time.json');
  const wall = existsSync(wallFile) ? readJson(wallFile) : null;
  const stepSeconds = metrics.reduce((a, m) => a + (m['timing_s/step'] ?? 0), 0);
  const ckpt = new CheckpointManager(path.join(dir, 'checkpoints'), 1).latest();
  return {
    name: runLabel(dir),
    dir,
    method: str(get(config, 'method')),
    seed: num(get(config, 'seed')),
    configText,
    modelPath: str(get(config, 'model', 'path')),
    trainData: str(get(config, 'data', 'train')),
    dataFields: str(get(config, 'data', 'fields')),
    responseLimit: num(get(config, 'rollout', 'maxTokens')),
    metrics,
    eval: evalResults,
    trainSeconds: num(get(wall, 'train_s')) ?? (metrics.length > 0 ? stepSeconds : null),
    evalSeconds: num(get(wall, 'eval_s')) ?? num(evalResults?.throughput?.wallS),
    checkpoint: ckpt?.dir ?? null,
  };
}
