// Per-member scalars of a group: shaped rewards, GRPO advantages, the group's accuracy r̄,
// and the dynamic-sampling filter (which groups carry a learning signal). Pure array functions.
import type { Floats } from './batch.ts';

export const ADVANTAGE_EPS = 1e-6;

function groupCount(groupOf: ArrayLike<number>): number {
  let n = 0;
  for (let m = 0; m < groupOf.length; m++) n = Math.max(n, groupOf[m] + 1);
  return n;
}

/**
 * RED-SPEC "Advantage": Â_i = (R_i − mean(R_group)) / (std(R_group) + 1e-6), statistics over every
 * member of the group (offline included), unbiased (N−1) std; normalizeStd false: Â_i = R_i − mean.
 * A one-member group has std 0. Returns (M).
 */
export function groupAdvantages(rewards: Floats, groupOf: ArrayLike<number>, normalizeStd: boolean): Float64Array {
  const M = rewards.length;
  const G = groupCount(groupOf);
  const sum = new Float64Array(G);
  const n = new Float64Array(G);
  for (let m = 0; m < M; m++) {
    sum[groupOf[m]] += rewards[m];
    n[groupOf[m]]++;
  }
  const mean = sum.map((s, g) => s / n[g]);
  const sq = new Float64Array(G);
  for (let m = 0; m < M; m++) sq[groupOf[m]] += (rewards[m] - mean[groupOf[m]]) ** 2;
  const std = sq.map((s, g) => (n[g] > 1 ? Math.sqrt(s / (n[g] - 1)) : 0));
  const adv = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    const g = groupOf[m];
    adv[m] = normalizeStd ? (rewards[m] - mean[g]) / (std[g] + ADVANTAGE_EPS) : rewards[m] - mean[g];
  }
  return adv;
}

/**
 * RED-SPEC "π_offline" r̄ (Eq. 8's r_mean-group): per group, mean accuracy of all its G+1 members
 * with includeOffline (the default: the group the advantage averages over), of the G online ones
 * without (the ablation). A group with no member counted gets 0. Returns (nGroups).
 */
export function groupMeanAccuracy(
  accuracies: Floats,
  groupOf: ArrayLike<number>,
  isOffline: ArrayLike<boolean | number>,
  includeOffline: boolean,
): Float64Array {
  const G = groupCount(groupOf);
  const sum = new Float64Array(G);
  const n = new Float64Array(G);
  for (let m = 0; m < accuracies.length; m++) {
    if (isOffline[m] && !includeOffline) continue;
    sum[groupOf[m]] += accuracies[m];
    n[groupOf[m]]++;
  }
  return sum.map((s, g) => (n[g] ? s / n[g] : 0));
}

/** RED-SPEC "Defaults" (DAPO): (L_max − L_buf − L)/L_buf when L > L_max − L_buf, else 0. */
export function overlongPenalty(length: number, maxLength: number, bufferTokens: number): number {
  const start = maxLength - bufferTokens;
  return length > start ? (start - length) / bufferTokens : 0;
}

export interface RewardInputs {
  accuracies: Floats; // (M)
  lengths: ArrayLike<number>; // (M) response tokens
  isOffline: ArrayLike<boolean | number>; // (M)
  formatRewards?: Floats; // (M) from the verifier, if it scores format
}

/**
 * RED-SPEC "Notation": R_i = acc_i + formatReward_i + overlongPenalty_i. The overlong penalty
 * applies to online rollouts only (the teacher trace was cut by us, not generated too long).
 */
export function shapeRewards(
  r: RewardInputs,
  overlong: { enabled: boolean; bufferTokens: number },
  maxResponseTokens: number,
): Float64Array {
  const out = new Float64Array(r.accuracies.length);
  for (let m = 0; m < out.length; m++) {
    out[m] = r.accuracies[m] + (r.formatRewards?.[m] ?? 0);
    if (overlong.enabled && !r.isOffline[m])
      out[m] += overlongPenalty(r.lengths[m], maxResponseTokens, overlong.bufferTokens);
  }
  return out;
}

/** RED-SPEC "Group filtering": a group whose accuracies (all G+1) are all equal carries no signal. */
export function groupHasSignal(accuracies: Floats): boolean {
  for (let i = 1; i < accuracies.length; i++) if (accuracies[i] !== accuracies[0]) return true;
  return false;
}

/**
 * Which groups of a batch to keep (RED-SPEC "Group filtering"): `keep[g]` per group, and the
 * metric `groups/dropped_frac`. With `enabled` false every group is kept.
 */
export function filterGroups(
  accuracies: Floats,
  groupOf: ArrayLike<number>,
  enabled: boolean,
): { keep: boolean[]; metrics: { 'groups/dropped_frac': number } } {
  const G = groupCount(groupOf);
  const first = new Float64Array(G).fill(NaN);
  const keep = new Array<boolean>(G).fill(false);
  for (let m = 0; m < accuracies.length; m++) {
    const g = groupOf[m];
    if (Number.isNaN(first[g])) first[g] = accuracies[m];
    else if (accuracies[m] !== first[g]) keep[g] = true;
  }
  if (!enabled) keep.fill(true);
  const dropped = keep.filter((k) => !k).length;
  return { keep, metrics: { 'groups/dropped_frac': G ? dropped / G : 0 } };
}

/**
 * Whether the trainer should draw another batch of prompts: fewer kept groups than wanted and
 * fewer than maxFillAttempts draws made so far (RED-SPEC "Group filtering").
 */
export function needsAnotherDraw(
  keptGroups: number,
  wantedGroups: number,
  drawsMade: number,
  maxFillAttempts: number,
): boolean {
  return keptGroups < wantedGroups && drawsMade < maxFillAttempts;
}
