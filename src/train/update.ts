// One optimiser step on a batch of members, through the training engine: the π_old/entropy
// forward (feeding RED (I)), the algorithm's loss over the whole batch, forwardBackward (the engine
// accumulates over its micro-batches), clipping and AdamW in optimStep, repeated
// optim.updatesPerBatch times; a NaN or Inf anywhere leaves no trace (stash/restore).
import {
  entropyRegulatorStep,
  memberEntropyMeans,
  type AlgorithmOptions,
  type EntropyRegulatorSettings,
  type EntropyRegulatorState,
  type LossContext,
  type LossResult,
  type TokenBatch,
} from '../rl/index.ts';
import type { TrainConfig } from './config.ts';
import type { BatchHandle, TokenScores, TrainingEngine } from './engine.ts';
import type { StepTimer } from './env.ts';
import type { Metrics } from './metrics.ts';
import { packMembers, type Member } from './pack.ts';

/** What an update reads of the run's settings (the trainer's from its config; pretraining its own). */
export interface UpdateSettings {
  /** optim.microBatchTokens: the most tokens one forward/backward holds (0: the whole batch). */
  microBatchTokens: number;
  /** optim.updatesPerBatch. */
  updatesPerBatch: number;
  /** optim.maxGradNorm: clip the global gradient norm to this (0: no clipping). */
  maxGradNorm: number;
  /** rollout.maxTokens: the response limit some objectives normalise by. */
  maxResponseTokens: number;
}

export function updateSettings(cfg: TrainConfig): UpdateSettings {
  const o = cfg.optim;
  return {
    microBatchTokens: o.microBatchTokens,
    updatesPerBatch: o.updatesPerBatch,
    maxGradNorm: o.maxGradNorm,
    maxResponseTokens: cfg.rollout.maxTokens,
  };
}

export interface UpdateRequest {
  members: Member[];
  lr: number;
  /** The engine's optimiser to step (the trainer's policy, or ReLIFT's own sft). */
  optimizer: string;
  /** The loss over the whole batch and its per-token gradients (an objective of src/rl). */
  loss: (batch: TokenBatch, ctx: LossContext) => LossResult;
  /** > 0: the frozen reference model's log-probs are computed for the KL term. */
  klCoef: number;
  /** RED (I): the step's main update feeds its pre-update entropies to the regulator's step (and
   *  reads w from it); null for ReLIFT's SFT step, which must not move the regulator (w = 1). */
  regulator: { state: EntropyRegulatorState; settings: EntropyRegulatorSettings } | null;
  /** Off-policy correction of online tokens against their sampler's logprobs (default none). */
  rolloutCorrection?: AlgorithmOptions['rolloutCorrection'];
}

export interface UpdateResult {
  /** False when the loss or gradient was not finite (nothing was applied). */
  ok: boolean;
  metrics: Metrics;
  /** Tokens the model ran over (prompts included). */
  tokens: number;
  /** Response tokens trained on (0 when nothing was applied). */
  responseTokens: number;
  regulatorNext: EntropyRegulatorState | null;
}

/**
 * Per response token: the truncated importance weight min(π_old/π_rollout, C) of online members
 * whose sampler reported logprobs (1 elsewhere), and how far the sampler's logprobs are from
 * π_old. TIS as in Yao et al. 2025 ("off-policy RL training" from sampler/trainer mismatch);
 * RED-SPEC's notation: π_θold from this trainer's forward, π_rollout the rollout engine's.
 */
export function rolloutImportanceWeights(
  members: readonly Member[],
  offsets: Int32Array,
  oldLogprobs: Float32Array,
  cap: number,
): { weights: Float64Array | null; metrics: Metrics } {
  const weights = new Float64Array(offsets[members.length]).fill(1);
  let n = 0,
    diff = 0,
    wsum = 0;
  members.forEach((m, i) => {
    const lp = m.rolloutLogprobs;
    if (m.isOffline || !lp || lp.length !== m.responseIds.length) return;
    for (let t = 0; t < lp.length; t++) {
      const k = offsets[i] + t;
      const d = oldLogprobs[k] - lp[t];
      weights[k] = Math.min(Math.exp(d), cap);
      diff += Math.abs(d);
      wsum += weights[k];
      n++;
    }
  });
  if (n === 0) return { weights: null, metrics: {} };
  return { weights, metrics: { 'rollout/logprob_diff': diff / n, 'rollout/is_weight_mean': wsum / n } };
}

/**
 * Loads the members as one engine batch, runs the update on it (updateOnBatch) and releases it.
 * The loss is always computed over the whole batch; the engine splits forward/backward into
 * micro-batches by the token budget and accumulates their gradients.
 */
export async function policyUpdate(
  engine: TrainingEngine,
  s: UpdateSettings,
  req: UpdateRequest,
  timer: StepTimer,
): Promise<UpdateResult> {
  const { batch, offsets } = packMembers(req.members);
  const handle = await engine.loadBatch(batch, { microBatchTokens: s.microBatchTokens });
  try {
    return await updateOnBatch(engine, s, req, handle, offsets, timer);
  } finally {
    await engine.releaseBatch(handle);
  }
}

/**
 * Forward (π_old and entropies; also the current policy while the batch has not been updated),
 * the loss's per-token gradients, forwardBackward and optimStep, repeated updatesPerBatch times.
 */
async function updateOnBatch(
  engine: TrainingEngine,
  s: UpdateSettings,
  req: UpdateRequest,
  handle: BatchHandle,
  offsets: Int32Array,
  timer: StepTimer,
): Promise<UpdateResult> {
  const { members } = req;
  // Pass 1: π_old and entropies of the pre-update policy (feeds RED I and the ratios).
  const old = await timer.time('logprob', () => engine.forward(handle, 'policy'));
  const refLogprobs =
    req.klCoef > 0 ? (await timer.time('logprob', () => engine.forward(handle, 'reference'))).logprob : undefined;
  const base: Omit<TokenBatch, 'logprobs'> = {
    offsets,
    groupOf: members.map((x) => x.group),
    isOffline: members.map((x) => x.isOffline),
    rewards: members.map((x) => x.reward),
    accuracies: members.map((x) => x.accuracy),
    oldLogprobs: old.logprob,
    refLogprobs,
  };
  const metrics: Metrics = {};
  const correction = req.rolloutCorrection ?? { mode: 'none', cap: 2 };
  const is = rolloutImportanceWeights(members, offsets, old.logprob, correction.cap);
  Object.assign(metrics, is.metrics);
  const tisWeights = correction.mode === 'tis' ? is.weights : null;
  const { w, regulatorNext } = offlineWeight(req.regulator, base, old, metrics);
  const ctx = { offlineWeight: w, maxResponseTokens: s.maxResponseTokens };
  // Several updates per batch: a NaN in a later one must undo the earlier ones too, so the step
  // leaves no trace. (One update needs no copy: nothing is applied before the check.)
  if (s.updatesPerBatch > 1) await engine.stash();
  let ok = true;
  for (let u = 0; u < s.updatesPerBatch && ok; u++) {
    // Current policy: equal to π_old before the first update; recomputed after it.
    const current = u === 0 ? old : await timer.time('logprob', () => engine.forward(handle, 'policy'));
    const loss = req.loss({ ...base, logprobs: current.logprob, entropies: current.entropy }, ctx);
    // TIS: each online token's policy gradient scaled by its truncated importance weight.
    if (tisWeights) for (let t = 0; t < handle.scoredTokens; t++) loss.dLogprobs[t] *= tisWeights[t];
    const gradNorm = await timer.time('update', () => applyLoss(engine, s, req, handle, loss));
    for (const [k, v] of Object.entries(loss.metrics)) metrics[k] = v;
    metrics['loss/total'] = loss.loss;
    metrics['grad/norm'] = gradNorm;
    // Nothing from a bad step reaches the parameters or the optimiser moments.
    ok = Number.isFinite(gradNorm);
    if (!ok && u > 0) await engine.restore();
  }
  if (req.regulator) {
    metrics['loss/policy'] ??= 0;
    metrics['loss/offline'] ??= 0;
    metrics['clip/frac'] ??= 0; // objectives without a clip clip nothing
  }
  const responseTokens = ok ? handle.scoredTokens : 0;
  return { ok, metrics, tokens: handle.totalTokens, responseTokens, regulatorNext: ok ? regulatorNext : null };
}

/**
 * The loss's per-token gradients through the model (forwardBackward; the engine reuses the
 * scoring forward where it can), then clipping and the AdamW step; returns the gradient norm
 * (NaN or Inf: the engine applied nothing).
 */
async function applyLoss(
  engine: TrainingEngine,
  s: UpdateSettings,
  req: UpdateRequest,
  handle: BatchHandle,
  loss: LossResult,
): Promise<number> {
  if (!Number.isFinite(loss.loss)) return NaN;
  const dLogprob = Float32Array.from(loss.dLogprobs);
  const dEntropy = loss.dEntropies ? Float32Array.from(loss.dEntropies) : new Float32Array(handle.scoredTokens);
  // A non-finite coefficient under a finite loss (a NaN sampler logprob through TIS, or one past
  // fp32's range) is a bad step like a NaN loss: skipped here, so every engine counts it alike (the
  // native one would apply nothing; the torch engine refuses such coefficients outright).
  if (!dLogprob.every(Number.isFinite) || !dEntropy.every(Number.isFinite)) return NaN;
  await engine.forwardBackward(handle, dLogprob, dEntropy);
  const step = await engine.optimStep(req.optimizer, req.lr, s.maxGradNorm > 0 ? s.maxGradNorm : Infinity);
  return step.gradNorm;
}

/**
 * RED (I)'s w for this step from the pre-update entropies, and the regulator state to commit if the
 * step succeeds; w = 1 without a regulator. The one writer of entropy/rl, entropy/sft and red/w.
 */
function offlineWeight(
  regulator: UpdateRequest['regulator'],
  base: Omit<TokenBatch, 'logprobs'>,
  old: TokenScores,
  metrics: Metrics,
): { w: number; regulatorNext: EntropyRegulatorState | null } {
  if (!regulator) return { w: 1, regulatorNext: null };
  const H = memberEntropyMeans({ ...base, logprobs: old.logprob, entropies: old.entropy });
  const reg = entropyRegulatorStep(regulator.state, H.rl, H.sft, regulator.settings);
  Object.assign(metrics, reg.metrics);
  return { w: reg.w, regulatorNext: reg.next };
}
