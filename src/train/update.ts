// One optimiser step on a batch of members: the π_old/entropy forward (feeding RED (I)), the
// algorithm's loss over the whole batch, backward per micro-batch (gradients accumulate), clipping
// and AdamW, repeated optim.updatesPerBatch times; a NaN or Inf anywhere leaves no trace.
import type { PackedBatch } from '../model/batch.ts';
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
import type { StepTimer, TrainerEnv, TrainerOptimizer } from './env.ts';
import type { Metrics } from './metrics.ts';
import { gatherTokens, packMembers, scatterTokens, type Member, type PackedMembers } from './pack.ts';

export interface UpdateRequest {
  members: Member[];
  lr: number;
  optimizer: TrainerOptimizer;
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
 * Forward (π_old and entropies; also the current policy while the batch has not been updated),
 * the loss's per-token gradients, backward through the model, clipping and AdamW — repeated
 * optim.updatesPerBatch times. With a token budget the members are split into micro-batches
 * whose gradients accumulate; the loss is always computed over the whole batch.
 * Returns ok = false when the loss or gradient was not finite (nothing was applied).
 */
export async function policyUpdate(
  env: TrainerEnv,
  cfg: TrainConfig,
  req: UpdateRequest,
  timer: StepTimer,
): Promise<{
  ok: boolean;
  metrics: Metrics;
  tokens: number;
  responseTokens: number;
  regulatorNext: EntropyRegulatorState | null;
}> {
  const { members, lr, optimizer } = req;
  const packed = packMembers(members, cfg.optim.microBatchTokens);
  const T = packed.responseTokens;
  const single = packed.micro.length === 1;
  // Pass 1: π_old and entropies of the pre-update policy (feeds RED I and the ratios).
  const old = await scoreTokens(env.model, packed, timer);
  const refLogprobs =
    req.klCoef > 0 && env.refModel ? (await scoreTokens(env.refModel, packed, timer)).logprobs : undefined;
  const base: Omit<TokenBatch, 'logprobs'> = {
    offsets: packed.offsets,
    groupOf: members.map((x) => x.group),
    isOffline: members.map((x) => x.isOffline),
    rewards: members.map((x) => x.reward),
    accuracies: members.map((x) => x.accuracy),
    oldLogprobs: old.logprobs,
    refLogprobs,
  };
  const metrics: Metrics = {};
  const correction = req.rolloutCorrection ?? { mode: 'none', cap: 2 };
  const is = rolloutImportanceWeights(members, packed.offsets, old.logprobs, correction.cap);
  Object.assign(metrics, is.metrics);
  const tisWeights = correction.mode === 'tis' ? is.weights : null;
  const { w, regulatorNext } = offlineWeight(req.regulator, base, old, metrics);
  const ctx = { offlineWeight: w, maxResponseTokens: cfg.rollout.maxTokens };
  let ok = true;
  // Several updates per batch: a NaN in a later one must undo the earlier ones too, so the step
  // leaves no trace. (One update needs no copy: nothing is applied before the check.)
  const before = cfg.optim.updatesPerBatch > 1 ? { params: env.model.readParams(), opt: optimizer.state() } : null;
  for (let u = 0; u < cfg.optim.updatesPerBatch; u++) {
    // Current policy: equal to π_old before the first update; recomputed after it.
    const current = u === 0 ? old : await scoreTokens(env.model, packed, timer);
    const loss = req.loss({ ...base, logprobs: current.logprobs, entropies: current.entropies }, ctx);
    // TIS: each online token's policy gradient scaled by its truncated importance weight.
    if (tisWeights) for (let t = 0; t < T; t++) loss.dLogprobs[t] *= tisWeights[t];
    // With one micro-batch, the last forward (this update's scoring) left its activations for backward.
    const gradNorm = Number.isFinite(loss.loss) ? await backwardAndClip(env, cfg, packed, loss, single, timer) : NaN;
    for (const [k, v] of Object.entries(loss.metrics)) metrics[k] = v;
    metrics['loss/total'] = loss.loss;
    metrics['grad/norm'] = gradNorm;
    if (!Number.isFinite(gradNorm)) {
      // Nothing from a bad step reaches the parameters or the optimiser moments.
      env.model.zeroGrad();
      if (before && u > 0) {
        env.model.writeWeights(before.params);
        optimizer.load(before.opt);
      }
      ok = false;
      break;
    }
    await timer.time('update', () => optimizer.update(lr));
  }
  if (req.regulator) {
    metrics['loss/policy'] ??= 0;
    metrics['loss/offline'] ??= 0;
    metrics['clip/frac'] ??= 0; // objectives without a clip clip nothing
  }
  const responseTokens = ok ? T : 0;
  return { ok, metrics, tokens: packed.totalTokens, responseTokens, regulatorNext: ok ? regulatorNext : null };
}

/** Per response token of the packed batch: log-prob and entropy under `model` (a forward per micro-batch). */
async function scoreTokens(
  model: { forward(batch: PackedBatch): { logprob: Float32Array; entropy?: Float32Array } },
  packed: PackedMembers,
  timer: StepTimer,
): Promise<{ logprobs: Float32Array; entropies: Float32Array }> {
  const logprobs = new Float32Array(packed.responseTokens);
  const entropies = new Float32Array(packed.responseTokens);
  await timer.time('logprob', () => {
    for (const mb of packed.micro) {
      const out = model.forward(mb.batch);
      gatherTokens(logprobs, out.logprob, mb, packed.offsets);
      if (out.entropy) gatherTokens(entropies, out.entropy, mb, packed.offsets);
    }
  });
  return { logprobs, entropies };
}

/**
 * RED (I)'s w for this step from the pre-update entropies, and the regulator state to commit if the
 * step succeeds; w = 1 without a regulator. The one writer of entropy/rl, entropy/sft and red/w.
 */
function offlineWeight(
  regulator: UpdateRequest['regulator'],
  base: Omit<TokenBatch, 'logprobs'>,
  old: { logprobs: Float32Array; entropies: Float32Array },
  metrics: Metrics,
): { w: number; regulatorNext: EntropyRegulatorState | null } {
  if (!regulator) return { w: 1, regulatorNext: null };
  const H = memberEntropyMeans({ ...base, logprobs: old.logprobs, entropies: old.entropies });
  const reg = entropyRegulatorStep(regulator.state, H.rl, H.sft, regulator.settings);
  Object.assign(metrics, reg.metrics);
  return { w: reg.w, regulatorNext: reg.next };
}

/** Backward of the loss's per-token gradients over every micro-batch, then clipping; returns the gradient norm. */
async function backwardAndClip(
  env: TrainerEnv,
  cfg: TrainConfig,
  packed: PackedMembers,
  loss: LossResult,
  activationsFresh: boolean,
  timer: StepTimer,
): Promise<number> {
  let gradNorm = NaN;
  await timer.time('update', () => {
    env.model.zeroGrad();
    for (const mb of packed.micro) {
      if (!(activationsFresh && mb === packed.micro[0])) env.model.forward(mb.batch);
      env.model.backward(
        scatterTokens(loss.dLogprobs, mb, packed.offsets),
        scatterTokens(loss.dEntropies, mb, packed.offsets),
      );
    }
    gradNorm = env.clipGradNorm(cfg.optim.maxGradNorm > 0 ? cfg.optim.maxGradNorm : Infinity);
  });
  return gradNorm;
}
