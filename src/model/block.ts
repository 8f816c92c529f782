// One decoder layer (Qwen2/Llama), written once: its forward, used by training, scoring and
// KV-cache decoding, and its backward twin, which calls the same kernels in exactly the reverse
// order. The caller owns the buffers (training keeps them per layer for backward, or recomputes
// them from the layer's input under activation checkpointing; decoding reuses one set and may
// alias them) and supplies the attention step (packed causal attention, or attention against a
// KV cache). Every buffer is a backend tensor (src/engine/backend.ts): nothing here touches memory.
import type { Backend } from '../engine/backend.ts';
import type { Bf16Backward } from '../engine/precision.ts';
import type { ModelConfig } from './config.ts';
import { linearBackwardW, linearW, type F32, type I32, type LayerViews, type Weight } from './params.ts';

/** The shape of a decoder (Qwen2/Llama), in the shape vocabulary of the backend. */
export interface DecoderShape {
  V: number;
  C: number;
  L: number;
  NH: number;
  NKV: number;
  HD: number;
  /** MLP width. */
  I: number;
  eps: number;
  ropeTheta: number;
}

export function decoderShape(c: ModelConfig): DecoderShape {
  return {
    V: c.vocabSize,
    C: c.hiddenSize,
    L: c.numLayers,
    NH: c.numHeads,
    NKV: c.numKvHeads,
    HD: c.headDim,
    I: c.intermediateSize,
    eps: c.rmsNormEps,
    ropeTheta: c.ropeTheta,
  };
}

/**
 * A layer's activations over T tokens. Decoding may alias ln1 = ln2, rstd1 = rstd2 and
 * resid = resid2 = out (the residual stream updated in place); backward needs them distinct.
 */
export interface BlockBuffers {
  resid: F32; // (T, C) the residual stream entering the layer
  ln1: F32; // (T, C) input_layernorm output
  rstd1: F32; // (T)
  qkv: F32; // (T, QD+2KD) the fused projection's output, split into q, k, v (scratch)
  q: F32; // (T, NH*HD) after RoPE
  k: F32; // (T, NKV*HD) after RoPE
  v: F32; // (T, NKV*HD)
  att: F32; // (T, NH*HD) attention output, before o_proj
  resid2: F32; // (T, C) the residual stream after attention
  ln2: F32; // (T, C) post_attention_layernorm output
  rstd2: F32; // (T)
  gateUp: F32; // (T, 2I) the fused projection's output: gate | up, side by side in each row
  mlp: F32; // (T, I) silu(gate)·up
  proj: F32; // (T, C) o_proj / down_proj output before the residual add
  out: F32; // (T, C) the residual stream leaving the layer
}

/**
 * The layer's forward over T tokens at `positions`; `attend()` fills b.att from b.q, b.k, b.v
 * (after RoPE) and stores k/v wherever the caller caches them.
 */
export function blockForward(
  be: Backend,
  s: DecoderShape,
  lw: LayerViews<Weight>,
  b: BlockBuffers,
  positions: I32,
  T: number,
  attend: () => void,
): void {
  const { C, NH, NKV, HD, I, eps, ropeTheta } = s;
  const QD = NH * HD,
    KD = NKV * HD,
    QKV = QD + 2 * KD;
  be.rmsnormForward(b.ln1, b.rstd1, b.resid, lw.inputNorm, T, C, eps);
  linearW(be, b.qkv, b.ln1, lw.qkvWeight, lw.qkvBias, T, C, QKV);
  be.copyColumns(b.q, b.qkv, T, QD, QD, 0, QKV, 0);
  be.copyColumns(b.k, b.qkv, T, KD, KD, 0, QKV, QD);
  be.copyColumns(b.v, b.qkv, T, KD, KD, 0, QKV, QD + KD);
  be.ropeForward(b.q, positions, T, NH, HD, ropeTheta);
  be.ropeForward(b.k, positions, T, NKV, HD, ropeTheta);
  attend();
  linearW(be, b.proj, b.att, lw.oWeight, null, T, NH * HD, C);
  be.add(b.resid2, b.resid, b.proj, T * C);
  be.rmsnormForward(b.ln2, b.rstd2, b.resid2, lw.postNorm, T, C, eps);
  linearW(be, b.gateUp, b.ln2, lw.gateUpWeight, null, T, C, 2 * I);
  be.swigluForward(b.mlp, b.gateUp, T, I);
  linearW(be, b.proj, b.mlp, lw.downWeight, null, T, I, C);
  be.add(b.out, b.resid2, b.proj, T * C);
}

/** Gradient scratch of blockBackward (each (T, ·) of the named width). */
export interface BlockGradScratch {
  dln: F32; // (T, C)
  dq: F32; // (T, NH*HD)
  dk: F32; // (T, NKV*HD)
  dv: F32; // (T, NKV*HD)
  dqkv: F32; // (T, QD+2KD) dq, dk, dv side by side for the fused projection's backward
  datt: F32; // (T, NH*HD)
  dmlp: F32; // (T, I)
  dgateUp: F32; // (T, 2I) d gate | d up, for the fused projection's backward
}

/**
 * The twin of blockForward: dresid (T, C) holds d out on entry and d resid on return (the
 * residual stream's gradient flows through); parameter gradients accumulate into lg. b holds
 * the forward's activations (b.mlp is recomputed here); lse (T, NH) is attention's log-sum-exp;
 * the batch's B sequences are delimited by cuSeqlens (B+1). bf16Backward: how bf16 weights'
 * products treat dout and the input (linearBackwardW).
 */
export function blockBackward(
  be: Backend,
  s: DecoderShape,
  lw: LayerViews<Weight>,
  lg: LayerViews,
  b: BlockBuffers,
  lse: F32,
  dresid: F32,
  g: BlockGradScratch,
  positions: I32,
  cuSeqlens: I32,
  B: number,
  T: number,
  bf16Backward: Bf16Backward,
): void {
  const { C, NH, NKV, HD, I, ropeTheta } = s;
  const QD = NH * HD,
    KD = NKV * HD,
    QKV = QD + 2 * KD;
  // MLP: out = resid2 + down(swiglu(gate(ln2), up(ln2))); dresid flows through unchanged.
  be.swigluForward(b.mlp, b.gateUp, T, I); // the input of down_proj (not kept by forward)
  linearBackwardW(be, g.dmlp, lg.downWeight, null, dresid, b.mlp, lw.downWeight, T, I, C, bf16Backward);
  be.swigluBackward(g.dgateUp, g.dmlp, b.gateUp, T, I);
  linearBackwardW(be, g.dln, lg.gateUpWeight, null, g.dgateUp, b.ln2, lw.gateUpWeight, T, C, 2 * I, bf16Backward);
  be.rmsnormBackward(dresid, lg.postNorm, g.dln, b.resid2, lw.postNorm, b.rstd2, T, C);
  // Attention: resid2 = resid + o_proj(attention(rope(q), rope(k), v)).
  linearBackwardW(be, g.datt, lg.oWeight, null, dresid, b.att, lw.oWeight, T, QD, C, bf16Backward);
  be.attentionBackward(g.dq, g.dk, g.dv, g.datt, b.q, b.k, b.v, b.att, lse, cuSeqlens, B, T, NH, NKV, HD);
  be.ropeBackward(g.dk, positions, T, NKV, HD, ropeTheta);
  be.ropeBackward(g.dq, positions, T, NH, HD, ropeTheta);
  be.copyColumns(g.dqkv, g.dv, T, KD, QKV, QD + KD, KD, 0);
  be.copyColumns(g.dqkv, g.dk, T, KD, QKV, QD, KD, 0);
  be.copyColumns(g.dqkv, g.dq, T, QD, QKV, 0, QD, 0);
  linearBackwardW(be, g.dln, lg.qkvWeight, lg.qkvBias, g.dqkv, b.ln1, lw.qkvWeight, T, C, QKV, bf16Backward);
  be.rmsnormBackward(dresid, lg.inputNorm, g.dln, b.resid, lw.inputNorm, b.rstd1, T, C);
}
