// Test doubles for the trainer: a bigram policy (logits = W[current token], V×V parameters) behind
// the training-engine contract, whose forward/backward are a few lines of obviously-correct math
// (batches split by the engines' own micro.ts, state saved by their own state.ts), a seeded fake
// sampler and verifier.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { TrainingExample } from '../../src/data/dataset.ts';
import type { Tensor } from '../../src/engine/backend.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { TRAINER_STATE_FILE } from '../../src/train/checkpoint.ts';
import type {
  AdamWSettings,
  BatchHandle,
  EngineBatch,
  EngineModelInfo,
  OptimStepResult,
  SaveStateOptions,
  TokenScores,
  TrainingEngine,
} from '../../src/train/engine.ts';
import {
  checkEngineBatch,
  gatherTokens,
  scatterTokens,
  splitMicroBatches,
  type MicroBatch,
} from '../../src/train/engines/micro.ts';
import { readMasterState, readOptimizerState, writeState } from '../../src/train/engines/state.ts';
import { AdamW, clipGradNorm } from '../../src/train/optimizer.ts';
import { mixSeed, type RolloutRequest, type RolloutSample, type TrainerEnv } from '../../src/train/trainer.ts';
import { resolveTrainConfig, type TrainConfig } from '../../src/train/config.ts';
import { Rng } from '../../src/util/rng.ts';
import { createProgress } from '../../src/train/metrics.ts';
import type { PackedBatch } from '../../src/model/batch.ts';
export { TRAINER_STATE_FILE };

export const V = 8;
export const EOS = 7;

const LAYOUT = { specs: [{ name: 'w', shape: [V, V], offset: 0, size: V * V }], total: V * V };

/** Parameters, gradients and moments are reference-backend tensors; the math runs on downloaded copies. */
export class BigramEngine implements TrainingEngine {
  readonly kind = 'native';
  readonly info: EngineModelInfo = {
    parameters: V * V,
    tensors: [{ name: 'w', shape: [V, V] }],
    vocabSize: V,
    maxPositionEmbeddings: 64,
  };
  readonly params: Tensor<'f32'>;
  readonly grads: Tensor<'f32'>;
  readonly optimizers = new Map<string, AdamW>();
  private readonly batches = new Map<number, { handle: BatchHandle; micro: MicroBatch[] }>();
  private nextId = 1;
  private stashed: { params: Float32Array; opts: Map<string, ReturnType<AdamW['state']>> } | null = null;
  /** Per-micro-batch forwards (scoring; forwardBackward computes from the current parameters). */
  forwards = 0;
  /** Micro-batches of the last loaded batch. */
  lastMicroBatches = 0;
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
  private probs(w: Float32Array, row: number): Float64Array {
    const z = w.subarray(row * V, row * V + V);
    let mx = -Infinity;
    for (const x of z) mx = Math.max(mx, x);
    const p = new Float64Array(V);
    let s = 0;
    for (let v = 0; v < V; v++) s += p[v] = Math.exp(z[v] - mx);
    for (let v = 0; v < V; v++) p[v] /= s;
    return p;
  }
  async loadBatch(batch: EngineBatch, opts: { microBatchTokens: number }): Promise<BatchHandle> {
    const handle = { id: this.nextId++, scoredTokens: checkEngineBatch(batch), totalTokens: batch.ids.length };
    const micro = splitMicroBatches(batch, opts.microBatchTokens);
    this.lastMicroBatches = micro.length;
    this.batches.set(handle.id, { handle, micro });
    return handle;
  }
  async releaseBatch(h: BatchHandle): Promise<void> {
    this.batches.delete(h.id);
  }
  async forward(h: BatchHandle, model: 'policy' | 'reference'): Promise<TokenScores> {
    if (model === 'reference') throw new Error('BigramEngine: no reference model');
    const { micro } = this.batches.get(h.id)!;
    const w = this.readParams();
    const logprob = new Float32Array(h.scoredTokens);
    const entropy = new Float32Array(h.scoredTokens);
    for (const mb of micro) {
      this.forwards++;
      const bad = this.poison?.() ?? false;
      const b = mb.batch;
      const lp = new Float32Array(b.ids.length);
      const ent = new Float32Array(b.ids.length);
      for (let t = 0; t < b.ids.length; t++) {
        if (b.targets[t] < 0) continue;
        const p = this.probs(w, b.ids[t]);
        lp[t] = bad ? NaN : Math.log(p[b.targets[t]]);
        let hh = 0;
        for (const q of p) hh -= q * Math.log(q);
        ent[t] = hh;
      }
      gatherTokens(logprob, lp, mb);
      gatherTokens(entropy, ent, mb);
    }
    return { logprob, entropy };
  }
  async forwardBackward(h: BatchHandle, dLogprob: Float32Array, dEntropy: Float32Array): Promise<void> {
    const w = this.readParams();
    const grads = this.readGrads();
    for (const mb of this.batches.get(h.id)!.micro)
      this.backward(w, grads, mb.batch, scatterTokens(dLogprob, mb), scatterTokens(dEntropy, mb));
    referenceBackend.upload(this.grads, grads);
  }
  private backward(w: Float32Array, grads: Float32Array, b: PackedBatch, cl: Float32Array, ce: Float32Array): void {
    for (let t = 0; t < b.ids.length; t++) {
      if (b.targets[t] < 0) continue;
      const p = this.probs(w, b.ids[t]);
      let h = 0;
      for (const q of p) h -= q * Math.log(q);
      const row = b.ids[t] * V;
      for (let v = 0; v < V; v++) {
        // d logp_y/dz_v = 1[v=y] − p_v ;  dH/dz_v = −p_v (log p_v + H)
        grads[row + v] += cl[t] * ((v === b.targets[t] ? 1 : 0) - p[v]) - ce[t] * p[v] * (Math.log(p[v]) + h);
      }
    }
  }
  async createOptimizer(name: string, s: AdamWSettings): Promise<void> {
    this.optimizers.set(
      name,
      new AdamW(
        referenceBackend,
        this.params,
        this.grads,
        { ...LAYOUT, byName: new Map() },
        { ...s, noDecay: undefined },
      ),
    );
  }
  async optimStep(name: string, lr: number, maxGradNorm: number): Promise<OptimStepResult> {
    const gradNorm = clipGradNorm(referenceBackend, this.grads, maxGradNorm);
    const applied = Number.isFinite(gradNorm);
    if (applied) this.optimizers.get(name)!.update(lr);
    referenceBackend.zero(this.grads);
    return { gradNorm, applied };
  }
  async stash(): Promise<void> {
    this.stashed = { params: this.readParams(), opts: new Map([...this.optimizers].map(([n, o]) => [n, o.state()])) };
  }
  async restore(): Promise<void> {
    this.writeWeights(this.stashed!.params);
    for (const [n, s] of this.stashed!.opts) this.optimizers.get(n)!.load(s);
  }
  async saveForSampler(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'w', shape: [V, V], data: this.readParams() }]);
  }
  async saveState(dir: string, opts?: SaveStateOptions): Promise<void> {
    const optimizers = [...this.optimizers].map(([n, o]): [string, () => ReturnType<AdamW['state']>] => [
      n,
      () => o.state(),
    ]);
    writeState(dir, LAYOUT, () => this.readParams(), optimizers, opts);
  }
  async loadState(dir: string): Promise<void> {
    const master = readMasterState(dir, LAYOUT);
    if (master) this.writeWeights(master);
    else {
      const f = new SafetensorsFile(path.join(dir, 'model.safetensors'));
      this.writeWeights(f.readFloat('w'));
      f.close();
    }
    for (const [name, o] of this.optimizers) {
      const s = readOptimizerState(dir, name, LAYOUT);
      if (s) o.load(s);
    }
  }
  async sample(): Promise<never> {
    throw new Error('BigramEngine: rollouts come from fakeGenerate');
  }
  async close(): Promise<void> {}
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

export function makeEnv(
  config: TrainConfig,
  n = 6,
  engine = new BigramEngine(),
): TrainerEnv & { engine: BigramEngine } {
  void config; // the engine takes its optimiser settings from the trainer
  return {
    engine,
    generate: fakeGenerate,
    verify: fakeVerify,
    promptIds: (e) => [Number(e.problem), Number(e.problem)],
    traceIds: (e) => [Number(e.answer), Number(e.answer)],
    decode: (ids) => ids.join(' '),
    eosId: EOS,
    examples: examples(n),
    skippedRows: 0,
  };
}

export const quiet = createProgress('none');
