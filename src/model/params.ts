// The parameter layout, llm.c style: every parameter lives in ONE flat f32 tensor (and its
// gradient in another of the same layout), described by a table of (Hugging Face name, shape,
// offset). Named views are backend views of whichever flat tensor is passed in. For bf16 inference
// the flat tensor is bf16: the matrices are views of it, the norms and biases small f32 tensors
// widened from it on the backend (they feed fp32 arithmetic).
import type { Backend, Tensor } from '../engine/backend.ts';
import type { Bf16Backward } from '../engine/precision.ts';
import { Rng } from '../util/rng.ts';
import type { ModelConfig } from './config.ts';

/** An f32 tensor (activations, norms, biases, gradients). */
export type F32 = Tensor<'f32'>;
/** An i32 tensor (ids, positions, sequence offsets). */
export type I32 = Tensor<'i32'>;
/** A weight matrix: its dtype says fp32 or bf16 (src/engine/bf16.ts). */
export type Weight = Tensor<'f32'> | Tensor<'bf16'>;

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
 * matrices are W (fp32 or bf16), norms and biases always fp32. q_proj, k_proj and v_proj are
 * adjacent in the layout, so they are one fused (QD+2KD, C) matrix (and one bias); gate_proj and
 * up_proj likewise one (2I, C) matrix: one GEMM each instead of three and two.
 */
export interface LayerViews<W extends Weight = F32> {
  inputNorm: F32; // (C)
  qkvWeight: W; // (QD+2KD, C) q_proj, k_proj, v_proj stacked
  qkvBias: F32 | null; // (QD+2KD)
  oWeight: W; // (C, QD)
  postNorm: F32; // (C)
  gateUpWeight: W; // (2I, C) gate_proj over up_proj
  downWeight: W; // (C, I)
}

export interface ModelViews<W extends Weight = F32> {
  embed: W; // (V, C)
  layers: LayerViews<W>[];
  finalNorm: F32; // (C)
  /** (V, C); the same memory as `embed` when the embeddings are tied. */
  lmHead: W;
}

/**
 * The table of every parameter (lm_head.weight only when untied), in Hugging Face order except
 * within a layer, where q/k/v weights precede their biases so that each fused group is contiguous.
 */
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
    // q, k, v (then their biases) and gate, up adjacent: the fused projections of LayerViews.
    add(p + 'self_attn.q_proj.weight', [QD, C]);
    add(p + 'self_attn.k_proj.weight', [KD, C]);
    add(p + 'self_attn.v_proj.weight', [KD, C]);
    if (c.attentionBias) {
      add(p + 'self_attn.q_proj.bias', [QD]);
      add(p + 'self_attn.k_proj.bias', [KD]);
      add(p + 'self_attn.v_proj.bias', [KD]);
    }
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

/**
 * Random initial parameters (layout order) as transformers initialises them: normal(0,
 * initializer_range) weights, norms 1, biases 0, drawn from `seed`.
 */
export function initialParams(config: ModelConfig, seed: number): Float32Array {
  const layout = paramLayout(config);
  const raw = config.raw.initializer_range;
  const std = typeof raw === 'number' ? raw : 0.02;
  const rng = new Rng(seed);
  const host = new Float32Array(layout.total);
  for (const spec of layout.specs) {
    const p = host.subarray(spec.offset, spec.offset + spec.size);
    if (spec.name.endsWith('norm.weight')) p.fill(1);
    else if (spec.name.endsWith('.bias')) p.fill(0);
    else for (let i = 0; i < p.length; i++) p[i] = rng.normal() * std;
  }
  return host;
}

/** The view of parameters `names` in `buf` (a tensor of `layout.total` elements): adjacent ones form one view. */
export function paramView<D extends Weight['dtype']>(
  be: Backend,
  layout: ParamLayout,
  buf: Tensor<D>,
  ...names: string[]
): Tensor<D> {
  const specs = names.map((name) => {
    const s = layout.byName.get(name);
    if (!s) throw new Error(`no parameter ${name}`);
    return s;
  });
  for (let i = 1; i < specs.length; i++)
    if (specs[i].offset !== specs[i - 1].offset + specs[i - 1].size)
      throw new Error(`parameters ${names.join(', ')} are not adjacent in the layout`);
  return be.view(
    buf,
    specs[0].offset,
    specs.reduce((n, s) => n + s.size, 0),
  );
}

/** Named views of every parameter in `buf` (the parameters, their gradients, or a moment). */
export function modelViews(be: Backend, c: ModelConfig, layout: ParamLayout, buf: F32): ModelViews {
  const v = (...names: string[]): F32 => paramView(be, layout, buf, ...names);
  return viewsOf(c, v, v);
}

/**
 * Views of bf16 parameters `buf` (layout order): matrices view it, norms and biases are f32
 * tensors that `widen()` refills from it (after every upload of new weights).
 */
export function bf16ModelViews(
  be: Backend,
  c: ModelConfig,
  layout: ParamLayout,
  buf: Tensor<'bf16'>,
): { w: ModelViews<Tensor<'bf16'>>; widen: () => void } {
  const small: [Tensor<'bf16'>, F32][] = [];
  const widened = (...names: string[]): F32 => {
    const src = paramView(be, layout, buf, ...names),
      dst = be.alloc('f32', src.length);
    small.push([src, dst]);
    return dst;
  };
  const w = viewsOf(c, (...names) => paramView(be, layout, buf, ...names), widened);
  const widen = (): void => {
    for (const [src, dst] of small) be.widenBf16(dst, src, src.length);
  };
  widen();
  return { w, widen };
}

/** Mixed precision: matrices view the bf16 copy p16, norms and biases the fp32 master p32 itself. */
export function mixedModelViews(
  be: Backend,
  c: ModelConfig,
  layout: ParamLayout,
  p16: Tensor<'bf16'>,
  p32: F32,
): ModelViews<Tensor<'bf16'>> {
  return viewsOf(
    c,
    (...names) => paramView(be, layout, p16, ...names),
    (...names) => paramView(be, layout, p32, ...names),
  );
}

/** The views of a model: m(...names) gives a matrix (several adjacent ones fused), v(...names) an f32 norm or bias. */
function viewsOf<W extends Weight>(
  c: ModelConfig,
  m: (...names: string[]) => W,
  v: (...names: string[]) => F32,
): ModelViews<W> {
  const layers: LayerViews<W>[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const qkv = (kind: string) => ['q', 'k', 'v'].map((x) => `${p}self_attn.${x}_proj.${kind}`);
    layers.push({
      inputNorm: v(p + 'input_layernorm.weight'),
      qkvWeight: m(...qkv('weight')),
      qkvBias: c.attentionBias ? v(...qkv('bias')) : null,
      oWeight: m(p + 'self_attn.o_proj.weight'),
      postNorm: v(p + 'post_attention_layernorm.weight'),
      gateUpWeight: m(p + 'mlp.gate_proj.weight', p + 'mlp.up_proj.weight'),
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
  out: F32,
  inp: F32,
  weight: Weight,
  bias: F32 | null,
  T: number,
  C: number,
  OC: number,
): void {
  if (weight.dtype === 'bf16') be.linearForwardBf16(out, inp, weight, bias, T, C, OC);
  else be.linearForward(out, inp, weight, bias, T, C, OC);
}

/**
 * linearBackward for a weight in either dtype (bf16: dout and inp rounded or split into bf16 pairs
 * as bf16Backward says, fp32 accumulation).
 */
export function linearBackwardW(
  be: Backend,
  dinp: F32 | null,
  dweight: F32,
  dbias: F32 | null,
  dout: F32,
  inp: F32,
  weight: Weight,
  T: number,
  C: number,
  OC: number,
  bf16Backward: Bf16Backward,
): void {
  if (weight.dtype === 'bf16')
    be.linearBackwardBf16(dinp, dweight, dbias, dout, inp, weight, T, C, OC, bf16Backward === 'split');
  else be.linearBackward(dinp, dweight, dbias, dout, inp, weight, T, C, OC);
}

/** out(T,C) = wte[ids[t]] for a table in either dtype (bf16 rows widened to fp32, exactly). */
export function embedW(be: Backend, out: F32, ids: I32, wte: Weight, T: number, C: number): void {
  if (wte.dtype === 'bf16') be.embeddingForwardBf16(out, ids, wte, T, C);
  else be.embeddingForward(out, ids, wte, T, C);
}
