// The native engine: the training-engine contract (../engine.ts) in this process, over Qwen2Model
// (src/model/qwen2.ts), the AdamW and clipping of ../optimizer.ts and the sampler of
// src/rollout/sampler.ts, on the CPU backend. Parameters, gradients, moments and the rollback
// stash are backend tensors; nothing is copied to the host but the per-token arrays, and the
// state a checkpoint saves. Batches are split into micro-batches by the token budget (micro.ts).
import type { Backend } from '../../engine/backend.ts';
import { getBackend } from '../../engine/index.ts';
import type { Bf16Backward, Precision } from '../../engine/precision.ts';
import { checkFinite, readWeights } from '../../model/io.ts';
import type { F32 } from '../../model/params.ts';
import { Qwen2Model } from '../../model/qwen2.ts';
import { generate, releaseGenerationCache, type GenerationModel } from '../../rollout/sampler.ts';
import { fail } from '../../util/errors.ts';
import type {
  AdamWSettings,
  BatchHandle,
  EngineBatch,
  EngineModelInfo,
  EngineSample,
  EngineSampleParams,
  EngineSettings,
  LoadBatchOptions,
  OptimStepResult,
  SaveStateOptions,
  TokenScores,
  TrainingEngine,
} from '../engine.ts';
import { AdamW, clipGradNorm, noDecayNormsAndBiases } from '../optimizer.ts';
import { checkEngineBatch, gatherTokens, scatterTokens, splitMicroBatches, type MicroBatch } from './micro.ts';
import { readMasterState, readOptimizerState, writeState } from './state.ts';

/** How the policy computes (EngineSettings' native fields). */
export interface NativeComputeSettings {
  precision: Precision;
  activationCheckpointing: boolean;
  bf16Backward?: Bf16Backward;
}

interface LoadedBatch {
  handle: BatchHandle;
  micro: MicroBatch[];
}

/** The rollback copy of stash(): parameters and, per optimiser, its moments and step. */
interface Stash {
  params: F32;
  moments: Map<string, { m: F32; v: F32; step: number }>;
  /** The optimisers the last stash() copied. */
  names: Set<string>;
}

/** Loads the policy (and the reference, when asked) from their folders onto the chosen backend. */
export async function createNativeEngine(settings: EngineSettings): Promise<NativeEngine> {
  const backend = getBackend(settings.backend ?? 'auto');
  const policy = await Qwen2Model.load(settings.modelPath, { backend });
  const reference = settings.referencePath !== null ? await Qwen2Model.load(settings.referencePath, { backend }) : null;
  if (reference && reference.layout.total !== policy.layout.total)
    fail(
      `model.referencePath: ${settings.referencePath} is not the same architecture as model.path (${settings.modelPath})`,
    );
  return new NativeEngine(policy, reference, settings);
}

export class NativeEngine implements TrainingEngine {
  readonly kind = 'native';
  readonly info: EngineModelInfo;
  private readonly backend: Backend;
  private readonly optimizers = new Map<string, { opt: AdamW; settings: AdamWSettings }>();
  private readonly batches = new Map<number, LoadedBatch>();
  private nextBatchId = 1;
  /** Bumped whenever the parameters change (a step applied, restore, loadState). */
  private version = 0;
  /**
   * The policy's activations are those of this one-micro-batch batch at this parameter version:
   * forwardBackward then skips its forward. Null when they are of anything else.
   */
  private fresh: { batch: number; version: number } | null = null;
  private stashed: Stash | null = null;

  /** An engine over models already in memory (createNativeEngine loads them from folders; bench and pretrain build their own). */
  constructor(
    private readonly policy: Qwen2Model,
    private readonly reference: Qwen2Model | null,
    compute: NativeComputeSettings,
  ) {
    this.backend = policy.backend;
    for (const m of [policy, reference])
      m?.setComputePrecision(compute.precision, { bf16Backward: compute.bf16Backward });
    policy.setActivationCheckpointing(compute.activationCheckpointing);
    this.info = {
      parameters: policy.layout.total,
      tensors: policy.layout.specs.map((s) => ({ name: s.name, shape: [...s.shape] })),
      vocabSize: policy.config.vocabSize,
      maxPositionEmbeddings: policy.config.maxPositionEmbeddings,
    };
  }

  /** The policy as the in-process sampler takes it (rollout.engine local: the trained weights themselves). */
  get generationModel(): GenerationModel {
    return this.policy;
  }

  /** The compute backend's name (native or reference). */
  get backendName(): string {
    return this.backend.name;
  }

  async loadBatch(batch: EngineBatch, opts: LoadBatchOptions): Promise<BatchHandle> {
    const scoredTokens = checkEngineBatch(batch);
    const handle = { id: this.nextBatchId++, scoredTokens, totalTokens: batch.ids.length };
    this.batches.set(handle.id, { handle, micro: splitMicroBatches(batch, opts.microBatchTokens) });
    return handle;
  }

  async releaseBatch(batch: BatchHandle): Promise<void> {
    this.batches.delete(batch.id);
    if (this.fresh?.batch === batch.id) this.fresh = null;
  }

  async forward(batch: BatchHandle, model: 'policy' | 'reference'): Promise<TokenScores> {
    const b = this.loaded(batch);
    const m =
      model === 'policy'
        ? this.policy
        : (this.reference ?? fail('forward(reference): this engine loaded no reference model (referencePath)'));
    const logprob = new Float32Array(b.handle.scoredTokens);
    const entropy = new Float32Array(b.handle.scoredTokens);
    for (const mb of b.micro) {
      const out = m.forward(mb.batch);
      gatherTokens(logprob, out.logprob, mb);
      gatherTokens(entropy, out.entropy, mb);
    }
    if (model === 'policy') this.fresh = b.micro.length === 1 ? { batch: batch.id, version: this.version } : null;
    return { logprob, entropy };
  }

  async forwardBackward(batch: BatchHandle, dLogprob: Float32Array, dEntropy: Float32Array): Promise<void> {
    const b = this.loaded(batch);
    const N = b.handle.scoredTokens;
    if (dLogprob.length !== N || dEntropy.length !== N)
      fail(`forwardBackward: ${dLogprob.length} and ${dEntropy.length} coefficients for ${N} scored tokens`);
    // The policy forward that just scored this batch left its activations: no second forward.
    const reuse = this.fresh !== null && this.fresh.batch === batch.id && this.fresh.version === this.version;
    this.fresh = null; // backward consumes them (checkpointing recomputes into shared buffers)
    for (const mb of b.micro) {
      if (!reuse) this.policy.forward(mb.batch);
      this.policy.backward(scatterTokens(dLogprob, mb), scatterTokens(dEntropy, mb));
    }
  }

  async createOptimizer(name: string, settings: AdamWSettings): Promise<void> {
    const had = this.optimizers.get(name);
    if (had && JSON.stringify(had.settings) === JSON.stringify(settings)) return had.opt.reset();
    const p = this.policy;
    const opt = new AdamW(this.backend, p.params, p.grads, p.layout, {
      ...settings,
      noDecay: settings.noDecay === 'norms-and-biases' ? noDecayNormsAndBiases : undefined,
    });
    this.optimizers.set(name, { opt, settings: { ...settings } });
  }

  async optimStep(name: string, lr: number, maxGradNorm: number): Promise<OptimStepResult> {
    const o = this.optimizers.get(name) ?? fail(`optimStep: no optimizer "${name}" (createOptimizer first)`);
    const gradNorm = clipGradNorm(this.backend, this.policy.grads, maxGradNorm);
    const applied = Number.isFinite(gradNorm);
    if (applied) {
      o.opt.update(lr);
      this.version++;
    }
    this.policy.zeroGrad();
    return { gradNorm, applied };
  }

  async stash(): Promise<void> {
    const be = this.backend;
    const total = this.policy.layout.total;
    const s: Stash = (this.stashed ??= { params: be.alloc('f32', total), moments: new Map(), names: new Set() });
    be.copy(s.params, this.policy.params);
    s.names.clear();
    for (const [name, { opt }] of this.optimizers) {
      let c = s.moments.get(name);
      if (!c) s.moments.set(name, (c = { m: be.alloc('f32', total), v: be.alloc('f32', total), step: 0 }));
      be.copy(c.m, opt.m);
      be.copy(c.v, opt.v);
      c.step = opt.step;
      s.names.add(name);
    }
  }

  async restore(): Promise<void> {
    const s = this.stashed ?? fail('restore() without a stash()');
    this.backend.copy(this.policy.params, s.params);
    for (const name of s.names) {
      const o = this.optimizers.get(name)!.opt;
      const c = s.moments.get(name)!;
      this.backend.copy(o.m, c.m);
      this.backend.copy(o.v, c.v);
      o.step = c.step;
    }
    this.version++;
  }

  async saveForSampler(dir: string, dtype: 'fp32' | 'bf16'): Promise<void> {
    this.policy.save(dir, dtype);
  }

  async saveState(dir: string, opts: SaveStateOptions = {}): Promise<void> {
    const optimizers = [...this.optimizers].map(([name, { opt }]): [string, () => ReturnType<AdamW['state']>] => [
      name,
      () => opt.state(),
    ]);
    writeState(dir, this.policy.layout, () => this.policy.readParams(), optimizers, opts);
  }

  /**
   * The parameters from master.safetensors (else the folder's model weights), and each optimiser
   * created here whose file the folder holds; files of optimisers not created are left alone.
   */
  async loadState(dir: string): Promise<void> {
    const p = this.policy;
    const master = readMasterState(dir, p.layout);
    if (master) checkFinite(dir, master, p.layout);
    p.writeWeights(master ?? readWeights(dir, p.layout, p.config)); // (readWeights checks its own)
    for (const [name, { opt }] of this.optimizers) {
      const state = readOptimizerState(dir, name, p.layout);
      if (state) opt.load(state);
    }
    this.version++;
    this.fresh = null;
  }

  async sample(prompts: number[][], params: EngineSampleParams): Promise<EngineSample[][]> {
    const rows = await generate(this.policy, prompts, {
      n: params.n,
      temperature: params.temperature,
      topP: params.topP,
      topK: params.topK,
      maxTokens: params.maxTokens,
      promptSeeds: params.seeds,
      eosIds: params.stopTokenIds,
    });
    return rows.map((row) => row.map((s) => ({ ids: s.ids, logprobs: s.logprobs, finishReason: s.finishReason })));
  }

  async close(): Promise<void> {
    this.batches.clear();
    releaseGenerationCache(this.policy);
  }

  private loaded(batch: BatchHandle): LoadedBatch {
    return this.batches.get(batch.id) ?? fail(`batch ${batch.id} is not loaded (released, or of another engine)`);
  }
}
