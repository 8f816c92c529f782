// Packed variable-length batches: B sequences concatenated into T tokens with no padding,
// delimited by cuSeqlens (as flash-attention's varlen API), each token carrying its position
// within its sequence and the next token of that sequence as its target.
import { fail } from '../util/errors.ts';

export interface PackedBatch {
  ids: Int32Array; // (T)
  /** (T) the next token of the same sequence; −1 = no target here (last token, or masked). */
  targets: Int32Array;
  positions: Int32Array; // (T) position within its sequence, from 0
  cuSeqlens: Int32Array; // (B+1) sequence b is tokens cuSeqlens[b] .. cuSeqlens[b+1]−1
}

/**
 * Packs token sequences; every token's target is the next token of its sequence (the last has
 * none). `targetFrom[b]`, when given, masks targets before that index of sequence b (e.g. the
 * prompt): only tokens t ≥ targetFrom[b]−1 predict a target, i.e. tokens from targetFrom[b] on
 * are scored.
 */
export function packSequences(seqs: ArrayLike<number>[], targetFrom?: number[]): PackedBatch {
  const T = seqs.reduce((s, x) => s + x.length, 0);
  const ids = new Int32Array(T),
    targets = new Int32Array(T).fill(-1),
    positions = new Int32Array(T);
  const cuSeqlens = new Int32Array(seqs.length + 1);
  let t = 0;
  seqs.forEach((seq, b) => {
    if (seq.length === 0) fail(`packSequences: sequence ${b} is empty`);
    const from = targetFrom?.[b] ?? 1;
    for (let i = 0; i < seq.length; i++) {
      ids[t + i] = seq[i];
      positions[t + i] = i;
      if (i + 1 < seq.length && i + 1 >= from) targets[t + i] = seq[i + 1];
    }
    t += seq.length;
    cuSeqlens[b + 1] = t;
  });
  return { ids, targets, positions, cuSeqlens };
}

/** Checks a batch's invariants against the vocabulary size; returns T. */
export function checkBatch(batch: PackedBatch, vocabSize: number): number {
  const T = batch.ids.length;
  const cu = batch.cuSeqlens;
  if (batch.targets.length !== T || batch.positions.length !== T)
    fail(`batch: ids, targets and positions must have the same length (${T})`);
  if (cu.length < 2 || cu[0] !== 0 || cu[cu.length - 1] !== T) fail(`batch: cuSeqlens must run from 0 to T=${T}`);
  for (let b = 1; b < cu.length; b++)
    if (cu[b] <= cu[b - 1]) fail(`batch: cuSeqlens must be strictly increasing (sequence ${b - 1} is empty)`);
  for (let t = 0; t < T; t++) {
    if (batch.ids[t] < 0 || batch.ids[t] >= vocabSize)
      fail(`batch: token id ${batch.ids[t]} at ${t} outside the vocabulary (0..${vocabSize - 1})`);
    if (batch.targets[t] >= vocabSize || batch.targets[t] < -1)
      fail(`batch: target ${batch.targets[t]} at ${t} outside the vocabulary`);
  }
  return T;
}
