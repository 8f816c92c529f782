// Turns a step's group members (prompt ids + response ids) into the engine's batch: one sequence
// per member, its response scored. The engine's per-token arrays then run over the response
// tokens in member order, which is exactly src/rl's TokenBatch layout (offsets below).
import type { EngineBatch } from './engine.ts';

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

export interface PackedMembers {
  batch: EngineBatch;
  /** (M+1) response-token offsets of the members (TokenBatch.offsets); offsets[M] = N. */
  offsets: Int32Array;
}

export function packMembers(members: readonly Member[]): PackedMembers {
  const M = members.length;
  const offsets = new Int32Array(M + 1);
  const cuSeqlens = new Int32Array(M + 1);
  const scoredFrom = new Int32Array(M);
  members.forEach((m, i) => {
    offsets[i + 1] = offsets[i] + m.responseIds.length;
    cuSeqlens[i + 1] = cuSeqlens[i] + m.promptIds.length + m.responseIds.length;
    scoredFrom[i] = m.promptIds.length;
  });
  const ids = new Int32Array(cuSeqlens[M]);
  members.forEach((m, i) => {
    ids.set(m.promptIds, cuSeqlens[i]);
    ids.set(m.responseIds, cuSeqlens[i] + m.promptIds.length);
  });
  return { batch: { ids, cuSeqlens, scoredFrom }, offsets };
}
