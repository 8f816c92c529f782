// Test doubles for the trainer: a bigram policy (logits = W[current token], V×V parameters) whose
// forward/backward are a few lines of obviously-correct math, a seeded fake sampler and verifier.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TrainingExample } from '../../src/data/dataset.ts';
import type { PackedBatch } from '../../src/model/batch.ts';
import type { Tensor } from '../../src/engine/backend.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { AdamW, clipGradNorm } from '../../src/train/optimizer.ts';
import { readF32Tensors, writeF32Tensors, TRAINER_STATE_FILE } from '../../src/train/checkpoint.ts';
import {
  mixSeed,
  type RolloutRequest,
  type RolloutSample,
  type TrainerEnv,
  type TrainerModel,
} from '../../src/train/trainer.ts';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { createProgress } from '../../src/train/metrics.ts';
export { TRAINER_STATE_FILE };

export const V = 8;
export const EOS = 7;

/** Parameters and gradients are reference-backend tensors; the math runs on downloaded copies. */
export class BigramModel implements TrainerModel {
  readonly params: Tensor<'f32'>;
  readonly grads: Tensor<'f32'>;
  private last: PackedBatch | null = null;
  private w: Float32Array = new Float32Array(V * V); // the parameters as of the last forward
  forwards = 0;
  /** When set, forward returns NaN log-probs for steps where this returns true. */
  poison: (() => boolean) | null = null;
  constructor(seed = 1) {
    const host = new Float32Array(V * V);
    const rng = new Rng(seed);
    for (let i = 0; i < host.length; i++) host[i] = rng.normal() * 0.5;
    this.params = referenceBackend.alloc('f32', V * V);
    this.grads = referenceBackend.alloc('f32', V * V);
    this.writeWeights(host);
  }
  readParams(): Float32Array {
    return referenceBackend.download(this.params);
  }
  writeWeights(params: Float32Array): void {
    referenceBackend.upload(this.params, params);
  }
  readGrads(): Float32Array {
    return referenceBackend.download(this.grads);
  }
  private probs(row: number): Float64Array {
    const z = this.w.subarray(row * V, row * V + V);
    let mx = -Infinity;
    for (const x of z) mx = Math.max(mx, x);
    const p = new Float64Array(V);
    let s = 0;
    for (let v = 0; v < V; v++) s += p[v] = Math.exp(z[v] - mx);
    for (let v = 0; v < V; v++) p[v] /= s;
    return p;
  }
  forward(batch: PackedBatch): { logprob: Float32Array; entropy: Float32Array } {
    this.forwards++;
    this.last = batch;
    this.w = this.readParams();
    const T = batch.ids.length;
    const logprob = new Float32Array(T);
    const entropy = new Float32Array(T);
    const bad = this.poison?.() ?? false;
    for (let t = 0; t < T; t++) {
      if (batch.targets[t] < 0) continue;
      const p = this.probs(batch.ids[t]);
      logprob[t] = bad ? NaN : Math.log(p[batch.targets[t]]);
      let h = 0;
      for (const q of p) h -= q * Math.log(q);
      entropy[t] = h;
    }
    return { logprob, entropy };
  }
  backward(cl: Float32Array, ce: Float32Array): void {
    const b = this.last!;
    const grads = this.readGrads();
    for (let t = 0; t < b.ids.length; t++) {
      if (b.targets[t] < 0) continue;
      const p = this.probs(b.ids[t]);
      let h = 0;
      for (const q of p) h -= q * Math.log(q);
      const row = b.ids[t] * V;
      for (let v = 0; v < V; v++) {
        // d logp_y/dz_v = 1[v=y] − p_v ;  dH/dz_v = −p_v (log p_v + H)
        grads[row + v] += cl[t] * ((v === b.targets[t] ? 1 : 0) - p[v]) - ce[t] * p[v] * (Math.log(p[v]) + h);
      }
    }
    referenceBackend.upload(this.grads, grads);
  }
  zeroGrad(): void {
    referenceBackend.zero(this.grads);
  }
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeF32Tensors(path.join(dir, 'model.safetensors'), { w: this.readParams() });
  }
}

/** Examples whose problem is a token id p (prompt [p, p]) and answer (p+1) mod 7; trace [p+1, p+1]. */
export function examples(n: number): TrainingExample[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `ex:${i}`,
    problem: String(i % 7),
    answer: String((i + 1) % 7),
    trace: `t${i}`,
  }));
}

/**
 * A seeded sampler: each response is 1..maxTokens random tokens (EOS ends it early), a function of
 * (request.seed, prompt index, sample index) only. The text is the ids joined by spaces.
 */
export async function fakeGenerate(prompts: number[][], req: RolloutRequest): Promise<RolloutSample[][]> {
  return prompts.map((_, i) =>
    Array.from({ length: req.n }, (_, j) => {
      const rng = new Rng(mixSeed(req.seed, i, j));
      const ids: number[] = [];
      let finishReason: 'stop' | 'length' = 'length';
      while (ids.length < req.maxTokens) {
        const t = rng.int(V);
        ids.push(t);
        if (t === EOS) {
          finishReason = 'stop';
          break;
        }
      }
      return { ids, text: ids.join(' '), finishReason };
    }),
  );
}

/** Correct when the response contains the gold token. */
export async function fakeVerify(items: { gold: string; text: string }[]): Promise<number[]> {
  return items.map((x) => (x.text.split(' ').includes(x.gold) ? 1 : 0));
}

export function makeConfig(over: Record<string, unknown> = {}): TrainConfig {
  const raw: Record<string, unknown> = {
    method: 'red',
    seed: 7,
    model: { path: 'unused' },
    data: { train: 'fake.jsonl', epochs: 2 },
    rollout: { groupSize: 3, promptsPerStep: 2, maxTokens: 5 },
    optim: { lr: 0.05 },
    sft: { batchSize: 2, epochs: 1 },
    checkpoint: { every: 1, keep: 10 },
    log: { progress: 'none' },
    ...over,
  };
  return resolveTrainConfig(raw, 'test');
}

export function makeEnv(config: TrainConfig, n = 6, model = new BigramModel()): TrainerEnv & { model: BigramModel } {
  const layout = { specs: [{ name: 'w', shape: [V, V], offset: 0, size: V * V }], byName: new Map(), total: V * V };
  return {
    model,
    refModel: null,
    createOptimizer: () =>
      new AdamW(referenceBackend, model.params, model.grads, layout, {
        beta1: config.optim.beta1,
        beta2: config.optim.beta2,
        eps: config.optim.eps,
        weightDecay: config.optim.weightDecay,
      }),
    clipGradNorm: (maxNorm) => clipGradNorm(referenceBackend, model.grads, maxNorm),
    generate: fakeGenerate,
    verify: fakeVerify,
    promptIds: (e) => [Number(e.problem), Number(e.problem)],
    traceIds: (e) => [Number(e.answer), Number(e.answer)],
    decode: (ids) => ids.join(' '),
    eosId: EOS,
    examples: examples(n),
    loadWeights: (dir) => readF32Tensors(path.join(dir, 'model.safetensors')).w,
    skippedRows: 0,
  };
}

export const quiet = createProgress('none');
