// `red bench engine --engine torch`: the PyTorch engine's training step (loadBatch, forwardBackward
// of the mean token NLL, AdamW step) through its real wire, beside the native engine's step on the
// same shape and packed batch measured in the same run, with the wire's share of the torch step
// (round trips less the time rank 0 reports inside the engine). Shapes: the ~20M Qwen2 on 2048
// tokens and, without --quick, the Qwen2.5-0.5B shape on 512 tokens (random weights). First, the
// wire alone at the H200 reference batch (16,384 tokens) against that step's time.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { getBackend } from '../engine/index.ts';
import { parsePrecision, type Precision } from '../engine/precision.ts';
import { toBf16 } from '../engine/bf16.ts';
import { configToJson } from '../model/config.ts';
import { paramLayout } from '../model/params.ts';
import { writeSafetensors } from '../model/safetensors.ts';
import { ADAMW_DEFAULTS, oneDeviceSettings, type EngineBatch } from '../train/engine.ts';
import { packSequences } from '../model/batch.ts';
import { findTorchPython } from '../train/engines/torch-launch.ts';
import { TorchEngine } from '../train/engines/torch.ts';
import { makeTempDir } from '../util/exit.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { packedBatch, timeTrainSteps } from './engine.ts';
import type { BenchOptions } from './options.ts';
import { SHAPE_05B, SHAPE_20M, configOf, fillRandom, type Shape } from './shapes.ts';
import { loadAvg, now, round } from './timing.ts';

const emit = (fields: Record<string, unknown>): void => console.log(JSON.stringify(fields));

function cpuName(): string {
  const line = readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('model name'));
  return line?.split(':')[1]?.trim() ?? 'unknown CPU';
}

/**
 * A Hugging Face folder of random weights for `shape`, written tensor by tensor as bf16 (speed does
 * not depend on the values; bf16 halves the file the engine reads).
 */
function randomFolder(shape: Shape, dir: string): void {
  const config = configOf(shape);
  writeJsonAtomic(path.join(dir, 'config.json'), configToJson(config, 'bfloat16'));
  const state = { x: 0x9e3779b9 };
  const tensors = paramLayout(config).specs.map((spec) => {
    const data = new Float32Array(spec.size);
    fillRandom(spec.name, data, state);
    return { name: spec.name, shape: spec.shape, data: toBf16(data) };
  });
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

interface TorchStep {
  stepS: number;
  wireS: number;
  wireCpuS: number;
  engineS: number;
  world: number;
  device: string;
  threads: number | null;
}

/**
 * Medians of `steps` torch training steps after one warm-up, each figure on its own, and the wire's
 * part of them. `scoreFirst`: a forward of the policy first, as the trainer's π_old pass.
 */
async function timeTorchSteps(
  folder: string,
  batch: EngineBatch,
  steps: number,
  precision: Precision,
  scoreFirst = false,
): Promise<TorchStep> {
  const engine = await TorchEngine.create(oneDeviceSettings('torch', folder, { precision }));
  try {
    await engine.createOptimizer('bench', { ...ADAMW_DEFAULTS, weightDecay: 0.01, noDecay: 'none' });
    const runs: { s: number; wire: number; wireCpu: number; engine: number }[] = [];
    for (let s = 0; s <= steps; s++) {
      const before = engine.wireStats;
      const t0 = now();
      const handle = await engine.loadBatch(batch, { microBatchTokens: 0 });
      if (scoreFirst) await engine.forward(handle, 'policy');
      const coef = new Float32Array(handle.scoredTokens).fill(-1 / handle.scoredTokens); // d(mean NLL)/d log π
      await engine.forwardBackward(handle, coef, new Float32Array(handle.scoredTokens));
      await engine.optimStep('bench', 1e-5, Infinity);
      await engine.releaseBatch(handle);
      const t = now() - t0;
      const after = engine.wireStats;
      const engineS = after.engineS - before.engineS;
      const wireCpu = after.wireCpuS - before.wireCpuS;
      if (s > 0) runs.push({ s: t, wire: after.roundTripS - before.roundTripS - engineS, wireCpu, engine: engineS }); // step 0 warms up
    }
    const median = (key: keyof (typeof runs)[number]): number =>
      runs.map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
    const med = { s: median('s'), wire: median('wire'), wireCpu: median('wireCpu'), engine: median('engine') };
    const threads = (engine.info as { threads?: number }).threads ?? null;
    return {
      stepS: med.s,
      wireS: med.wire,
      wireCpuS: med.wireCpu,
      engineS: med.engine,
      world: engine.world,
      device: engine.device,
      threads,
    };
  } finally {
    await engine.close();
  }
}

/** A model too small to matter, so that the step is nearly all wire: one layer, hidden 64. */
const SHAPE_WIRE: Shape = {
  name: 'wire-probe',
  hidden: 64,
  layers: 1,
  heads: 4,
  kvHeads: 2,
  intermediate: 128,
  vocab: 512,
};
/** The H200 reference step of the issue: 8 × 2048 tokens of the 0.5B shape at 78.5k tokens/s. */
const H200_05B_STEP_S = 16384 / 78500;

/**
 * The wire's cost per training step at the reference's 16,384 tokens (64 sequences of 256 here:
 * the arrays are what cross, not the attention): loadBatch, forward, forwardBackward, optimStep,
 * releaseBatch, as wall and as CPU time, against the H200 reference step.
 */
async function wireRow(): Promise<void> {
  const folder = makeTempDir('red-bench-wire-');
  try {
    randomFolder(SHAPE_WIRE, folder.path);
    const seqs = Array.from({ length: 64 }, (_, b) => Array.from({ length: 256 }, (_, t) => (b * 7919 + t * 31) % 512));
    const packed = packSequences(seqs);
    const batch = { ids: packed.ids, cuSeqlens: packed.cuSeqlens, scoredFrom: new Int32Array(64).fill(1) };
    const t = await timeTorchSteps(folder.path, batch, 10, 'fp32', true);
    emit({
      bench: 'engine_wire',
      tokens: 16384,
      requests_per_step: 5,
      wire_ms: round(t.wireS * 1000, 2),
      wire_cpu_ms: round(t.wireCpuS * 1000, 2),
      of_h200_05b_step: round(t.wireS / H200_05B_STEP_S, 4),
      cpu_of_h200_05b_step: round(t.wireCpuS / H200_05B_STEP_S, 4),
      h200_05b_step_s: round(H200_05B_STEP_S, 3),
      target: 'the wire under 2% of a 0.5B step',
      cpu: cpuName(),
      load_avg_1m: loadAvg(),
      def: 'medians of 10 steps; wire_ms: round trips less the time inside the engine (a loaded machine adds its scheduling delays); wire_cpu_ms: CPU time of red and rank 0 on the wire; of_h200_05b_step: against 16,384 tokens at the H200 reference 78.5k tokens/s (issue 26)',
    });
  } finally {
    folder.remove();
  }
}

export async function run(opts: BenchOptions): Promise<void> {
  const precision = parsePrecision(opts.precision, '--precision');
  const python = findTorchPython();
  if (!python) {
    emit({
      bench: 'train_step_torch',
      note: 'skipped: no python3 imports torch (apt-get install -y python3-torch libopenblas0-pthread, or pip install torch)',
    });
    return;
  }
  const be = getBackend('auto');
  // Both engines on as many threads (torch's own default may differ from the native backend's).
  process.env.OMP_NUM_THREADS ??= String(be.threads);
  const cases: [Shape, number][] = opts.quick
    ? [[SHAPE_20M, 2048]]
    : [
        [SHAPE_20M, 2048],
        [SHAPE_05B, 512],
      ];
  await wireRow();
  for (const [shape, tokens] of cases) {
    const folder = makeTempDir('red-bench-torch-');
    randomFolder(shape, folder.path);
    const batch = packedBatch(tokens, shape.vocab, 1);
    const steps = opts.quick || shape === SHAPE_05B ? 2 : 3;
    // The torch engine first: its processes and memory are gone before the native model is built.
    const torch = await timeTorchSteps(folder.path, batch, steps, precision);
    folder.remove();
    const native = await timeTrainSteps(shape, tokens, be, steps, precision);
    emit({
      bench: 'train_step_torch',
      dtype: precision,
      model: shape.name,
      tokens,
      torch_tokens_per_s: round(tokens / torch.stepS),
      native_tokens_per_s: round(tokens / native.stepS),
      torch_vs_native: round(native.stepS / torch.stepS, 2),
      torch_step_s: round(torch.stepS, 3),
      native_step_s: round(native.stepS, 3),
      wire_share: round(torch.wireS / torch.stepS, 4),
      wire_ms: round(torch.wireS * 1000, 2),
      wire_cpu_ms: round(torch.wireCpuS * 1000, 2),
      torch_in_engine_s: round(torch.engineS, 3),
      torch_ranks: torch.world,
      torch_device: torch.device,
      torch_threads: torch.threads,
      native_threads: be.threads,
      python,
      cpu: cpuName(),
      steps_timed: steps,
      load_avg_1m: loadAvg(),
      step_def:
        'torch: loadBatch + forwardBackward(mean NLL) + AdamW optimStep + releaseBatch over the wire; native: zeroGrad + forward + backward + AdamW update in process; median after one warm-up',
      wire_def:
        "round trips (arrays written to shared memory, JSON on the socket, arrays read back) less the time rank 0 reports inside the engine; wire_cpu_ms: red's CPU time writing requests and reading replies plus rank 0's outside the engine (not inflated by a loaded machine's scheduling)",
    });
  }
}
