// The parameter layout, llm.c style: every parameter lives in ONE flat Float32Array (and its
// gradient in another of the same layout), described by a table of (Hugging Face name, shape,
// offset). Named views are subarrays of whichever flat buffer is passed in.
import type { ModelConfig } from './config.ts';

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

/** The parameters of one decoder layer (QD = NH·HD, KD = NKV·HD, I = intermediate size). */
export interface LayerViews {
  inputNorm: Float32Array; // (C)
  qWeight: Float32Array; // (QD, C)
  qBias: Float32Array | null; // (QD)
  kWeight: Float32Array; // (KD, C)
  kBias: Float32Array | null; // (KD)
  vWeight: Float32Array; // (KD, C)
  vBias: Float32Array | null; // (KD)
  oWeight: Float32Array; // (C, QD)
  postNorm: Float32Array; // (C)
  gateWeight: Float32Array; // (I, C)
  upWeight: Float32Array; // (I, C)
  downWeight: Float32Array; // (C, I)
}

export interface ModelViews {
  embed: Float32Array; // (V, C)
  layers: LayerViews[];
  finalNorm: Float32Array; // (C)
  /** (V, C); the same memory as `embed` when the embeddings are tied. */
  lmHead: Float32Array;
}

/** The table of every parameter in Hugging Face order (lm_head.weight only when untied). */
export function paramLayout(c: ModelConfig): ParamLayout {
  const C = c.hiddenSize, QD = c.numHeads * c.headDim, KD = c.numKvHeads * c.headDim, I = c.intermediateSize;
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
  const layers: LayerViews[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    layers.push({
      inputNorm: v(p + 'input_layernorm.weight'),
      qWeight: v(p + 'self_attn.q_proj.weight'),
      qBias: c.attentionBias ? v(p + 'self_attn.q_proj.bias') : null,
      kWeight: v(p + 'self_attn.k_proj.weight'),
      kBias: c.attentionBias ? v(p + 'self_attn.k_proj.bias') : null,
      vWeight: v(p + 'self_attn.v_proj.weight'),
      vBias: c.attentionBias ? v(p + 'self_attn.v_proj.bias') : null,
      oWeight: v(p + 'self_attn.o_proj.weight'),
      postNorm: v(p + 'post_attention_layernorm.weight'),
      gateWeight: v(p + 'mlp.gate_proj.weight'),
      upWeight: v(p + 'mlp.up_proj.weight'),
      downWeight: v(p + 'mlp.down_proj.weight'),
    });
  }
  const embed = v('model.embed_tokens.weight');
  return { embed, layers, finalNorm: v('model.norm.weight'), lmHead: c.tieWordEmbeddings ? embed : v('lm_head.weight') };
}
