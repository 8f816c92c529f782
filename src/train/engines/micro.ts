// An engine batch as the in-process engines run it: split by a token budget into packed model
// batches (micro-batches whose gradients accumulate), with the maps between the contract's
// per-scored-token arrays (N) and each micro-batch's per-packed-token arrays (T_mb).
import { packSequences, type PackedBatch } from '../../model/batch.ts';
import { fail } from '../../util/errors.ts';
import type { EngineBatch } from '../engine.ts';

export interface MicroBatch {
  batch: PackedBatch;
  /** Index in the batch's per-token (N) arrays of this micro-batch's first scored token. */
  first: number;
  /** (n) packed position that predicts each scored token of the micro-batch, in order. */
  tokenIndex: Int32Array;
}

/** Checks the contract's invariants of a batch (one line naming the first break); returns N. */
export function checkEngineBatch(b: EngineBatch): number {
  const cu = b.cuSeqlens;
  const B = cu.length - 1;
  if (B < 1 || cu[0] !== 0 || cu[B] !== b.ids.length)
    fail(`engine batch: cuSeqlens must run from 0 to T = ${b.ids.length} over at least one sequence`);
  if (b.scoredFrom.length !== B) fail(`engine batch: scoredFrom has ${b.scoredFrom.length} entries for ${B} sequences`);
  let n = 0;
  for (let s = 0; s < B; s++) {
    const len = cu[s + 1] - cu[s];
    if (len < 1) fail(`engine batch: sequence ${s} is empty (cuSeqlens must be strictly increasing)`);
    if (b.scoredFrom[s] < 1 || b.scoredFrom[s] > len)
      fail(`engine batch: scoredFrom[${s}] = ${b.scoredFrom[s]} must be in 1..${len} (the sequence's length)`);
    n += len - b.scoredFrom[s];
  }
  return n;
}

/**
 * Splits the batch in sequence order: `tokenBudget` > 0 starts a new micro-batch whenever the next
 * sequence would take it past the budget (a longer sequence gets one of its own); 0: one pass.
 */
export function splitMicroBatches(b: EngineBatch, tokenBudget: number): MicroBatch[] {
  const cu = b.cuSeqlens;
  const B = cu.length - 1;
  const micro: MicroBatch[] = [];
  let start = 0;
  let first = 0;
  while (start < B) {
    let end = start;
    let tokens = 0;
    while (end < B) {
      const len = cu[end + 1] - cu[end];
      if (end > start && tokenBudget > 0 && tokens + len > tokenBudget) break;
      tokens += len;
      end++;
    }
    const mb = packRange(b, start, end, first);
    micro.push(mb);
    first += mb.tokenIndex.length;
    start = end;
  }
  return micro;
}

function packRange(b: EngineBatch, start: number, end: number, first: number): MicroBatch {
  const seqs: Int32Array[] = [];
  const targetFrom: number[] = [];
  for (let s = start; s < end; s++) {
    seqs.push(b.ids.subarray(b.cuSeqlens[s], b.cuSeqlens[s + 1]));
    targetFrom.push(b.scoredFrom[s]);
  }
  const batch = packSequences(seqs, targetFrom);
  const n = b.cuSeqlens[end] - b.cuSeqlens[start] - targetFrom.reduce((a, x) => a + x, 0);
  const tokenIndex = new Int32Array(n);
  let i = 0;
  for (let s = start; s < end; s++) {
    // Scored token j of sequence s is predicted at packed position cu + scoredFrom − 1 + j.
    const base = batch.cuSeqlens[s - start] + b.scoredFrom[s] - 1;
    const scored = b.cuSeqlens[s + 1] - b.cuSeqlens[s] - b.scoredFrom[s];
    for (let j = 0; j < scored; j++) tokenIndex[i++] = base + j;
  }
  return { batch, first, tokenIndex };
}

/** dst[first + i] = src[tokenIndex[i]]: a micro-batch's per-packed-token outputs → the batch's (N) array. */
export function gatherTokens(dst: Float32Array, src: Float32Array, mb: MicroBatch): void {
  for (let i = 0; i < mb.tokenIndex.length; i++) dst[mb.first + i] = src[mb.tokenIndex[i]];
}

/** The reverse: the batch's per-token coefficients → a zeroed (T_mb) array of the micro-batch. */
export function scatterTokens(src: Float32Array, mb: MicroBatch): Float32Array {
  const out = new Float32Array(mb.batch.ids.length);
  for (let i = 0; i < mb.tokenIndex.length; i++) out[mb.tokenIndex[i]] = src[mb.first + i];
  return out;
}
