// The parameter layout, llm.c style: every parameter lives in ONE flat Float32Array (and its
// gradient in another of the same layout), described by a table of (Hugging Face name, shape,
// offset). Named views are subarrays of whichever flat buffer is passed in. For bf16 inference the
// flat buffer is a Uint16Array of bf16 bits: the matrices are views of it, the norms and biases
// small fp32 copies (they feed fp32 arithmetic).
import type { Backend } from '../engine/backend.ts';
import { fail } from '../util/errors.ts';
import type { ModelConfig } from './config.ts';

/** A weight matrix in fp32, or in bf16 (a Uint16Array of bf16 bits, src/engine/bf16.ts). */
export type Weight = Float32Array | Uint16Array;

export interface ParamSpec {
  /** The Hugging Face tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  shape: number[];
  /** Element offset in the flat buffer. */
  offset: number;
  size: number;
}

export interface ParamLayout {
  specs: ParamSpec[];
  byName: Map<string, ParamSpec>;
  /** Total element count. */
  total: number;
}

/**
 * The parameters of one decoder layer (QD = NH·HD, KD = NKV·HD, I = intermediate size); the
 * matrices are W (fp32 or bf16), norms and biases always fp32.
 */
export interface LayerViews<W extends Weight = Float32Array> {
  inputNorm: Float32Array; // (C)
  qWeight: W; // (QD, C)
  qBias: Float32Array | null; // (QD)
  kWeight: W; // (KD, C)
  kBias: Float32Array | null; // (KD)
  vWeight: W; // (KD, C)
  vBias: Float32Array | null; // (KD)
  oWeight: W; // (C, QD)
  postNorm: Float32Array; // (C)
  gateWeight: W; // (I, C)
  upWeight: W; // (I, C)
  downWeight: W; // (C, I)
}

export interface ModelViews<W extends Weight = Float32Array> {
  embed: W; // (V, C)
  layers: LayerViews<W>[];
  finalNorm: Float32Array; // (C)
  /** (V, C); the same memory as `embed` when the embeddings are tied. */
  lmHead: W;
}

/** The table of every parameter in Hugging Face order (lm_head.weight only when untied). */
export function paramLayout(c: ModelConfig): ParamLayout {
  const C = c.hiddenSize,
    QD = c.numHeads * c.headDim,
    KD = c.numKvHeads * c.headDim,
    I = c.intermediateSize;
  const specs: ParamSpec[] = [];
  let offset = 0;
  const add = (name: string, shape: number[]): void => {
    const size = shape.reduce((a, b) => a * b, 1);
    specs.push({ name, shape, offset, size });
    offset += size;
  };
  add('model.embed_tokens.weight', [c.vocabSize, C]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'self_attn.q_proj.weight', [QD, C]);
    if (c.attentionBias) add(p + 'self_attn.q_proj.bias', [QD]);
    add(p + 'self_attn.k_proj.weight', [KD, C]);
    if (c.attentionBias) add(p + 'self_attn.k_proj.bias', [KD]);
    add(p + 'self_attn.v_proj.weight', [KD, C]);
    if (c.attentionBias) add(p + 'self_attn.v_proj.bias', [KD]);
    add(p + 'self_attn.o_proj.weight', [C, QD]);
    add(p + 'mlp.gate_proj.weight', [I, C]);
    add(p + 'mlp.up_proj.weight', [I, C]);
    add(p + 'mlp.down_proj.weight', [C, I]);
    add(p + 'input_layernorm.weight', [C]);
    add(p + 'post_attention_layernorm.weight', [C]);
  }
  add('model.norm.weight', [C]);
  if (!c.tieWordEmbeddings) add('lm_head.weight', [c.vocabSize, C]);
  return { specs, byName: new Map(specs.map((s) => [s.name, s])), total: offset };
}

/** The view of parameter `name` in `buf` (a buffer of `layout.total` elements). */
export function view(layout: ParamLayout, buf: Float32Array, name: string): Float32Array {
  const s = layout.byName.get(name);
  if (!s) throw new Error(`no parameter ${name}`);
  return buf.subarray(s.offset, s.offset + s.size);
}

/** Named views of every parameter in `buf` (the parameters, their gradients, or a moment). */
export function modelViews(c: ModelConfig, layout: ParamLayout, buf: Float32Array): ModelViews {
  const v = (name: string): Float32Array => view(layout, buf, name);
  return viewsOf(c, v, v);
}

/** Views of bf16 parameters `buf` (layout order): matrices view it, norms and biases are widened copies. */
export function bf16ModelViews(c: ModelConfig, layout: ParamLayout, buf: Uint16Array): ModelViews<Uint16Array> {
  const m = (name: string): Uint16Array => {
    const s = layout.byName.get(name);
    if (!s) throw new Error(`no parameter ${name}`);
    return buf.subarray(s.offset, s.offset + s.size);
  };
  const small = (name: string): Float32Array => {
    const h = m(name),
      out = new Float32Array(h.length),
      o32 = new Uint32Array(out.buffer);
    for (let i = 0; i < h.length; i++) o32[i] = h[i] << 16;
    return out;
  };
  return viewsOf(c, m, small);
}

/** Mixed precision: matrices view the bf16 copy p16, norms and biases the fp32 master p32 itself. */
export function mixedModelViews(
  c: ModelConfig,
  layout: ParamLayout,
  p16: Uint16Array,
  p32: Float32Array,
): ModelViews<Uint16Array> {
  const m = (name: string): Uint16Array => {
    const s = layout.byName.get(name);
    if (!s) throw new Error(`no parameter ${name}`);
    return p16.subarray(s.offset, s.offset + s.size);
  };
  return viewsOf(c, m, (name) => view(layout, p32, name));
}

function viewsOf<W extends Weight>(
  c: ModelConfig,
  m: (name: string) => W,
  v: (name: string) => Float32Array,
): ModelViews<W> {
  const layers: LayerViews<W>[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    layers.push({
      inputNorm: v(p + 'input_layernorm.weight'),
      qWeight: m(p + 'self_attn.q_proj.weight'),
      qBias: c.attentionBias ? v(p + 'self_attn.q_proj.bias') : null,
      kWeight: m(p + 'self_attn.k_proj.weight'),
      kBias: c.attentionBias ? v(p + 'self_attn.k_proj.bias') : null,
      vWeight: m(p + 'self_attn.v_proj.weight'),
      vBias: c.attentionBias ? v(p + 'self_attn.v_proj.bias') : null,
      oWeight: m(p + 'self_attn.o_proj.weight'),
      postNorm: v(p + 'post_attention_layernorm.weight'),
      gateWeight: m(p + 'mlp.gate_proj.weight'),
      upWeight: m(p + 'mlp.up_proj.weight'),
      downWeight: m(p + 'mlp.down_proj.weight'),
    });
  }
  const embed = m('model.embed_tokens.weight');
  return {
    embed,
    layers,
    finalNorm: v('model.norm.weight'),
    lmHead: c.tieWordEmbeddings ? embed : m('lm_head.weight'),
  };
}

/** out(T,OC) = inp(T,C)·weight(OC,C)ᵀ + bias in the weight's dtype (bf16: fp32 accumulation). */
export function linearW(
  be: Backend,
  out: Float32Array,
  inp: Float32Array,
  weight: Weight,
  bias: Float32Array | null,
  T: number,
  C: number,
  OC: number,
): void {
  if (weight instanceof Uint16Array) be.linearForwardBf16(out, inp, weight, bias, T, C, OC);
  else be.linearForward(out, inp, weight, bias, T, C, OC);
}

/** linearBackward for a weight in either dtype (bf16: dout and inp rounded, fp32 accumulation). */
export function linearBackwardW(
  be: Backend,
  dinp: Float32Array | null,
  dweight: Float32Array,
  dbias: Float32Array | null,
  dout: Float32Array,
  inp: Float32Array,
  weight: Weight,
  T: number,
  C: number,
  OC: number,
): void {
  if (weight instanceof Uint16Array) be.linearBackwardBf16(dinp, dweight, dbias, dout, inp, weight, T, C, OC);
  else be.linearBackward(dinp, dweight, dbias, dout, inp, weight, T, C, OC);
}

/** out(T,C) = wte[ids[t]] for a table in either dtype (bf16 rows widened to fp32, exactly). */
export function embedW(be: Backend, out: Float32Array, ids: Int32Array, wte: Weight, T: number, C: number): void {
  if (!(wte instanceof Uint16Array)) return be.embeddingForward(out, ids, wte, T, C);
  const V = wte.length / C,
    o32 = new Uint32Array(out.buffer, out.byteOffset, T * C);
  for (let t = 0; t < T; t++) {
    const id = ids[t];
    if (!(id >= 0 && id < V)) fail(`embedding: ids[${t}] = ${id} is outside [0, ${V})`);
    for (let c = 0, r = id * C, o = t * C; c < C; c++) o32[o + c] = wte[r + c] << 16;
  }
}
