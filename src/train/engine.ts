// The training-engine contract: everything the trainer asks of the policy model's compute, and
// nothing more. The trainer, ReLIFT's SFT step, pretraining, weight sync and checkpoints reach the
// model only through it; no code above it touches parameter buffers. Two engines stand behind it:
// the native CPU engine in this process (engines/native.ts) and the PyTorch engine (DDP / FSDP2,
// any number of GPUs or CPU ranks) in Python processes (engines/torch.ts, python/red_engine/).
// The nearest published design is Tinker's training API (forward, forward_backward, optim_step,
// save_weights_for_sampler, save_state / load_state, sample). Every call is async.
import type { Bf16Backward } from '../engine/precision.ts';

/**
 * A packed batch as the trainer hands it over: sequences of token ids, none attending across its
 * boundaries, and in each the tokens whose log-probability is scored (the response).
 * Scored token j of sequence b is ids[cuSeqlens[b] + j], predicted at the position before it;
 * per-token arrays (forward's outputs, forwardBackward's coefficients) run over the scored tokens
 * of sequence 0, then of sequence 1, …: N = Σ_b (len_b − scoredFrom[b]) entries in all.
 */
export interface EngineBatch {
  /** (T) the token ids of every sequence, concatenated. */
  ids: Int32Array;
  /** (B+1) sequence b is ids[cuSeqlens[b] .. cuSeqlens[b+1]); strictly increasing from 0 to T. */
  cuSeqlens: Int32Array;
  /** (B) index within sequence b of its first scored token (its prompt length, ≥ 1). */
  scoredFrom: Int32Array;
}

/** A batch the engine has loaded (and split into micro-batches / ranks as it sees fit). */
export interface BatchHandle {
  readonly id: number;
  /** N: the length of every per-token array of this batch. */
  readonly scoredTokens: number;
  /** T: tokens the model runs over (prompts included). */
  readonly totalTokens: number;
}

export interface LoadBatchOptions {
  /**
   * > 0: the most tokens one forward/backward pass may hold (optim.microBatchTokens); a sequence
   * longer than the budget gets a pass of its own. 0: the whole batch (per rank) in one pass.
   */
  microBatchTokens: number;
}

/** Per scored token, under the model asked for. */
export interface TokenScores {
  /** (N) log π(token). */
  logprob: Float32Array;
  /** (N) entropy of the full next-token distribution at the position that predicts the token. */
  entropy: Float32Array;
}

/** AdamW's hyper-parameters (torch.optim.AdamW semantics: decoupled weight decay, bias correction). */
export interface AdamWSettings {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Which parameters are not decayed: none (torch's default), or norms and biases (the usual recipe). */
  noDecay: 'none' | 'norms-and-biases';
}

/** The one set of AdamW defaults, RED-SPEC's (β = (0.9, 0.95), weight decay 0): the config's `optim` defaults are these. */
export const ADAMW_DEFAULTS: Readonly<Omit<AdamWSettings, 'noDecay'>> = Object.freeze({
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0,
});

export interface OptimStepResult {
  /** Global L2 norm of the accumulated gradient, before clipping (NaN / Inf when not finite). */
  gradNorm: number;
  /** False when the norm was not finite: parameters and moments are unchanged. */
  applied: boolean;
}

/** Sampling on the engine (rollout.engine: engine); RolloutRequest's fields for one call. */
export interface EngineSampleParams {
  /** Samples per prompt. */
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  /** Sample j of prompt i draws from a stream that depends on (seeds[i], j) only. */
  seeds: number[];
  /** Token ids that end a sample (kept as its last id). */
  stopTokenIds: number[];
}

export interface EngineSample {
  /** Response ids (a final stop id included). */
  ids: number[];
  /** The log-prob of each id under the distribution it was drawn from. */
  logprobs: number[];
  finishReason: 'stop' | 'length';
}

/** saveState's files (the format is documented on TrainingEngine). */
export const MASTER_WEIGHTS_FILE = 'master.safetensors';
export const optimizerStateFile = (name: string): string => `optimizer-${name}.safetensors`;

export interface SaveStateOptions {
  /**
   * false: leave out master.safetensors, because the folder's model.safetensors already holds the
   * fp32 parameters (saveForSampler(dir, 'fp32') just wrote them) and loadState falls back to it.
   * Default true. An engine may write it anyway.
   */
  master?: boolean;
}

/** What the trainer may know of the model without touching its parameters. */
export interface EngineModelInfo {
  /** Parameters in all (tied embeddings counted once). */
  parameters: number;
  /** Every tensor under its Hugging Face name, in the checkpoint's order. */
  tensors: { name: string; shape: number[] }[];
  vocabSize: number;
  maxPositionEmbeddings: number;
}

/**
 * The engine. Gradients accumulate across forwardBackward calls until optimStep, which applies
 * (or, when not finite, refuses) them and clears them either way.
 *
 * Files it writes and reads (one format for every engine, so a run moves between them):
 * - saveForSampler(dir, dtype): a Hugging Face model folder (config.json, generation_config.json,
 *   model.safetensors in `dtype`, the tokenizer files of the model it was loaded from);
 * - saveState(dir): `master.safetensors` (every parameter in fp32 under its Hugging Face name) and,
 *   per optimiser NAME, `optimizer-NAME.safetensors` with fp32 tensors `<hf name>.exp_avg` and
 *   `<hf name>.exp_avg_sq` and the step count in the header's metadata (`{"step": "12"}`);
 * - loadState(dir): reads those back (master.safetensors, else the folder's model.safetensors),
 *   replacing the parameters and every optimiser whose file is there.
 */
export interface TrainingEngine {
  readonly kind: 'native' | 'torch';
  readonly info: EngineModelInfo;
  /** Loads a batch once; the handle is valid until released. */
  loadBatch(batch: EngineBatch, opts: LoadBatchOptions): Promise<BatchHandle>;
  releaseBatch(batch: BatchHandle): Promise<void>;
  /** log π and entropy per scored token, under the policy or the frozen reference model. */
  forward(batch: BatchHandle, model: 'policy' | 'reference'): Promise<TokenScores>;
  /** Accumulates d/dθ Σ_t (dLogprob_t·log π_t + dEntropy_t·H_t) over the batch's scored tokens. */
  forwardBackward(batch: BatchHandle, dLogprob: Float32Array, dEntropy: Float32Array): Promise<void>;
  /** Creates (or resets) the named AdamW over every parameter. */
  createOptimizer(name: string, settings: AdamWSettings): Promise<void>;
  /** Clips the accumulated gradient to maxGradNorm (∞: no clip) and takes one AdamW step of `name`. */
  optimStep(name: string, lr: number, maxGradNorm: number): Promise<OptimStepResult>;
  /** Keeps a copy of the parameters and every optimiser's moments inside the engine (no host copy). */
  stash(): Promise<void>;
  /** Puts the stashed copy back (the stash stays until the next stash). */
  restore(): Promise<void>;
  saveForSampler(dir: string, dtype: 'fp32' | 'bf16'): Promise<void>;
  saveState(dir: string, opts?: SaveStateOptions): Promise<void>;
  loadState(dir: string): Promise<void>;
  sample(prompts: number[][], params: EngineSampleParams): Promise<EngineSample[][]>;
  /** Ends the engine (its processes, when it has any). */
  close(): Promise<void>;
}

/** How a run's engine is made (the config's `engine` group plus the model folders it loads). */
export interface EngineSettings {
  kind: 'native' | 'torch';
  /** The policy's Hugging Face folder (a local path: Hub ids are resolved before). */
  modelPath: string;
  /** The frozen reference model's folder, when the KL term needs one (else none is loaded). */
  referencePath: string | null;
  /** fp32, or bf16 mixed precision (fp32 master weights, gradients and moments). */
  precision: 'fp32' | 'bf16';
  /** Recompute each layer in backward instead of keeping its activations. */
  activationCheckpointing: boolean;
  /** torch: GPUs per node (CPU ranks where there is no GPU); native: ignored. */
  devices: number;
  /** torch: the interpreter; null = the first `python3` on PATH that imports torch. */
  python: string | null;
  /** torch: DDP for models that fit one device, FSDP2 (`fully_shard`) for the rest. */
  strategy: 'ddp' | 'fsdp';
  /** native: the compute backend (the addon when built: auto); default auto. torch: ignored. */
  backend?: 'auto' | 'native' | 'reference';
  /** native, precision bf16: how backward feeds its bf16 GEMMs (src/engine/precision.ts); torch: ignored. */
  bf16Backward?: Bf16Backward;
  /** Told what the engine starts, chooses or skips (one line each). */
  log: (line: string) => void;
}

/**
 * Settings of an engine on one device in fp32, without a reference model (pretraining, benches,
 * tests); `over` changes any of them.
 */
export function oneDeviceSettings(
  kind: EngineSettings['kind'],
  modelPath: string,
  over: Partial<EngineSettings> = {},
): EngineSettings {
  return {
    kind,
    modelPath,
    referencePath: null,
    precision: 'fp32',
    activationCheckpointing: false,
    devices: 1,
    python: null,
    strategy: 'ddp',
    log: () => {},
    ...over,
  };
}
