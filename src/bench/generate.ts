// `red bench generate`: rollout speed. Prefill tokens/s and decode tokens/s at batch 1, 16 and
// 64 through the KV-cache decoder, for a ~20M model and the Qwen2.5-0.5B shape (random
// weights), beside the machine's memory bandwidth measured in the same run, since a batch-1
// decode step cannot beat streaming every weight once (≈ weight bytes / bandwidth).
import { availableParallelism, loadavg } from 'node:os';
import type { Backend } from '../engine/backend.ts';
import { getBackend } from '../engine/index.ts';
import { KvDecoder } from '../model/decode.ts';
import { SHAPE_05B, SHAPE_20M, configOf, randomModel, type Shape } from './shapes.ts';
import { generate, newGenerateStats } from '../rollout/sampler.ts';
import { TokenChooser } from '../rollout/sampling.ts';
import type { BenchOptions } from './options.ts';
import { fail } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'generate', ...fields }));
}

const now = () => performance.now() / 1000;

/** GB/s of backend.sumSquares over a buffer much larger than the caches (median of a few). */
function memoryBandwidth(be: Backend, mb: number): number {
  const n = (mb * 1024 * 1024) / 4;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i += 1024) x[i] = 1; // touch every page before timing
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

async function benchShape(shape: Shape, run: ShapeRun, be: Backend, bandwidthGBs: number, quick: boolean): Promise<void> {
  const config = configOf(shape);
  const model = randomModel(config, be);
  const V = config.vocabSize;
  const params = model.layout.total;
  // A decode step reads every weight once; the tied embedding is read as the lm_head only.
  const weightBytes = params * 4;
  const streamS = weightBytes / (bandwidthGBs * 1e9);
  const base = { model: shape.name, params, backend: be.name, isa: be.isa, threads: be.threads };
  emit({ ...base, name: 'model', weight_mb: +(weightBytes / 1e6).toFixed(1), weight_stream_ms: +(streamS * 1e3).toFixed(3) });

  // Prefill: several prompts packed into one pass.
  const { promptLen, prefillPrompts, steps } = run;
  {
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
    emit({ ...base, name: 'prefill_tokens_per_s', value: +((prefillPrompts * promptLen) / s).toFixed(1), tokens: prefillPrompts * promptLen, prompts: prefillPrompts });
  }

  // Decode: B slots prefilled with 32-token prompts, then timed decode steps.
  const ctx = 32;
  const perToken: Record<number, number> = {};
  for (const B of [1, 16, 64]) {
    const dec = new KvDecoder(be, config, model.w, B, ctx + steps + 4);
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
    const step = times[Math.floor(times.length / 2)];
    perToken[B] = step / B;
    const row: Record<string, unknown> = { ...base, name: `decode_b${B}_tokens_per_s`, value: +(B / step).toFixed(1), batch: B, step_ms: +(step * 1e3).toFixed(3), context: ctx, steps: times.length };
    if (B === 1) {
      row.weight_stream_ms = +(streamS * 1e3).toFixed(3);
      row.step_over_stream = +(step / streamS).toFixed(2);
      row.target = 'step_ms ≤ 2 × weight_stream_ms';
      row.target_met = step <= 2 * streamS;
    } else {
      row.speedup_vs_b1 = +(perToken[1] / perToken[B]).toFixed(2);
      if (B === 64) { row.target = 'speedup_vs_b1 ≥ 10'; row.target_met = perToken[1] / perToken[B] >= 10; }
    }
    emit(row);
  }

  // Choosing a token: a full-vocabulary softmax in TypeScript, per sample per step.
  {
    const chooser = new TokenChooser(V);
    const rng = new Rng(4);
    const row = new Float32Array(V);
    for (let v = 0; v < V; v++) row[v] = rng.normal() * 3;
    for (const [label, policy] of [['t1', { temperature: 1, topP: 1, topK: 0 }], ['t1_top_p_0.95', { temperature: 1, topP: 0.95, topK: 0 }]] as const) {
      const reps = 20;
      // JIT warm-up to the steady state generate() runs in (thousands of calls): after only 5
      // calls the 20M figure read 0.96 ms in one run and 0.42 ms in the next.
      const warm0 = now();
      for (let i = 0; i < 200 && now() - warm0 < 0.3; i++) chooser.choose(row, 0, policy, rng);
      const t0 = now();
      for (let i = 0; i < reps; i++) chooser.choose(row, 0, policy, rng);
      emit({ ...base, name: `sample_ms_per_token_${label}`, value: +(((now() - t0) / reps) * 1e3).toFixed(3), vocab: V });
    }
  }

  // End to end through generate(): 16 prompts × 4 samples with continuous batching, so the
  // figure includes sampling and scheduling.
  if (run.endToEnd) {
    const stats = newGenerateStats();
    const maxTokens = quick ? 8 : 32;
    const t0 = now();
    const out = await generate(model, randomPrompts(16, ctx, V, 3), { n: 4, temperature: 1, maxTokens, seed: 0, eosIds: [], maxBatch: 64, stats });
    const s = now() - t0;
    const tokens = out.flat().reduce((a, x) => a + x.ids.length, 0);
    emit({
      ...base, name: 'generate_tokens_per_s', value: +(tokens / s).toFixed(1), samples: 64, max_tokens: maxTokens,
      decode_tokens_per_s: +(stats.decodeTokens / stats.decodeSeconds).toFixed(1),
      sampling_share: +(stats.sampleSeconds / stats.decodeSeconds).toFixed(3),
      prefill_s: +stats.prefillSeconds.toFixed(3),
    });
  }
}

export async function run(opts: BenchOptions): Promise<void> {
  const pref = opts.backend ?? 'auto';
  if (pref !== 'auto' && pref !== 'native' && pref !== 'reference') fail(`--backend must be native or reference, got "${pref}"`);
  const be = getBackend(pref);
  const bw = memoryBandwidth(be, opts.quick ? 128 : 512);
  // The machine's load beside it: the batch-64/batch-1 ratio needs a second free core (batch 64 is
  // compute bound, batch 1 bandwidth bound), so on a shared machine it moves with the load.
  emit({ name: 'memory_bandwidth_gb_per_s', value: +bw.toFixed(2), via: `${be.name} sumSquares`, backend: be.name, load_avg_1m: +loadavg()[0].toFixed(2), cpus: availableParallelism() });
  await benchShape(SHAPE_20M,
    { prefillPrompts: 8, promptLen: opts.quick ? 64 : 128, steps: opts.quick ? 8 : 16, endToEnd: true }, be, bw, opts.quick);
  if (!opts.quick) {
    await benchShape(SHAPE_05B,
      { prefillPrompts: 4, promptLen: 64, steps: 8, endToEnd: false }, be, bw, false);
  }
}
