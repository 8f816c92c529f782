// `red bench generate`: rollout speed. Prefill tokens/s and decode tokens/s at batch 1, 16 and
// 64 through the KV-cache decoder, for a ~20M model and the Qwen2.5-0.5B shape (random
// weights), beside the machine's memory bandwidth measured in the same run, since a batch-1
// decode step cannot beat streaming every weight once (≈ weight bytes / bandwidth).
// --precision bf16 runs the models with bf16 weights (half the bytes to stream) and times the
// fp32 batch-1 step beside it in the same run. Every row names its dtype.
import { availableParallelism, loadavg } from 'node:os';
import type { Backend } from '../engine/backend.ts';
import { getBackend } from '../engine/index.ts';
import { KvDecoder } from '../model/decode.ts';
import type { ModelConfig } from '../model/config.ts';
import type { ModelViews, Weight } from '../model/params.ts';
import type { Qwen2Model } from '../model/qwen2.ts';
import { parsePrecision, type Precision } from '../engine/precision.ts';
import { SHAPE_05B, SHAPE_20M, configOf, randomModel, type Shape } from './shapes.ts';
import { generate, newGenerateStats } from '../rollout/sampler.ts';
import { TokenChooser } from '../rollout/sampling.ts';
import type { BenchOptions } from './options.ts';
import { fail } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';

let rowDtype: Precision = 'fp32';

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'generate', dtype: rowDtype, ...fields }));
}

const now = () => performance.now() / 1000;

/** GB/s of backend.sumSquares over a buffer much larger than the caches (median of a few). */
function memoryBandwidth(be: Backend, mb: number): number {
  const n = (mb * 1024 * 1024) / 4;
  const x = be.alloc('f32', n);
  be.upload(x, new Float32Array(n).fill(1)); // touch every page before timing
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = now();
    be.sumSquares(x, n);
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  return (n * 4) / times[2] / 1e9;
}

function randomPrompts(count: number, len: number, V: number, seed: number): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => Array.from({ length: len }, () => rng.int(V)));
}

interface ShapeRun {
  /** Prefill: this many prompts of promptLen tokens packed into one pass. */
  prefillPrompts: number;
  promptLen: number;
  /** Decode steps timed per batch size (fewer when a step is slow). */
  steps: number;
  /** Run the end-to-end generate() figure (64 samples through continuous batching). */
  endToEnd: boolean;
}

const DECODE_CTX = 32;

/** Median seconds of a decode step at batch B: B slots holding one 32-token prompt, `steps` steps timed. */
function decodeStepSeconds(
  be: Backend,
  config: ModelConfig,
  w: ModelViews<Weight>,
  B: number,
  steps: number,
  quick: boolean,
): { step: number; timed: number } {
  const ctx = DECODE_CTX,
    V = config.vocabSize;
  const dec = new KvDecoder(be, config, w, B, ctx + steps + 4);
  // One prompt prefilled and copied to every slot (as samples of one prompt share it): the
  // attention cost per step is the same as for B different prompts of that length.
  dec.prefill(Int32Array.from(randomPrompts(1, ctx, V, 2)[0]), Int32Array.from([0, ctx]), Int32Array.from([0]), 1);
  for (let b = 1; b < B; b++) dec.cache.copySlot(0, b, ctx);
  const slots = Int32Array.from({ length: B }, (_, i) => i);
  const ids = new Int32Array(B).fill(7);
  const positions = new Int32Array(B).fill(ctx);
  dec.step(ids, slots, positions, B); // warm-up
  const times: number[] = [];
  for (let s = 1; s <= steps; s++) {
    positions.fill(ctx + s);
    const t0 = now();
    dec.step(ids, slots, positions, B);
    times.push(now() - t0);
    if (s >= 3 && times.reduce((a, b) => a + b, 0) > (quick ? 2 : 6)) break; // slow backend: enough
  }
  times.sort((a, b) => a - b);
  return { step: times[Math.floor(times.length / 2)], timed: times.length };
}

async function benchShape(
  shape: Shape,
  run: ShapeRun,
  be: Backend,
  bandwidthGBs: number,
  quick: boolean,
  dtype: Precision,
): Promise<void> {
  const config = configOf(shape);
  let model: Qwen2Model = randomModel(config, be);
  let fp32Model: Qwen2Model | null = null;
  if (dtype === 'bf16') {
    fp32Model = model;
    model = model.toBf16();
  }
  const params = model.layout.total;
  // A decode step reads every weight once; the tied embedding is read as the lm_head only.
  const weightBytes = params * (dtype === 'bf16' ? 2 : 4);
  const streamS = weightBytes / (bandwidthGBs * 1e9);
  const base = { model: shape.name, params, backend: be.name, isa: be.isa, threads: be.threads };
  emit({
    ...base,
    name: 'model',
    weight_mb: +(weightBytes / 1e6).toFixed(1),
    weight_stream_ms: +(streamS * 1e3).toFixed(3),
  });
  const b: ShapeBench = { run, be, config, model, fp32Model, streamS, quick, dtype, base };
  benchPrefill(b);
  benchDecode(b);
  benchTokenChoice(b);
  if (run.endToEnd) await benchEndToEnd(b);
}

/** What every row of one shape's benchmark shares. */
interface ShapeBench {
  run: ShapeRun;
  be: Backend;
  config: ModelConfig;
  model: Qwen2Model;
  /** The fp32 model a bf16 one was rounded from (its batch-1 step is timed beside it); null in fp32. */
  fp32Model: Qwen2Model | null;
  /** Seconds to stream the weights once at the measured bandwidth. */
  streamS: number;
  quick: boolean;
  dtype: Precision;
  base: Record<string, unknown>;
}

/** Prefill: several prompts packed into one pass. */
function benchPrefill({ run, be, config, model, base }: ShapeBench): void {
  const V = config.vocabSize;
  const { promptLen, prefillPrompts } = run;
  const dec = new KvDecoder(be, config, model.w, prefillPrompts, promptLen);
  const prompts = randomPrompts(prefillPrompts, promptLen, V, 1);
  const ids = Int32Array.from(prompts.flat());
  const cu = Int32Array.from({ length: prefillPrompts + 1 }, (_, i) => i * promptLen);
  const slots = Int32Array.from({ length: prefillPrompts }, (_, i) => i);
  dec.prefill(ids.subarray(0, promptLen), cu.subarray(0, 2), slots, 1); // warm-up
  let reps = 0;
  const t0 = now();
  do {
    dec.prefill(ids, cu, slots, prefillPrompts);
    reps++;
  } while (now() - t0 < 1 && reps < 5);
  const s = (now() - t0) / reps;
  emit({
    ...base,
    name: 'prefill_tokens_per_s',
    value: +((prefillPrompts * promptLen) / s).toFixed(1),
    tokens: prefillPrompts * promptLen,
    prompts: prefillPrompts,
  });
}

/** Decode: B slots prefilled with 32-token prompts, then timed steps; in bf16 the fp32 batch-1 step is timed first, for the speedup. */
function benchDecode({ run, be, config, model, fp32Model, streamS, quick, dtype, base }: ShapeBench): void {
  const { steps } = run;
  const fp32B1 = fp32Model ? decodeStepSeconds(be, config, fp32Model.w, 1, steps, quick) : null;
  const perToken: Record<number, number> = {};
  for (const B of [1, 16, 64]) {
    const { step, timed } = decodeStepSeconds(be, config, model.w, B, steps, quick);
    perToken[B] = step / B;
    const row: Record<string, unknown> = {
      ...base,
      name: `decode_b${B}_tokens_per_s`,
      value: +(B / step).toFixed(1),
      batch: B,
      step_ms: +(step * 1e3).toFixed(3),
      context: DECODE_CTX,
      steps: timed,
    };
    if (B === 1) {
      const bound = dtype === 'bf16' ? 1.3 : 2;
      row.weight_stream_ms = +(streamS * 1e3).toFixed(3);
      row.step_over_stream = +(step / streamS).toFixed(2);
      if (fp32B1) {
        row.fp32_step_ms = +(fp32B1.step * 1e3).toFixed(3);
        row.speedup_vs_fp32 = +(fp32B1.step / step).toFixed(2);
      }
      row.target = `step_ms ≤ ${bound} × weight_stream_ms${fp32B1 ? ' and speedup_vs_fp32 ≥ 1.7' : ''}`;
      row.target_met = step <= bound * streamS && (!fp32B1 || fp32B1.step / step >= 1.7);
    } else {
      row.speedup_vs_b1 = +(perToken[1] / perToken[B]).toFixed(2);
      if (B === 64) {
        row.target = 'speedup_vs_b1 ≥ 10';
        row.target_met = perToken[1] / perToken[B] >= 10;
      }
    }
    emit(row);
  }
}

/** Choosing a token: temperature (and top-p) over the full vocabulary, per sample per step. */
function benchTokenChoice({ be, config, base }: ShapeBench): void {
  const V = config.vocabSize;
  const chooser = new TokenChooser(V, be);
  const rng = new Rng(4);
  const host = new Float32Array(V);
  for (let v = 0; v < V; v++) host[v] = rng.normal() * 3;
  const row = be.alloc('f32', V);
  be.upload(row, host);
  for (const [label, policy] of [
    ['t1', { temperature: 1, topP: 1, topK: 0 }],
    ['t1_top_p_0.95', { temperature: 1, topP: 0.95, topK: 0 }],
  ] as const) {
    const reps = 20;
    // JIT warm-up to the steady state generate() runs in (thousands of calls): after only 5
    // calls the 20M figure read 0.96 ms in one run and 0.42 ms in the next.
    const warm0 = now();
    for (let i = 0; i < 200 && now() - warm0 < 0.3; i++) chooser.choose(row, 0, policy, rng);
    const t0 = now();
    for (let i = 0; i < reps; i++) chooser.choose(row, 0, policy, rng);
    emit({
      ...base,
      name: `sample_ms_per_token_${label}`,
      value: +(((now() - t0) / reps) * 1e3).toFixed(3),
      vocab: V,
    });
  }
}

/** End to end through generate(): 16 prompts × 4 samples with continuous batching, sampling and scheduling included. */
async function benchEndToEnd({ config, model, quick, base }: ShapeBench): Promise<void> {
  const V = config.vocabSize;
  const stats = newGenerateStats();
  const maxTokens = quick ? 8 : 32;
  const t0 = now();
  const out = await generate(model, randomPrompts(16, DECODE_CTX, V, 3), {
    n: 4,
    temperature: 1,
    maxTokens,
    seed: 0,
    eosIds: [],
    maxBatch: 64,
    stats,
  });
  const s = now() - t0;
  const tokens = out.flat().reduce((a, x) => a + x.ids.length, 0);
  emit({
    ...base,
    name: 'generate_tokens_per_s',
    value: +(tokens / s).toFixed(1),
    samples: 64,
    max_tokens: maxTokens,
    decode_tokens_per_s: +(stats.decodeTokens / stats.decodeSeconds).toFixed(1),
    sampling_share: +(stats.sampleSeconds / stats.decodeSeconds).toFixed(3),
    prefill_s: +stats.prefillSeconds.toFixed(3),
  });
}

export async function run(opts: BenchOptions): Promise<void> {
  const pref = opts.backend ?? 'auto';
  if (pref !== 'auto' && pref !== 'native' && pref !== 'reference')
    fail(`--backend must be native or reference, got "${pref}"`);
  const be = getBackend(pref);
  const dtype = parsePrecision(opts.precision, '--precision');
  rowDtype = dtype;
  const bw = memoryBandwidth(be, opts.quick ? 128 : 512);
  // The machine's load beside it: the batch-64/batch-1 ratio needs a second free core (batch 64 is
  // compute bound, batch 1 bandwidth bound), so on a shared machine it moves with the load.
  emit({
    name: 'memory_bandwidth_gb_per_s',
    value: +bw.toFixed(2),
    via: `${be.name} sumSquares`,
    backend: be.name,
    load_avg_1m: +loadavg()[0].toFixed(2),
    cpus: availableParallelism(),
  });
  await benchShape(
    SHAPE_20M,
    { prefillPrompts: 8, promptLen: opts.quick ? 64 : 128, steps: opts.quick ? 8 : 16, endToEnd: true },
    be,
    bw,
    opts.quick,
    dtype,
  );
  if (!opts.quick) {
    await benchShape(SHAPE_05B, { prefillPrompts: 4, promptLen: 64, steps: 8, endToEnd: false }, be, bw, false, dtype);
  }
}
