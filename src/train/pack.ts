// Turns a step's group members (prompt ids + response ids) into packed model batches, split into
// micro-batches by a token budget, and maps between the model's per-packed-token outputs and the
// compact per-response-token arrays that src/rl's TokenBatch reads (gather), and back (scatter).
import { packSequences, type PackedBatch } from '../model/batch.ts';

/** One sequence of a group: the prompt and one response (a rollout or the teacher trace). */
export interface Member {
  /** Index of the member's group within the step. */
  group: number;
  /** Prompt ids (for BREAD the teacher prefix is part of the prompt, so no loss falls on it). */
  promptIds: readonly number[];
  /** Response ids, scored by the loss. */
  responseIds: readonly number[];
  isOffline: boolean;
  /** acc_i ∈ {0,1} from the verifier. */
  accuracy: number;
  /** R_i: accuracy plus reward shaping. */
  reward: number;
  /** Cut at the response limit (rollout finishReason 'length', or a truncated trace). */
  clipped: boolean;
  /** The sampler's log-prob of each response token (the behaviour policy); online members only. */
  rolloutLogprobs?: readonly number[];
}

export interface MicroBatch {
  batch: PackedBatch;
  /** Members [firstMember, endMember) of the step are in this micro-batch, in order. */
  firstMember: number;
  endMember: number;
  /** (n) packed position of each response token of the micro-batch, in member order; the n
   *  tokens are [offsets[firstMember], offsets[endMember]) of the step's token arrays. */
  tokenIndex: Int32Array;
}

export interface PackedMembers {
  /** (M+1) response-token offsets of the members (TokenBatch.offsets). */
  offsets: Int32Array;
  micro: MicroBatch[];
  /** Response tokens of the whole step (offsets[M]). */
  responseTokens: number;
  /** Packed tokens (prompts + responses) of the whole step. */
  totalTokens: number;
}

/**
 * Packs the members; `tokenBudget` > 0 starts a new micro-batch whenever adding the next member
 * would exceed it (a member longer than the budget gets a micro-batch of its own).
 */
export function packMembers(members: readonly Member[], tokenBudget: number): PackedMembers {
  const M = members.length;
  const offsets = new Int32Array(M + 1);
  for (let m = 0; m < M; m++) offsets[m + 1] = offsets[m] + members[m].responseIds.length;
  const micro: MicroBatch[] = [];
  let start = 0;
  let totalTokens = 0;
  while (start < M) {
    let end = start;
    let tokens = 0;
    while (end < M) {
      const len = members[end].promptIds.length + members[end].responseIds.length;
      if (end > start && tokenBudget > 0 && tokens + len > tokenBudget) break;
      tokens += len;
      end++;
    }
    micro.push(packRange(members, start, end, offsets));
    totalTokens += tokens;
    start = end;
  }
  return { offsets, micro, responseTokens: offsets[M], totalTokens };
}

function packRange(members: readonly Member[], start: number, end: number, offsets: Int32Array): MicroBatch {
  const seqs: number[][] = [];
  const targetFrom: number[] = [];
  for (let m = start; m < end; m++) {
    const { promptIds, responseIds } = members[m];
    seqs.push([...promptIds, ...responseIds]);
    targetFrom.push(promptIds.length);
  }
  const batch = packSequences(seqs, targetFrom);
  const tokenIndex = new Int32Array(offsets[end] - offsets[start]);
  let i = 0;
  for (let m = start; m < end; m++) {
    // Response token j of member m is predicted at packed position cu + P − 1 + j.
    const base = batch.cuSeqlens[m - start] + members[m].promptIds.length - 1;
    for (let j = 0; j < members[m].responseIds.length; j++) tokenIndex[i++] = base + j;
  }
  return { batch, firstMember: start, endMember: end, tokenIndex };
}

/** dst[offsets[first] + i] = src[tokenIndex[i]]: per-packed-token outputs → the step's token arrays. */
export function gatherTokens(
  dst: Float32Array | Float64Array,
  src: ArrayLike<number>,
  mb: MicroBatch,
  offsets: Int32Array,
): void {
  const base = offsets[mb.firstMember];
  for (let i = 0; i < mb.tokenIndex.length; i++) dst[base + i] = src[mb.tokenIndex[i]];
}

/** The reverse: per-response-token coefficients → a zeroed (T_packed) array of the micro-batch. */
export function scatterTokens(src: ArrayLike<number> | null, mb: MicroBatch, offsets: Int32Array): Float32Array {
  const out = new Float32Array(mb.batch.ids.length);
  if (src === null) return out;
  const base = offsets[mb.firstMember];
  for (let i = 0; i < mb.tokenIndex.length; i++) out[mb.tokenIndex[i]] = src[base + i];
  return out;
}
