// `red bench engine`: the compute engine's speed, each figure beside a peer measured in the same
// run. The register-only fp32 FMA and bf16 dot-product peaks; GEMM GFLOP/s in fp32 and bf16
// against numpy's float32 matmul (OpenBLAS, as the environment sets it and with its overrides
// unset) at two shapes, each as a fraction of its dtype's peak; a full training
// step through the training-engine contract (forward, forwardBackward, optimStep: clipping norm
// and AdamW) of a ~20M Qwen2 on 2048 packed tokens and of the Qwen2.5-0.5B shape on 512 tokens,
// on the native engine, as tokens/s and MFU against the best GEMM rate measured here; causal attention forward and backward beside PyTorch's (src/bench/attention.ts). The 0.5B
// step runs in a child process so its peak resident memory is its own.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend, HostArrayOf, Tensor } from '../engine/backend.ts';
import { toBf16 } from '../engine/bf16.ts';
import type { NativeExtras } from '../engine/native.ts';
import {
  BF16_BACKWARDS,
  DEFAULT_BF16_BACKWARD,
  parsePrecision,
  type Bf16Backward,
  type Precision,
} from '../engine/precision.ts';
import { getBackend } from '../engine/index.ts';
import { SHAPE_05B, SHAPE_20M, configOf, randomModel, type Shape } from './shapes.ts';
import { ADAMW_DEFAULTS, type EngineBatch } from '../train/engine.ts';
import { NativeEngine } from '../train/engines/native.ts';
import type { BenchOptions } from './options.ts';
import { fail } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { attentionRows } from './attention.ts';
import { cpuSeconds, loadAvg, now, round, timeRuns, type Timing } from './timing.ts';

const CHILD_ENV = 'RED_BENCH_ENGINE_CHILD';

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify(fields));
}

function uniform(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.uniform() * 2 - 1;
  return a;
}

// numpy's float32 a @ b, timed exactly as ours: one warm-up, then best and median of the runs.
const NUMPY_GEMM = `
import json, sys, time
import numpy as np
M, K, N, min_reps, min_s, max_reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
rng = np.random.default_rng(0)
a = rng.uniform(-1, 1, (M, K)).astype(np.float32)
b = rng.uniform(-1, 1, (K, N)).astype(np.float32)
c = a @ b
times, cpus = [], []
t0 = time.perf_counter()
while len(times) < min_reps or (time.perf_counter() - t0 < min_s and len(times) < max_reps):
    t, p = time.perf_counter(), time.process_time()
    c = a @ b
    times.append(time.perf_counter() - t)
    cpus.append(time.process_time() - p)
times.sort()
print(json.dumps({"best": times[0], "median": times[len(times) // 2], "bestCpu": min(cpus), "reps": len(times), "numpy": np.__version__}))
`;

interface NumpyTiming extends Timing {
  numpy: string;
}

function numpyGemm(
  M: number,
  K: number,
  N: number,
  minReps: number,
  minSeconds: number,
  maxReps: number,
  env: NodeJS.ProcessEnv,
): NumpyTiming | string {
  const r = spawnSync(
    'python3',
    ['-c', NUMPY_GEMM, `${M}`, `${K}`, `${N}`, `${minReps}`, `${minSeconds}`, `${maxReps}`],
    { encoding: 'utf8', env },
  );
  if (r.error) return `python3 not runnable (${r.error.message})`;
  if (r.status !== 0) return `numpy peer failed: ${(r.stderr || '').trim().split('\n').pop() ?? 'no output'}`;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as NumpyTiming;
  } catch {
    return `numpy peer printed no timing`;
  }
}

/**
 * The environment with OpenBLAS's core-type and L2-size overrides removed, for this child alone:
 * OpenBLAS then picks its own kernels for this CPU (measured faster here than with them set).
 */
function blasDefaultEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

/** numpy's fp32 GEMM twice: with the environment as it is, and with OpenBLAS's overrides unset. */
interface NumpyPeer {
  asIs: NumpyTiming | string;
  best: NumpyTiming | string;
}

function numpyPeer(M: number, K: number, N: number, reps: [number, number, number]): NumpyPeer {
  return { asIs: numpyGemm(M, K, N, ...reps, process.env), best: numpyGemm(M, K, N, ...reps, blasDefaultEnv()) };
}

/** The machine's register-only peaks (native only), measured in this run; GFLOP/s or null. */
interface Peaks {
  fp32: number | null;
  bf16: number | null;
  amx: number | null;
}

const PEAK_UNITS = [
  {
    key: 'fp32',
    dtype: 'fp32',
    unit: 'fma',
    what: 'register-only loop of independent fp32 FMAs on every thread',
    missing: '',
  },
  {
    key: 'bf16',
    dtype: 'bf16',
    unit: 'vdpbf16ps',
    what: 'register-only loop of independent vdpbf16ps on every thread (4 flops per fp32 lane)',
    missing: 'no avx512_bf16 on this CPU',
  },
  {
    key: 'amx',
    dtype: 'bf16',
    unit: 'amx',
    what: 'tile-only loop of independent AMX TDPBF16PS on every thread (16·16·32·2 flops each)',
    missing: 'no AMX (or RED_AMX=0, or Linux refused the tile state)',
  },
] as const;

function measurePeaks(be: Backend, quick: boolean): Peaks {
  const native = be as Partial<NativeExtras>;
  const peaks: Peaks = { fp32: null, bf16: null, amx: null };
  for (const p of PEAK_UNITS) {
    const g = native.peak ? native.peak(p.key, quick ? 0.3 : 1) : null;
    peaks[p.key] = g;
    emit({
      bench: 'peak',
      dtype: p.dtype,
      unit: p.unit,
      gflops: g === null ? null : round(g),
      backend: be.name,
      isa: p.dtype === 'bf16' ? (native.bf16Isa ?? be.isa) : be.isa,
      threads: be.threads,
      load_avg_1m: loadAvg(),
      what: p.what,
      ...(g === null ? { note: native.peak ? p.missing : 'peak loops are native only' } : {}),
    });
  }
  return peaks;
}

/** One gemm figure in `dtype` beside numpy's fp32 and the peak; returns our best GFLOP/s. */
function benchGemm(
  be: Backend,
  M: number,
  K: number,
  N: number,
  quick: boolean,
  dtype: Precision,
  np: NumpyPeer,
  peaks: Peaks,
): Peak {
  const rng = new Rng(M * 31 + N);
  const upload = <D extends 'f32' | 'bf16'>(dtype: D, host: HostArrayOf[D]): Tensor<D> => {
    const t = be.alloc(dtype, host.length);
    be.upload(t, host);
    return t;
  };
  const afHost = uniform(rng, M * K),
    bfHost = uniform(rng, K * N);
  const af = upload('f32', afHost),
    bf = upload('f32', bfHost),
    out = be.alloc('f32', M * N);
  const a16 = upload('bf16', toBf16(afHost)),
    b16 = upload('bf16', toBf16(bfHost));
  const flops = 2 * M * K * N;
  const [minReps, minS, maxReps] = quick ? [3, 0.5, 10] : [5, 1.5, 30];
  const fn =
    dtype === 'bf16'
      ? () => be.matmulBf16(out, a16, b16, M, N, K, false, false, false)
      : () => be.matmul(out, af, bf, M, N, K, false, false, false);
  const ours = timeRuns(fn, minReps, minS, maxReps);
  const gflops = flops / ours.best / 1e9;
  // of_peak: against the peak of the unit this GEMM ran on (AMX when the bf16 kernels use it);
  // of_dp_peak: a bf16 GEMM against the vdpbf16ps loop as well.
  const isa = dtype === 'bf16' ? ((be as Partial<NativeExtras>).bf16Isa ?? be.isa) : be.isa;
  const unit = dtype === 'fp32' ? 'fma' : isa.includes('amx') ? 'amx' : 'vdpbf16ps';
  const peak = unit === 'fma' ? peaks.fp32 : unit === 'amx' ? peaks.amx : peaks.bf16;
  const row: Record<string, unknown> = {
    bench: 'gemm',
    dtype,
    m: M,
    k: K,
    n: N,
    gflops: round(gflops),
    median_gflops: round(flops / ours.median / 1e9),
    unit,
    of_peak: peak ? round(gflops / peak, 3) : null,
    peak_gflops: peak ? round(peak) : null,
    ...(dtype === 'bf16' ? { of_dp_peak: peaks.bf16 ? round(gflops / peaks.bf16, 3) : null } : {}),
  };
  // Per CPU-second (all threads): what each core achieved while it ran, robust to a busy machine.
  const cpuRow: Record<string, unknown> = { cpu_gflops: round(flops / ours.bestCpu / 1e9) };
  const notes: string[] = [];
  for (const [key, t] of [
    ['', np.asIs],
    ['_best', np.best],
  ] as const) {
    if (typeof t === 'string') {
      row[`numpy${key}_gflops`] = null;
      row[`ratio${key}`] = null;
      notes.push(`${t}; peer skipped`);
      continue;
    }
    const npG = flops / t.best / 1e9;
    row[`numpy${key}_gflops`] = round(npG);
    row[`numpy${key}_median_gflops`] = round(flops / t.median / 1e9);
    row[`ratio${key}`] = round(gflops / npG, 2);
    cpuRow[`numpy${key}_cpu_gflops`] = round(flops / t.bestCpu / 1e9);
    cpuRow[`cpu_ratio${key}`] = round(t.bestCpu / ours.bestCpu, 2);
  }
  if (notes.length) row.note = notes.join('; ');
  Object.assign(row, cpuRow, {
    backend: be.name,
    isa,
    threads: be.threads,
    reps: ours.reps,
    load_avg_1m: loadAvg(),
    numpy_def:
      'numpy float32 a @ b; numpy_*: environment as is; numpy_best_*: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for that child',
    timing: 'wall: best of reps after a warm-up (median beside it); cpu_*: flops per process CPU-second, best run',
  });
  emit(row);
  return { wall: gflops, cpu: flops / ours.bestCpu / 1e9 };
}

interface Peak {
  wall: number;
  cpu: number;
}

/** Packed sequences of unequal lengths (as an RL batch is) totalling `tokens`, every token after a sequence's first scored. */
export function packedBatch(tokens: number, vocab: number, seed: number): EngineBatch {
  const rng = new Rng(seed);
  const lengths: number[] = [];
  const pattern = [0.25, 0.22, 0.16, 0.12, 0.25];
  let left = tokens;
  for (let i = 0; left > 0; i++) {
    const len =
      i === pattern.length - 1 ? left : Math.min(left, Math.max(1, Math.round(tokens * pattern[i % pattern.length])));
    lengths.push(len);
    left -= len;
  }
  const cuSeqlens = new Int32Array(lengths.length + 1);
  lengths.forEach((l, b) => (cuSeqlens[b + 1] = cuSeqlens[b] + l));
  const ids = Int32Array.from({ length: tokens }, () => rng.int(vocab));
  return { ids, cuSeqlens, scoredFrom: new Int32Array(lengths.length).fill(1) };
}

export interface StepTiming {
  stepS: number;
  stepCpuS: number;
  forwardS: number;
  backwardS: number;
  optimizerS: number;
  steps: number;
  params: number;
  sequences: number;
  /** Mixed precision's backward mode (null in fp32). */
  bf16Backward: Bf16Backward | null;
}

/**
 * Times full training steps on the native engine through the contract: forward (scoring), then
 * forwardBackward of the mean token NLL (reusing that forward) and optimStep (gradient norm, AdamW).
 */
export async function timeTrainSteps(
  shape: Shape,
  tokens: number,
  be: Backend,
  steps: number,
  dtype: Precision = 'fp32',
  checkpointing = false,
  bf16Backward: Bf16Backward = DEFAULT_BF16_BACKWARD,
): Promise<StepTiming> {
  // bf16: mixed precision (fp32 master weights and optimiser)
  const engine = new NativeEngine(randomModel(configOf(shape), be), null, {
    precision: dtype,
    activationCheckpointing: checkpointing,
    bf16Backward,
  });
  await engine.createOptimizer('policy', { ...ADAMW_DEFAULTS, weightDecay: 0.01, noDecay: 'none' });
  const batch = packedBatch(tokens, engine.info.vocabSize, 1);
  const h = await engine.loadBatch(batch, { microBatchTokens: 0 });
  const coefLogprob = new Float32Array(h.scoredTokens).fill(-1 / h.scoredTokens); // d(mean NLL)/d logprob
  const coefEntropy = new Float32Array(h.scoredTokens);
  const runs: { f: number; b: number; o: number; cpu: number }[] = [];
  for (let s = 0; s <= steps; s++) {
    // step 0 warms up (allocations, page faults)
    const c0 = cpuSeconds();
    const t0 = now();
    await engine.forward(h, 'policy');
    const t1 = now();
    await engine.forwardBackward(h, coefLogprob, coefEntropy);
    const t2 = now();
    await engine.optimStep('policy', 1e-5, Infinity);
    const t3 = now();
    if (s > 0) runs.push({ f: t1 - t0, b: t2 - t1, o: t3 - t2, cpu: cpuSeconds() - c0 });
  }
  runs.sort((x, y) => x.f + x.b + x.o - (y.f + y.b + y.o));
  const med = runs[Math.floor(runs.length / 2)];
  return {
    stepS: med.f + med.b + med.o,
    stepCpuS: med.cpu,
    forwardS: med.f,
    backwardS: med.b,
    optimizerS: med.o,
    steps,
    params: engine.info.parameters,
    sequences: batch.cuSeqlens.length - 1,
    bf16Backward: dtype === 'bf16' ? bf16Backward : null,
  };
}

function trainStepRow(
  shape: Shape,
  tokens: number,
  be: Backend,
  t: StepTiming,
  peak: Peak,
  dtype: Precision = 'fp32',
): Record<string, unknown> {
  const flops = 6 * t.params * tokens;
  return {
    bench: 'train_step',
    dtype,
    ...(t.bf16Backward ? { backward: t.bf16Backward } : {}),
    model: shape.name,
    tokens,
    tokens_per_s: round(tokens / t.stepS),
    mfu: round(flops / t.stepS / (peak.wall * 1e9), 3),
    // The same per CPU-second (step CPU time against the GEMM's best flops per CPU-second).
    mfu_cpu: round(flops / t.stepCpuS / (peak.cpu * 1e9), 3),
    step_cpu_s: round(t.stepCpuS, 3),
    params: t.params,
    sequences: t.sequences,
    step_s: round(t.stepS, 3),
    forward_s: round(t.forwardS, 3),
    backward_s: round(t.backwardS, 3),
    optimizer_s: round(t.optimizerS, 3),
    steps_timed: t.steps,
    peak_gflops: round(peak.wall),
    peak_cpu_gflops: round(peak.cpu),
    mfu_def: '6·params·tokens/step_s ÷ best gemm GFLOP/s above (mfu_cpu: per CPU-second on both sides)',
    step_def:
      'the native engine through the training-engine contract: forward_s = forward (scoring), backward_s = forwardBackward (reusing that forward), optimizer_s = optimStep (gradient norm, AdamW, zeroing)',
    shape: `hidden ${shape.hidden}, ${shape.layers} layers, ${shape.heads}/${shape.kvHeads} heads, intermediate ${shape.intermediate}, vocab ${shape.vocab}, tied`,
    backend: be.name,
    isa: be.isa,
    threads: be.threads,
  };
}

/** What a child process measures: the 0.5B step in one setting. */
interface ChildSpec {
  pref: string;
  peak: Peak;
  steps: number;
  tokens: number;
  dtype: Precision;
  checkpointing: boolean;
}

/** The 0.5B step in a child process (its maxRSS is then the step's alone). */
function trainStep05bInChild(spec: ChildSpec): Record<string, unknown> {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--import', 'tsx', self], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(spec) },
  });
  const last = (r.stdout || '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !last.startsWith('{')) {
    return {
      bench: 'train_step',
      dtype: spec.dtype,
      model: SHAPE_05B.name,
      tokens: spec.tokens,
      error: `child process failed (status ${r.status}, signal ${r.signal}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`,
    };
  }
  return JSON.parse(last) as Record<string, unknown>;
}

async function childMain(json: string): Promise<void> {
  const spec = JSON.parse(json) as ChildSpec;
  const be = getBackend(spec.pref as 'auto' | 'native' | 'reference');
  const t = await timeTrainSteps(SHAPE_05B, spec.tokens, be, spec.steps, spec.dtype, spec.checkpointing);
  const maxRssMb = process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
  emit({
    ...trainStepRow(SHAPE_05B, spec.tokens, be, t, spec.peak, spec.dtype),
    activation_checkpointing: spec.checkpointing,
    max_rss_mb: round(maxRssMb),
    fits_24gib: maxRssMb < 24 * 1024,
    ...(spec.checkpointing ? { target: 'max_rss ≤ 16 GiB', target_met: maxRssMb <= 16 * 1024 } : {}),
    load_avg_1m: loadAvg(),
  });
}

export async function run(opts: BenchOptions): Promise<void> {
  const pref = opts.backend ?? 'auto';
  if (pref !== 'auto' && pref !== 'native' && pref !== 'reference')
    fail(`--backend must be native or reference, got "${pref}"`);
  const be = getBackend(pref);
  // GEMMs and the 20M step run in both precisions; --precision picks the 0.5B 512-token step's.
  const precision = parsePrecision(opts.precision, '--precision');
  // Peaks first, then each shape's numpy peer and our GEMM in both dtypes, all in this run, so the
  // ratios hold whatever the load of the shared machine (load_avg_1m on every row).
  const peaks = measurePeaks(be, opts.quick);
  const reps: [number, number, number] = opts.quick ? [3, 0.5, 10] : [5, 1.5, 30];
  const fp32: Peak[] = [],
    bf16: Peak[] = [];
  for (const [M, K, N] of [
    [1024, 1024, 1024],
    [4096, 896, 896],
  ]) {
    const np = numpyPeer(M, K, N, reps);
    fp32.push(benchGemm(be, M, K, N, opts.quick, 'fp32', np, peaks));
    bf16.push(benchGemm(be, M, K, N, opts.quick, 'bf16', np, peaks));
  }
  if (be.name === 'native') attentionRows(be, opts.quick, emit);
  else emit({ bench: 'attention', note: 'native backend only (the reference takes minutes at these lengths)' });
  const best = (g: Peak[]): Peak => ({
    wall: Math.max(...g.map((x) => x.wall)),
    cpu: Math.max(...g.map((x) => x.cpu)),
  });
  const peak = best(fp32);
  const steps = opts.quick ? 2 : 3;
  // The 20M step in fp32, then in mixed precision with each backward mode (MFU against the best
  // bf16 GEMM above); the 0.5B steps below run the default mode only.
  const step32 = await timeTrainSteps(SHAPE_20M, 2048, be, steps);
  emit(trainStepRow(SHAPE_20M, 2048, be, step32, peak));
  for (const mode of BF16_BACKWARDS) {
    const step16 = await timeTrainSteps(SHAPE_20M, 2048, be, steps, 'bf16', false, mode);
    emit({
      ...trainStepRow(SHAPE_20M, 2048, be, step16, best(bf16), 'bf16'),
      speedup_vs_fp32: round(step32.stepS / step16.stepS, 2),
      target: 'speedup_vs_fp32 ≥ 1.3',
      target_met: step32.stepS / step16.stepS >= 1.3,
      load_avg_1m: loadAvg(),
    });
  }
  if (opts.quick) return;
  emit(
    trainStep05bInChild({
      pref,
      peak: precision === 'bf16' ? best(bf16) : peak,
      steps: 2,
      tokens: 512,
      dtype: precision,
      checkpointing: false,
    }),
  );
  // 4096 packed tokens with activation checkpointing, in mixed precision: its peak memory.
  emit(trainStep05bInChild({ pref, peak: best(bf16), steps: 1, tokens: 4096, dtype: 'bf16', checkpointing: true }));
}

if (process.env[CHILD_ENV]) await childMain(process.env[CHILD_ENV]);
