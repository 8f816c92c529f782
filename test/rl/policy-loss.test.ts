import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aggregations } from '../../src/rl/aggregate.ts';
import { batchLayout, type TokenBatch } from '../../src/rl/batch.ts';
import {
  AGGREGATION_NAMES,
  PI_OFFLINE_NAMES,
  parseAlgorithmOptions,
  resolvePreset,
  type AlgorithmOverrides,
} from '../../src/rl/options.ts';
import { objectives } from '../../src/rl/objectives.ts';
import { klEstimators, offlineRatios, policyLoss } from '../../src/rl/policy-loss.ts';
import { assertAllClose, assertClose, checkGradients, randomBatch } from './helpers.ts';

const opts = (o: AlgorithmOverrides = {}) => parseAlgorithmOptions(o);
const ctx = { offlineWeight: 1, maxResponseTokens: 16 };

// One group, G = 2 online + 1 offline (placed FIRST: position must not matter).
//   offline: acc 1, π = [0.5, 0.1]        online0: acc 1, π = [0.5, 0.25]     online1: acc 0, π = [0.8]
// R = [1, 1, 0], mean 2/3, dev [1/3, 1/3, −2/3], Σ dev² = 2/3, unbiased var 1/3, s = √(1/3) + 1e-6,
// a = (1/3)/s: Â_off = Â_0 = a, Â_1 = −2a. κ (seq-mean-token-mean, 3 members, 1 group): 1/(3·|o_i|).
const L = Math.log;
const hand: TokenBatch = {
  offsets: [0, 2, 4, 5],
  groupOf: [0, 0, 0],
  isOffline: [true, false, false],
  rewards: [1, 1, 0],
  accuracies: [1, 1, 0],
  logprobs: [L(0.5), L(0.1), L(0.5), L(0.25), L(0.8)],
};
const a = 1 / 3 / (Math.sqrt(1 / 3) + 1e-6);

test('policy loss by hand: MixPolicy (π_offline = one, w = 1), ρ_online = 1', () => {
  // loss = −[ (1/6)(Â_0 + Â_0)·1 + (1/3)·Â_1·1 + (1/6)·Â_off·(0.5 + 0.1) ] = −[a/3 − 2a/3 + 0.1a] = a·(1/3 − 0.1)
  const r = policyLoss(hand, opts({ offlineMember: true, piOffline: 'one' }), ctx);
  assertClose(r.loss, a * (1 / 3 - 0.1), 1e-12, 'loss');
  // d/dlog π: offline −κ·Â·π = −(a/6)·[0.5, 0.1]; online0 −κ·ρ·Â = −a/6; online1 −(1/3)(−2a) = 2a/3.
  assertAllClose(r.dLogprobs, [-(a / 6) * 0.5, -(a / 6) * 0.1, -a / 6, -a / 6, (2 * a) / 3]);
  assertClose(r.metrics['loss/offline'], -(a / 6) * 0.6);
  assertClose(r.metrics['loss/policy'], -(a / 3 - (2 * a) / 3));
  assert.equal(r.metrics['clip/frac'], 0);
  assert.ok(!('red/w' in r.metrics), 'red/w has one writer: the entropy regulator');
  assert.equal(r.dEntropies, null);
});

test('policy loss by hand: RED II (π_offline = accuracy), r̄ over the G online members (ablation) = 1/2, w = 3', () => {
  // π_offline = π + (1−π)·r̄: 0.5 + 0.5·0.5 = 0.75 and 0.1 + 0.9·0.5 = 0.55; ρ = 0.5/0.75 = 2/3, 0.1/0.55 = 2/11.
  // offline loss = −w·(1/6)·a·(2/3 + 2/11); gradient −w·(1/6)·a·ρ per token.
  const r = policyLoss(hand, opts({ offlineMember: true, piOffline: 'accuracy', accuracyIncludesOffline: false }), {
    ...ctx,
    offlineWeight: 3,
  });
  assertClose(r.metrics['loss/offline'], -3 * (a / 6) * (2 / 3 + 2 / 11));
  assertAllClose(r.dLogprobs.slice(0, 2), [-3 * (a / 6) * (2 / 3), -3 * (a / 6) * (2 / 11)]);
  assertClose(r.metrics['red/rbar_mean'], 0.5);
  // The default, r̄ over all G+1: (1+1+0)/3 = 2/3 → π_offline(0.5) = 0.5 + 0.5·2/3 = 5/6, ρ = 0.6.
  const all = policyLoss(hand, opts({ offlineMember: true, piOffline: 'accuracy' }), ctx);
  assertClose(all.dLogprobs[0], -(a / 6) * 0.6);
  assertClose(all.metrics['red/rbar_mean'], 2 / 3);
});

test('RED II default: a verified trace and G failed rollouts give r̄ = 1/(G+1), ρ_off = π / (π + (1−π)/(G+1))', () => {
  // One group: G = 4 failed rollouts (reward 0) and the verified trace (reward 1), the trace in the
  // middle. Offline tokens π = 0.6, 0.05, 0.9. R = [0,0,1,0,0]: mean 1/5, unbiased std √(1/5),
  // Â_off = (4/5)/(√(1/5) + 1e-6). κ (seq-mean-token-mean): 1/(5·3) per offline token.
  const G = 4;
  const pis = [0.6, 0.05, 0.9];
  const b: TokenBatch = {
    offsets: [0, 2, 4, 7, 9, 11],
    groupOf: [0, 0, 0, 0, 0],
    isOffline: [false, false, true, false, false],
    rewards: [0, 0, 1, 0, 0],
    accuracies: [0, 0, 1, 0, 0],
    logprobs: [L(0.3), L(0.3), L(0.2), L(0.2), ...pis.map(L), L(0.4), L(0.4), L(0.7), L(0.7)],
  };
  const aOff = 4 / 5 / (Math.sqrt(1 / 5) + 1e-6);
  const rho = pis.map((p) => p / (p + (1 - p) / (G + 1)));
  for (const method of ['red', 'red-II'] as const) {
    const r = policyLoss(b, resolvePreset(method), ctx);
    assertClose(r.metrics['red/rbar_mean'], 1 / (G + 1), 1e-12, `${method}: r̄`);
    assertClose(r.metrics['offline/ratio_mean'], (rho[0] + rho[1] + rho[2]) / 3, 1e-12, `${method}: mean ρ_off`);
    // d loss / d log π_t = −κ·w·Â_off·ρ_t (the stop-gradient form: dρ/dlog π = ρ).
    assertAllClose(
      r.dLogprobs.slice(4, 7),
      rho.map((x) => -(1 / 15) * aOff * x),
      1e-12,
      `${method}: offline gradient`,
    );
  }
  // The ablation reads r̄ over the G online members only: 0, so ρ_off = π/sg(π) = 1 (pure imitation).
  const ablation = policyLoss(b, resolvePreset('red', { accuracyIncludesOffline: false }), ctx);
  assertClose(ablation.metrics['red/rbar_mean'], 0);
  assertClose(ablation.metrics['offline/ratio_mean'], 1);
});

test('π_offline limits: accuracy with r̄ = 0 is ∇log π (weight 1), with r̄ = 1 equals one; self has value 1', () => {
  for (const logp of [L(0.9), L(0.3), L(0.01)]) {
    const p = Math.exp(logp);
    // accuracy, r̄ = 0: π_offline = sg(π) → ρ = 1, dρ/dlog π = 1.
    const a0 = offlineRatios.accuracy(logp, logp, 0, 0.1);
    assertClose(a0.value, 1);
    assertClose(a0.dLogprob, 1);
    // accuracy, r̄ = 1: π_offline = 1 → ρ = π, dρ/dlog π = π, as `one`.
    const a1 = offlineRatios.accuracy(logp, logp, 1, 0.1);
    const one = offlineRatios.one(logp, logp, 0, 0.1);
    assertClose(a1.value, p);
    assertClose(a1.dLogprob, p);
    assertClose(one.value, p);
    assertClose(one.dLogprob, p);
    // self: value 1, gradient ∇log π.
    const self = offlineRatios.self(logp, logp, 0.5, 0.1);
    assertClose(self.value, 1);
    assertClose(self.dLogprob, 1);
    // luffy, γ = 0.1: ρ = π/(π+0.1), dρ/dlog π = 0.1·π/(π+0.1)².
    const lu = offlineRatios.luffy(logp, logp, 0.5, 0.1);
    assertClose(lu.value, p / (p + 0.1));
    assertClose(lu.dLogprob, (0.1 * p) / (p + 0.1) ** 2);
  }
  // Same limits through the whole loss. r̄ = 0 (only in the ablation, r̄ over the online members):
  // online members all wrong (rewards differ through shaping so the advantages are not zero) →
  // offline gradient = −κ·w·Â_off per token, as `self`.
  const zero: TokenBatch = { ...hand, accuracies: [1, 0, 0], rewards: [1, 0.3, 0] };
  const acc0 = policyLoss(
    zero,
    opts({ offlineMember: true, piOffline: 'accuracy', accuracyIncludesOffline: false }),
    ctx,
  );
  const self0 = policyLoss(zero, opts({ offlineMember: true, piOffline: 'self' }), ctx);
  assertAllClose(acc0.dLogprobs, self0.dLogprobs);
  assertClose(acc0.loss, self0.loss);
  assertClose(acc0.dLogprobs[0], acc0.dLogprobs[1]); // the same weight on π = 0.5 and π = 0.1
  // r̄ = 1: online members all right → the loss and gradient of `one`.
  const full: TokenBatch = { ...hand, accuracies: [1, 1, 1], rewards: [1, 1, 0.6] };
  const acc1 = policyLoss(full, opts({ offlineMember: true, piOffline: 'accuracy' }), ctx);
  const one1 = policyLoss(full, opts({ offlineMember: true, piOffline: 'one' }), ctx);
  assertAllClose(acc1.dLogprobs, one1.dLogprobs);
  assertClose(acc1.loss, one1.loss);
});

test('online PPO clip: the clipped branch has no gradient; offline tokens are never clipped', () => {
  // Two online members in one group with R = [1, 0]: mean 0.5, unbiased std √0.5, Â = ±0.5/(√0.5 + 1e-6).
  // Tokens: member 0 (Â > 0) ρ = 1.5 (clipped at 1.2), ρ = 0.5 (not); member 1 (Â < 0) ρ = 1.5 (not), ρ = 0.5 (clipped at 0.8).
  const A = 0.5 / (Math.sqrt(0.5) + 1e-6);
  const b: TokenBatch = {
    offsets: [0, 2, 4],
    groupOf: [0, 0],
    isOffline: [false, false],
    rewards: [1, 0],
    accuracies: [1, 0],
    logprobs: [L(0.3), L(0.3), L(0.3), L(0.3)],
    oldLogprobs: [L(0.2), L(0.6), L(0.2), L(0.6)],
  };
  const r = policyLoss(b, opts(), ctx);
  // κ = 1/(2·2) = 1/4. surrogates: 1.2A, 0.5A, −1.5A, −0.8A → loss = −(1/4)(1.2 + 0.5 − 1.5 − 0.8)A = 0.15A.
  assertClose(r.loss, 0.15 * A);
  assertAllClose(r.dLogprobs, [0, -0.25 * 0.5 * A, 0.25 * 1.5 * A, 0]);
  assertClose(r.metrics['clip/frac'], 0.5);
  // clip disabled (luffy): every token ρ·Â, gradient −κ·ρ·Â.
  const nc = policyLoss(b, opts({ clip: { enabled: false } }), ctx);
  assertAllClose(nc.dLogprobs, [-0.25 * 1.5 * A, -0.25 * 0.5 * A, 0.25 * 1.5 * A, 0.25 * 0.5 * A]);
  // clip-higher ε_high = 0.6: ρ = 1.5 < 1.6 is no longer clipped.
  const hi = policyLoss(b, opts({ clip: { epsHigh: 0.6 } }), ctx);
  assertClose(hi.dLogprobs[0], -0.25 * 1.5 * A);
  // An offline token with ρ^off far above 1 + ε keeps its gradient (π = 0.9 with `one`).
  const off: TokenBatch = { ...b, isOffline: [true, false], logprobs: [L(0.9), L(0.9), L(0.3), L(0.3)] };
  const o = policyLoss(off, opts({ piOffline: 'self' }), ctx);
  assertAllClose(o.dLogprobs.slice(0, 2), [-0.25 * A, -0.25 * A]);
});

test('KL (k1, k3) and entropy bonus by hand', () => {
  // k1 = log π − log π_ref; k3 = e^(ref−lp) − (ref−lp) − 1 with ref − lp = L(0.2) − L(0.4) = −ln 2: 1/2 + ln 2 − 1.
  assertClose(klEstimators.k1(L(0.4), L(0.2)).value, Math.log(2));
  assertClose(klEstimators.k3(L(0.4), L(0.2)).value, 0.5 + Math.log(2) - 1);
  assertClose(klEstimators.k3(L(0.4), L(0.2)).dLogprob, 1 - 0.5);
  // A single online member with R = 1 alone in its group: Â = 0, so only KL and entropy terms remain.
  // Tokens π = 0.4, 0.5, ref 0.2, 0.5, H = 1.0, 2.0, token mean (κ = 1/2): KL k1 = (ln 2 + 0)/2;
  // loss = 0.1·(ln 2)/2 − 0.01·(1 + 2)/2.
  const b: TokenBatch = {
    offsets: [0, 2],
    groupOf: [0],
    isOffline: [false],
    rewards: [1],
    accuracies: [1],
    logprobs: [L(0.4), L(0.5)],
    refLogprobs: [L(0.2), L(0.5)],
    entropies: [1, 2],
  };
  const r = policyLoss(b, opts({ klCoef: 0.1, klEstimator: 'k1', entropyCoef: 0.01 }), ctx);
  assertClose(r.loss, (0.1 * Math.log(2)) / 2 - (0.01 * 3) / 2);
  assertAllClose(r.dLogprobs, [0.05, 0.05]);
  assertAllClose(r.dEntropies ?? [], [-0.005, -0.005]);
  assertClose(r.metrics['kl/mean'], Math.log(2) / 2);
  // The KL is not applied to offline tokens (not samples of π).
  const off = policyLoss({ ...b, isOffline: [true] }, opts({ klCoef: 0.1, klEstimator: 'k1' }), ctx);
  assertAllClose(off.dLogprobs, [0, 0]);
});

// ---- A direct loop over groups/members/tokens, written from RED-SPEC "Objective" independently
// of src/rl/ (its own advantages, ratios and aggregation), for the value of the loss.
function specLoss(
  b: TokenBatch,
  piOffline: string,
  aggregation: string,
  w: number,
  lNorm: number,
  clip: boolean,
  includeOffline = true,
): number {
  const M = b.groupOf.length;
  const groups = [...new Set(Array.from(b.groupOf))].sort((x, y) => x - y);
  const counted = (t: number) => b.mask === undefined || b.mask[t] === 1;
  const adv: number[] = [];
  const rbar: number[] = [];
  for (const g of groups) {
    const idx = [...Array(M).keys()].filter((m) => b.groupOf[m] === g);
    const R = idx.map((m) => b.rewards[m]);
    const mean = R.reduce((x, y) => x + y, 0) / R.length;
    const std = Math.sqrt(R.reduce((x, y) => x + (y - mean) ** 2, 0) / (R.length - 1));
    idx.forEach((m) => {
      adv[m] = (b.rewards[m] - mean) / (std + 1e-6);
    });
    // r̄ (Eq. 8): over all G+1 members (the default); over the online ones with includeOffline false.
    const counted = idx.filter((m) => includeOffline || !b.isOffline[m]);
    rbar[g] = counted.reduce((x, m) => x + b.accuracies[m], 0) / counted.length;
  }
  const tokenTerm = (m: number, t: number): number => {
    const lp = b.logprobs[t];
    const p = Math.exp(lp);
    if (b.isOffline[m]) {
      const rho =
        piOffline === 'one'
          ? p
          : piOffline === 'self'
            ? 1
            : piOffline === 'luffy'
              ? p / (p + 0.1)
              : p / (p + (1 - p) * rbar[b.groupOf[m]]); // accuracy and accuracy-no-sg: the same value
      return w * rho * adv[m];
    }
    const rho = Math.exp(lp - (b.oldLogprobs ?? b.logprobs)[t]);
    const clipped = Math.min(Math.max(rho, 0.8), 1.2);
    return clip ? Math.min(rho * adv[m], clipped * adv[m]) : rho * adv[m];
  };
  if (aggregation === 'token-mean') {
    let sum = 0;
    let n = 0;
    for (let m = 0; m < M; m++)
      for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++)
        if (counted(t)) {
          sum += tokenTerm(m, t);
          n++;
        }
    return -sum / n;
  }
  let J = 0;
  for (const g of groups) {
    const idx = [...Array(M).keys()].filter((m) => b.groupOf[m] === g);
    let Jg = 0;
    for (const m of idx) {
      let s = 0;
      let n = 0;
      for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++)
        if (counted(t)) {
          s += tokenTerm(m, t);
          n++;
        }
      if (aggregation === 'seq-mean-token-mean') Jg += n > 0 ? s / n : 0;
      else Jg += s / lNorm;
    }
    J += Jg / idx.length;
  }
  return -J / groups.length;
}

test('the loss of every aggregation × π_offline × clip equals a direct loop over the spec objective', () => {
  const b = randomBatch({ groups: 3, online: 3, offline: true, maxLen: 6, seed: 7 });
  for (const aggregation of AGGREGATION_NAMES) {
    for (const piOffline of PI_OFFLINE_NAMES) {
      for (const clip of [true, false]) {
        for (const includeOffline of [true, false]) {
          const r = policyLoss(
            b,
            opts({
              offlineMember: true,
              piOffline,
              aggregation,
              clip: { enabled: clip },
              lNorm: 9,
              accuracyIncludesOffline: includeOffline,
            }),
            { offlineWeight: 2.5, maxResponseTokens: 99 },
          );
          assertClose(
            r.loss,
            specLoss(b, piOffline, aggregation, 2.5, 9, clip, includeOffline),
            1e-12,
            `${aggregation} ${piOffline} clip=${clip} r̄ over ${includeOffline ? 'G+1' : 'G'}`,
          );
        }
      }
    }
  }
});

test('aggregation coefficients κ_t: a direct loop per mode, L_norm from the response limit when lNorm is null', () => {
  // Two groups: group 0 = members of 2 and 3 counted tokens, group 1 = one member of 1 token (+ a masked one).
  const b: TokenBatch = {
    offsets: [0, 2, 5, 7],
    groupOf: [0, 0, 1],
    isOffline: [0, 1, 0],
    rewards: [0, 0, 0],
    accuracies: [0, 0, 0],
    logprobs: new Float64Array(7),
    mask: [1, 1, 1, 1, 1, 1, 0],
  };
  const layout = batchLayout(b);
  // seq-mean-token-mean: 1/(groups·|g|·|o_i|) = 1/(2·2·2), 1/(2·2·3), 1/(2·1·1); masked → 0.
  assertAllClose(aggregations['seq-mean-token-mean'](b, layout, 0), [1 / 8, 1 / 8, 1 / 12, 1 / 12, 1 / 12, 1 / 2, 0]);
  // token-mean: 1/6 for the 6 counted tokens.
  assertAllClose(
    aggregations['token-mean'](b, layout, 0),
    [1, 1, 1, 1, 1, 1, 0].map((x) => x / 6),
  );
  // seq-sum-norm with L_norm 10: 1/(2·2·10) in group 0, 1/(2·1·10) in group 1.
  assertAllClose(aggregations['seq-sum-norm'](b, layout, 10), [1 / 40, 1 / 40, 1 / 40, 1 / 40, 1 / 40, 1 / 20, 0]);
  const withNull = policyLoss(
    { ...b, rewards: [1, 0, 0], logprobs: [-1, -1, -1, -1, -1, -1, -1] },
    opts({ aggregation: 'seq-sum-norm', lNorm: null, offlineMember: true }),
    { offlineWeight: 1, maxResponseTokens: 10 },
  );
  const with10 = policyLoss(
    { ...b, rewards: [1, 0, 0], logprobs: [-1, -1, -1, -1, -1, -1, -1] },
    opts({ aggregation: 'seq-sum-norm', lNorm: 10, offlineMember: true }),
    { offlineWeight: 1, maxResponseTokens: 4000 },
  );
  assertClose(withNull.loss, with10.loss);
});

test('every gradient of the policy loss matches central differences (all variants, modes, KL, entropy bonus)', () => {
  const b = randomBatch({ groups: 2, online: 3, offline: true, maxLen: 5, seed: 3 });
  let checked = 0;
  for (const aggregation of AGGREGATION_NAMES) {
    for (const piOffline of PI_OFFLINE_NAMES) {
      for (const [clip, klEstimator] of [
        [true, 'k3'],
        [false, 'k1'],
      ] as const) {
        const o = opts({
          offlineMember: true,
          piOffline,
          aggregation,
          clip: { enabled: clip },
          klCoef: 0.05,
          klEstimator,
          entropyCoef: 0.01,
          normalizeStd: clip,
        });
        checkGradients(b, (x) => policyLoss(x, o, { offlineWeight: 1.7, maxResponseTokens: 12 }));
        checked++;
      }
    }
  }
  assert.equal(checked, 3 * PI_OFFLINE_NAMES.length * 2);
  // The clip must actually have been active somewhere for this to test the clipped branch.
  const r = policyLoss(b, opts({ offlineMember: true }), ctx);
  assert.ok(r.metrics['clip/frac'] > 0, 'the random batch has clipped tokens');
});

test('the offline flag, not the position, decides: permuting members leaves the loss unchanged', () => {
  const perm = [2, 0, 1];
  const toks = (m: number) => Array.from(hand.logprobs).slice(hand.offsets[m], hand.offsets[m + 1]);
  const offsets = [0];
  for (const m of perm) offsets.push(offsets[offsets.length - 1] + toks(m).length);
  const b: TokenBatch = {
    offsets,
    groupOf: [0, 0, 0],
    isOffline: perm.map((m) => hand.isOffline[m]),
    rewards: perm.map((m) => hand.rewards[m]),
    accuracies: perm.map((m) => hand.accuracies[m]),
    logprobs: perm.flatMap(toks),
  };
  const o = opts({ offlineMember: true, piOffline: 'accuracy' });
  assertClose(policyLoss(b, o, ctx).loss, policyLoss(hand, o, ctx).loss);
});

test('micro-batches: shares of the loss sum to the full loss, gradients equal the full ones, other tokens unread', () => {
  const b = randomBatch({ groups: 3, online: 3, offline: true, maxLen: 5, seed: 21 });
  const M = b.groupOf.length;
  const cuts = [0, 3, 5, 9, M]; // cuts that split groups: the group statistics must still be whole-batch
  for (const objective of ['group-policy', 'srft', 'nll'] as const) {
    const o = parseAlgorithmOptions({
      objective,
      offlineMember: true,
      piOffline: 'accuracy',
      aggregation: 'token-mean',
      entropyCoef: 0.01,
      klCoef: 0.03,
    });
    const full = objectives[objective](b, o, ctx);
    let sum = 0;
    for (let k = 0; k + 1 < cuts.length; k++) {
      const [t0, t1] = [b.offsets[cuts[k]], b.offsets[cuts[k + 1]]];
      // Per-token inputs outside this micro-batch are NaN (srft's sg entropies stay whole-batch).
      const hide = (x: Float64Array) => x.map((v, t) => (t >= t0 && t < t1 ? v : NaN));
      const part = objectives[objective](
        {
          ...b,
          logprobs: hide(Float64Array.from(b.logprobs)),
          oldLogprobs: hide(b.oldLogprobs),
          refLogprobs: hide(b.refLogprobs),
          entropies: hide(b.entropies),
          detached: { entropies: b.entropies },
        },
        o,
        { ...ctx, members: [cuts[k], cuts[k + 1]] },
      );
      sum += part.loss;
      assertAllClose(
        part.dLogprobs.slice(t0, t1),
        full.dLogprobs.slice(t0, t1),
        1e-12,
        `${objective} dLogprobs [${t0}, ${t1})`,
      );
      assertAllClose(
        (part.dEntropies ?? new Float64Array(t1)).slice(t0, t1),
        (full.dEntropies ?? new Float64Array(t1)).slice(t0, t1),
        1e-12,
        `${objective} dEntropies`,
      );
    }
    assertClose(sum, full.loss, 1e-12, `${objective}: Σ shares`);
  }
});

test('accuracy with r̄ = 0 stays exact where π underflows (log π = −800)', () => {
  const r = offlineRatios.accuracy(-800, -800, 0, 0.1);
  assert.deepEqual([r.value, r.dLogprob], [1, 1]);
});

test('accuracy-no-sg: ρ = π/(π + (1−π)·r̄) differentiated through both, against the hand-derived gradient and central differences', () => {
  const f = offlineRatios['accuracy-no-sg'];
  for (const rbar of [0, 0.2, 0.5, 1])
    for (const p of [0.9, 0.3, 0.01]) {
      const logp = L(p);
      const D = p + (1 - p) * rbar;
      const r = f(logp, logp + 5, rbar, 0.1); // the sg argument is not read: nothing is stopped
      assertClose(r.value, p / D, 1e-12, `value r̄=${rbar} π=${p}`);
      // Hand: dρ/dlog π = π·r̄/D² (docs in policy-loss.ts); against `accuracy` that is ρ·r̄/D.
      assertClose(r.dLogprob, (p * rbar) / D ** 2, 1e-12, `gradient r̄=${rbar} π=${p}`);
      const h = 1e-6;
      const fd = (f(logp + h, 0, rbar, 0.1).value - f(logp - h, 0, rbar, 0.1).value) / (2 * h);
      assertClose(r.dLogprob, fd, 1e-8, `finite differences r̄=${rbar} π=${p}`);
    }
  // The limits: r̄ = 1 is `one`; r̄ = 0 makes ρ ≡ 1 (no gradient), even where π underflows.
  const one = offlineRatios.one(L(0.3), L(0.3), 0, 0.1);
  assert.deepEqual(f(L(0.3), 0, 1, 0.1), one);
  assert.deepEqual(f(-800, 0, 0, 0.1), { value: 1, dLogprob: 0 });
  // Through the whole loss (value equal to accuracy's, gradient not): central differences of the
  // loss in every log π with nothing held behind sg for this variant.
  const b = randomBatch({ groups: 2, online: 3, offline: true, maxLen: 5, seed: 11 });
  const o = opts({ offlineMember: true, piOffline: 'accuracy-no-sg' });
  const withSg = policyLoss(b, opts({ offlineMember: true, piOffline: 'accuracy' }), ctx);
  const noSg = checkGradients(b, (x) => policyLoss(x, o, ctx));
  assertClose(noSg.loss, withSg.loss, 1e-12);
  let differ = 0;
  for (let m = 0; m < b.groupOf.length; m++)
    if (b.isOffline[m])
      for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++)
        if (Math.abs(noSg.dLogprobs[t] - withSg.dLogprobs[t]) > 1e-6) differ++;
  assert.ok(differ > 0, 'the gradients of accuracy and accuracy-no-sg differ on offline tokens');
});
