// The packed layout every loss in src/rl/ reads: M members (sequences) of a batch of groups, their
// response tokens concatenated into flat per-token arrays (T = offsets[M]), per-member scalars
// beside them. The trainer fills it from its own buffers; arrays may be longer than needed.

/** Any flat numeric array: Float32Array from the model, Float64Array or number[] in tests. */
export type Floats = ArrayLike<number>;

export interface TokenBatch {
  /** (M+1) member m's response tokens are [offsets[m], offsets[m+1]) of every per-token array. */
  offsets: ArrayLike<number>;
  /** (M) group of each member, 0..nGroups−1; every group in the range must have a member. */
  groupOf: ArrayLike<number>;
  /** (M) true (or 1) for the teacher trace; always explicit, never inferred from position. */
  isOffline: ArrayLike<boolean | number>;
  /** (M) R_i = acc_i + shaping (see shapeRewards); the advantages are computed from these. */
  rewards: Floats;
  /** (M) acc_i ∈ {0,1} from the verifier (r̄ of π_offline accuracy, srft's correct/wrong split). */
  accuracies: Floats;
  /** (T) log π_θ(y_t) of the current policy: the input whose gradient the loss returns. */
  logprobs: Floats;
  /** (T) log π_θold(y_t) at rollout time, read on online tokens. Omitted: equal in value to
   *  `logprobs` (one optimiser step per rollout batch, so ρ = 1). */
  oldLogprobs?: Floats;
  /** (T) full-vocabulary entropy −Σ_v p_v log p_v of the current policy at each token; needed by
   *  the entropy bonus, srft and the entropy metrics. */
  entropies?: Floats;
  /** (T) log π_ref(y_t), needed when klCoef > 0. */
  refLogprobs?: Floats;
  /** (T) 1 = the token counts, 0 = ignored (e.g. BREAD's teacher prefix). Omitted: all count. */
  mask?: ArrayLike<number>;
  /** Values seen by stop-gradient terms sg(·) (default: `logprobs` / `entropies` themselves). A
   *  finite-difference test perturbs `logprobs` while holding these, which is what sg means. */
  detached?: { logprobs?: Floats; entropies?: Floats };
}

/** Derived shape of a batch, computed once per loss call. */
export interface BatchLayout {
  members: number; // M
  tokens: number; // T
  groups: number; // number of groups
  /** (M) members of the member's group (the spec's G+1, or G without an offline member). */
  groupSize: Int32Array;
  /** (M) counted (mask = 1) tokens of each member: the spec's |o_i|. */
  counted: Int32Array;
  /** (M) 1 = offline member. */
  offline: Uint8Array;
  /** Members [first, end) are the ones a loss call evaluates (all, or one micro-batch's). */
  first: number;
  end: number;
}

/**
 * Checks the shapes (a programming error, not a user one, if they disagree) and derives the layout.
 * `members` = [first, end) restricts which members a loss evaluates (default: all).
 */
export function batchLayout(b: TokenBatch, members?: readonly [number, number]): BatchLayout {
  const M = b.groupOf.length;
  if (b.offsets.length !== M + 1)
    throw new Error(`TokenBatch: offsets has ${b.offsets.length} entries, expected members+1 = ${M + 1}`);
  for (const [name, arr] of [
    ['isOffline', b.isOffline],
    ['rewards', b.rewards],
    ['accuracies', b.accuracies],
  ] as const) {
    if (arr.length !== M) throw new Error(`TokenBatch: ${name} has ${arr.length} entries, expected members = ${M}`);
  }
  if (b.offsets[0] !== 0) throw new Error('TokenBatch: offsets[0] must be 0');
  for (let m = 0; m < M; m++) {
    if (!(b.offsets[m + 1] >= b.offsets[m])) throw new Error(`TokenBatch: offsets must not decrease (member ${m})`);
  }
  const T = b.offsets[M];
  const perToken: Array<[string, ArrayLike<number> | undefined]> = [
    ['logprobs', b.logprobs],
    ['oldLogprobs', b.oldLogprobs],
    ['entropies', b.entropies],
    ['refLogprobs', b.refLogprobs],
    ['mask', b.mask],
    ['detached.logprobs', b.detached?.logprobs],
    ['detached.entropies', b.detached?.entropies],
  ];
  for (const [name, arr] of perToken) {
    if (arr !== undefined && arr.length < T)
      throw new Error(`TokenBatch: ${name} has ${arr.length} entries, expected ≥ tokens = ${T}`);
  }
  let groups = 0;
  for (let m = 0; m < M; m++) {
    const g = b.groupOf[m];
    if (!Number.isInteger(g) || g < 0) throw new Error(`TokenBatch: groupOf[${m}] = ${g} is not a group index`);
    groups = Math.max(groups, g + 1);
  }
  const sizeOfGroup = new Int32Array(groups);
  for (let m = 0; m < M; m++) sizeOfGroup[b.groupOf[m]]++;
  for (let g = 0; g < groups; g++) if (sizeOfGroup[g] === 0) throw new Error(`TokenBatch: group ${g} has no member`);
  const groupSize = new Int32Array(M);
  const counted = new Int32Array(M);
  const offline = new Uint8Array(M);
  for (let m = 0; m < M; m++) {
    groupSize[m] = sizeOfGroup[b.groupOf[m]];
    offline[m] = b.isOffline[m] ? 1 : 0;
    let n = 0;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) if (b.mask === undefined || b.mask[t]) n++;
    counted[m] = n;
  }
  const [first, end] = members ?? [0, M];
  if (!(Number.isInteger(first) && Number.isInteger(end) && 0 <= first && first <= end && end <= M)) {
    throw new Error(`members range [${first}, ${end}) is not inside [0, ${M})`);
  }
  return { members: M, tokens: T, groups, groupSize, counted, offline, first, end };
}

/** Whether token t counts. */
export function counts(b: TokenBatch, t: number): boolean {
  return b.mask === undefined || b.mask[t] !== 0;
}

/**
 * Mean entropy of the online and of the offline members [first, end) of the layout: each member's H
 * is the mean over its counted tokens, then an unweighted mean over members (RED-SPEC "(I)", H_rl
 * and H_sft). NaN where there is no such member (or no entropies).
 */
export function memberEntropyMeans(b: TokenBatch, layout: BatchLayout = batchLayout(b)): { rl: number; sft: number } {
  const sum = [0, 0];
  const n = [0, 0];
  if (b.entropies === undefined) return { rl: NaN, sft: NaN };
  for (let m = layout.first; m < layout.end; m++) {
    if (layout.counted[m] === 0) continue;
    let s = 0;
    for (let t = b.offsets[m]; t < b.offsets[m + 1]; t++) if (counts(b, t)) s += b.entropies[t];
    const k = layout.offline[m];
    sum[k] += s / layout.counted[m];
    n[k]++;
  }
  return { rl: n[0] ? sum[0] / n[0] : NaN, sft: n[1] ? sum[1] / n[1] : NaN };
}
