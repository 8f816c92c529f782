// What a model's buffers take in memory, from its config alone, so a command can say before it
// allocates that a setting will not fit. Each figure follows the buffers the model really
// allocates (params.ts, decode.ts's KvCache, qwen2.ts's per-layer activations and scratch) and
// leaves out the smaller ones: an estimate from below, so a refusal is never a false alarm.
import { formatCount, type MemoryPart } from '../util/memory.ts';
import type { ModelConfig } from './config.ts';
import { paramLayout } from './params.ts';

/** Parameters of the model: the flat buffer's length. */
export function parameterCount(c: ModelConfig): number {
  return paramLayout(c).total;
}

/** Bytes of a KV cache of `slots` sequences of up to `maxLen` positions: K and V, (S, maxLen, NKV·HD) per layer. */
export function kvCacheBytes(c: ModelConfig, slots: number, maxLen: number, bytesPerValue = 4): number {
  return 2 * c.numLayers * slots * maxLen * c.numKvHeads * c.headDim * bytesPerValue;
}

/**
 * fp32 bytes per token of one forward/backward kept for backward: per layer the residual input,
 * and (each layer its own, or one shared set under activation checkpointing) ln1, q, k, v,
 * attention output, lse, resid2, ln2, gate|up; plus the scratch every layer shares.
 */
export function activationBytesPerToken(c: ModelConfig, checkpointing: boolean): number {
  const C = c.hiddenSize;
  const QD = c.numHeads * c.headDim;
  const KD = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  const layerSet = 3 * C + 2 * QD + 2 * KD + c.numHeads + 2 * I;
  const perLayer = C + (checkpointing ? 0 : layerSet);
  const shared = (checkpointing ? layerSet : 0) + 5 * C + I + Math.max(QD + 2 * KD, 2 * I);
  return 4 * (c.numLayers * perLayer + shared);
}

/** Bytes a sample costs besides its tokens: its work item, its Sample and its ids/logprobs arrays. */
export const BYTES_PER_SAMPLE = 64;

/** What sampling allocates at the least, for checkMemoryFits. */
export interface SamplingSize {
  /** Samples generated in one call (all of them are queued at once). */
  samples: number;
  /** KV-cache slots (sequences decoded at once). */
  slots: number;
  /** Positions per slot: the longest prompt plus the response limit. */
  positions: number;
  /** The option(s) that set the positions and the samples, named when that part is the largest. */
  sizedBy: { positions: string; samples: string };
}

/** The weights of an inference model, its KV cache and the queued samples (bf16: 2-byte weights and cache). */
export function samplingMemory(c: ModelConfig, s: SamplingSize, bf16: boolean): MemoryPart[] {
  const bytes = bf16 ? 2 : 4;
  return [
    { what: `the weights of ${formatCount(parameterCount(c))} parameters`, bytes: parameterCount(c) * bytes },
    {
      what: `the KV cache of ${s.slots} sequences × ${s.positions} positions`,
      bytes: kvCacheBytes(c, s.slots, s.positions, bytes),
      sizedBy: s.sizedBy.positions,
    },
    { what: `${s.samples} samples`, bytes: s.samples * BYTES_PER_SAMPLE, sizedBy: s.sizedBy.samples },
  ];
}
