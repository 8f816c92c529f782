// Inference-only forward with a KV cache: prefill packs several prompts into one pass (packed
// causal attention) and stores their keys/values in cache slots; each decode step then runs B
// new tokens, one per active slot, through the linear layers as B rows and attends to the cache
// (backend.attentionDecode). Only the positions whose next token is wanted reach the lm_head.
// Weights, cache and activations are backend tensors: a step uploads its ids, positions, slots and
// lengths and returns the logits as a tensor, so nothing else crosses between host and backend.
import type { Backend, Tensor } from '../engine/backend.ts';
import { fail } from '../util/errors.ts';
import type { Precision } from '../engine/precision.ts';
import type { ModelConfig } from './config.ts';
import { blockForward, decoderShape, type BlockBuffers, type DecoderShape } from './block.ts';
import { embedW, linearW, type F32, type I32, type ModelViews, type Weight } from './params.ts';

export { decoderShape, type DecoderShape } from './block.ts';

/** A cache tensor: fp32, or bf16 (half the memory). */
export type KvTensor = Tensor<'f32'> | Tensor<'bf16'>;

/**
 * Keys and values of S sequences ("slots"), each up to maxLen positions, per layer:
 * k[l], v[l] of shape (S, maxLen, NKV*HD), the layout of Backend.attentionDecode.
 */
export class KvCache {
  readonly k: KvTensor[];
  readonly v: KvTensor[];
  /** Values per position: NKV*HD. */
  readonly rowSize: number;

  constructor(
    private readonly be: Backend,
    readonly shape: DecoderShape,
    readonly slots: number,
    readonly maxLen: number,
    readonly dtype: Precision = 'fp32',
  ) {
    this.rowSize = shape.NKV * shape.HD;
    const n = slots * maxLen * this.rowSize;
    this.k = [];
    this.v = [];
    for (let l = 0; l < shape.L; l++) {
      this.k.push(dtype === 'bf16' ? be.alloc('bf16', n) : be.alloc('f32', n));
      this.v.push(dtype === 'bf16' ? be.alloc('bf16', n) : be.alloc('f32', n));
    }
  }

  /** Bytes held by the cache. */
  get bytes(): number {
    return 2 * this.shape.L * this.slots * this.maxLen * this.rowSize * (this.dtype === 'bf16' ? 2 : 4);
  }

  /** Rows k, v (same length) of layer l stored at value offset `at` (rounded to bf16 in a bf16 cache). */
  write(l: number, at: number, k: F32, v: F32): void {
    store(this.be, this.k[l], at, k);
    store(this.be, this.v[l], at, v);
  }

  /** attentionDecode against layer l's cache, in its dtype. */
  attend(l: number, out: F32, q: F32, slots: I32, lens: I32, B: number): void {
    const { NH, NKV, HD } = this.shape,
      k = this.k[l],
      v = this.v[l];
    if (k.dtype === 'bf16')
      this.be.attentionDecodeBf16(out, q, k, v as Tensor<'bf16'>, slots, lens, B, NH, NKV, HD, this.maxLen);
    else this.be.attentionDecode(out, q, k, v as Tensor<'f32'>, slots, lens, B, NH, NKV, HD, this.maxLen);
  }

  /** Positions 0..len−1 of slot `from` copied into slot `to` (samples sharing a prompt). */
  copySlot(from: number, to: number, len: number): void {
    const n = len * this.rowSize,
      stride = this.maxLen * this.rowSize;
    for (const t of [...this.k, ...this.v])
      this.be.copy(this.be.view(t, to * stride, n), this.be.view(t, from * stride, n));
  }

  /** A copy of positions 0..len−1 of `slot` (on the backend), to restore into another slot later. */
  savePrefix(slot: number, len: number): KvPrefix {
    const n = len * this.rowSize,
      off = slot * this.maxLen * this.rowSize;
    const save = (t: KvTensor): KvTensor => {
      const out = t.dtype === 'bf16' ? this.be.alloc('bf16', n) : this.be.alloc('f32', n);
      this.be.copy(out, this.be.view(t, off, n));
      return out;
    };
    return { len, k: this.k.map(save), v: this.v.map(save) };
  }

  restorePrefix(prefix: KvPrefix, slot: number): void {
    const off = slot * this.maxLen * this.rowSize;
    for (let l = 0; l < this.shape.L; l++) {
      this.be.copy(this.be.view(this.k[l], off, prefix.k[l].length), prefix.k[l]);
      this.be.copy(this.be.view(this.v[l], off, prefix.v[l].length), prefix.v[l]);
    }
  }
}

/** src (f32) into cache tensor dst at `at`: copied, or rounded to bf16. */
function store(be: Backend, dst: KvTensor, at: number, src: F32): void {
  if (dst.dtype === 'bf16') be.roundBf16(be.view(dst, at, src.length), src, src.length);
  else be.copy(be.view(dst, at, src.length), src);
}

/** Keys/values of one prompt kept outside the cache: k[l], v[l] of shape (len, NKV*HD), in the cache's dtype. */
export interface KvPrefix {
  len: number;
  k: KvTensor[];
  v: KvTensor[];
}

/** Activation and index tensors for up to `rows` tokens, grown on demand. */
class Activations {
  rows = 0;
  /** The buffers as blockForward sees them: the residual stream x updated in place, xn and rstd shared by both norms. */
  block!: BlockBuffers;
  lse!: F32; // (T, NH) prefill's attention log-sum-exp (unused after)
  ids!: I32; // (T)
  positions!: I32; // (T)
  cuSeqlens!: I32; // (T+1)
  slots!: I32; // (T) a step's slot per row
  lens!: I32; // (T) a step's keys per slot after the step
  rows32!: I32; // (T) prefill: the row of each prompt's last token
  headNorm!: F32; // (T, C) final-normed rows that reach the lm_head
  rstdHead!: F32; // (T)
  headIn!: F32; // (T, C) prefill: the last rows gathered
  logits!: F32; // (T, V)

  ensure(be: Backend, rows: number, s: DecoderShape): void {
    if (rows <= this.rows) return;
    const { C, NH, NKV, HD, I, V } = s;
    const f = (n: number): F32 => be.alloc('f32', n),
      i = (n: number): I32 => be.alloc('i32', n);
    this.rows = rows;
    const x = f(rows * C), // (T, C) residual stream
      xn = f(rows * C), // (T, C) normalised input of a sublayer
      rstd = f(rows), // (T)
      fused = f(rows * Math.max((NH + 2 * NKV) * HD, 2 * I)); // (T, QD+2KD) then (T, 2I)
    this.block = {
      resid: x,
      ln1: xn,
      rstd1: rstd,
      qkv: fused,
      gateUp: fused,
      q: f(rows * NH * HD),
      k: f(rows * NKV * HD),
      v: f(rows * NKV * HD),
      att: f(rows * NH * HD),
      resid2: x,
      ln2: xn,
      rstd2: rstd,
      mlp: f(rows * I),
      proj: f(rows * C),
      out: x,
    };
    this.lse = f(rows * NH);
    [this.ids, this.positions, this.cuSeqlens, this.slots, this.lens, this.rows32] = [
      i(rows),
      i(rows),
      i(rows + 1),
      i(rows),
      i(rows),
      i(rows),
    ];
    [this.headNorm, this.rstdHead, this.headIn, this.logits] = [f(rows * C), f(rows), f(rows * C), f(rows * V)];
  }
}

export class KvDecoder {
  readonly cache: KvCache;
  readonly shape: DecoderShape;
  private readonly act = new Activations();
  private lens = new Int32Array(0); // (B) host: keys per slot after this step

  constructor(
    readonly backend: Backend,
    config: ModelConfig,
    /** Parameter views (params.ts modelViews, or bf16ModelViews: matrices in bf16). */
    readonly weights: ModelViews<Weight>,
    slots: number,
    maxLen: number,
  ) {
    this.shape = decoderShape(config);
    if (weights.layers.length !== this.shape.L)
      fail(`decoder weights have ${weights.layers.length} layers, the config says ${this.shape.L}`);
    // bf16 weights (a bf16 inference model) keep a bf16 cache: half the memory, keys and values
    // rounded as they are stored.
    this.cache = new KvCache(backend, this.shape, slots, maxLen, weights.embed.dtype === 'bf16' ? 'bf16' : 'fp32');
  }

  /**
   * Prefill: prompts ids (packed, prompt p = ids[cu[p] .. cu[p+1])) run through the model in one
   * pass; their keys/values go to cache slot slots[p] at positions 0..len−1. Returns the logits
   * of each prompt's last position, (P, V), valid until the next call.
   */
  prefill(ids: Int32Array, cuSeqlens: Int32Array, slots: Int32Array, P: number): F32 {
    const T = cuSeqlens[P];
    const positions = new Int32Array(T);
    const last = new Int32Array(P);
    for (let p = 0; p < P; p++) {
      const len = cuSeqlens[p + 1] - cuSeqlens[p];
      if (len <= 0) fail('prefill: every prompt needs at least one token');
      if (len > this.cache.maxLen)
        fail(`prefill: a prompt of ${len} tokens exceeds the cache length ${this.cache.maxLen}`);
      for (let t = 0; t < len; t++) positions[cuSeqlens[p] + t] = t;
      last[p] = cuSeqlens[p + 1] - 1;
    }
    const { NH, NKV, HD, C } = this.shape;
    const R = NKV * HD,
      M = this.cache.maxLen,
      be = this.backend,
      a = this.act;
    a.ensure(be, T, this.shape);
    be.upload(a.cuSeqlens, cuSeqlens.subarray(0, P + 1));
    this.layersForward(ids.subarray(0, T), positions, T, (l, b) => {
      // packed causal attention over the prompts, then their k/v rows into their slots
      be.attentionForward(b.att, a.lse, b.q, b.k, b.v, a.cuSeqlens, P, T, NH, NKV, HD);
      for (let p = 0; p < P; p++) {
        const t0 = cuSeqlens[p],
          n = (cuSeqlens[p + 1] - t0) * R;
        this.cache.write(l, slots[p] * M * R, be.view(b.k, t0 * R, n), be.view(b.v, t0 * R, n));
      }
    });
    be.upload(a.rows32, last);
    be.embeddingForward(a.headIn, a.rows32, a.block.resid, P, C); // the last rows, gathered
    return this.head(a.headIn, P);
  }

  /**
   * One decode step: token b (ids[b]) sits at position positions[b] of slot slots[b], whose
   * earlier positions are cached. Writes its k/v there and returns next-token logits (B, V),
   * valid until the next call. Uploads ids, positions, slots and lengths (4·B int32s) and nothing else.
   */
  step(ids: Int32Array, slots: Int32Array, positions: Int32Array, B: number): F32 {
    const R = this.shape.NKV * this.shape.HD,
      M = this.cache.maxLen,
      be = this.backend,
      a = this.act;
    if (this.lens.length < B) this.lens = new Int32Array(B);
    const lens = this.lens.subarray(0, B);
    for (let b = 0; b < B; b++) {
      if (positions[b] >= M) fail(`decode: position ${positions[b]} is past the cache length ${M}`);
      lens[b] = positions[b] + 1;
    }
    a.ensure(be, B, this.shape);
    be.upload(a.slots, slots.subarray(0, B));
    be.upload(a.lens, lens);
    // Row b of k and v, the same tensors at every layer: their views are made once per step.
    const kRows: F32[] = [],
      vRows: F32[] = [];
    for (let b = 0; b < B; b++) {
      kRows.push(be.view(a.block.k, b * R, R));
      vRows.push(be.view(a.block.v, b * R, R));
    }
    this.layersForward(ids.subarray(0, B), positions.subarray(0, B), B, (l, blk) => {
      for (let b = 0; b < B; b++) this.cache.write(l, (slots[b] * M + positions[b]) * R, kRows[b], vRows[b]);
      this.cache.attend(l, blk.att, blk.q, a.slots, a.lens, B);
    });
    return this.head(a.block.resid, B); // every row reaches the lm_head
  }

  /**
   * Uploads ids and positions (T); embedding and every layer over T rows; `attend(l, b)` fills
   * b.att (T, NH*HD) from b.q/k/v after RoPE (and stores k/v wherever the caller caches them).
   */
  private layersForward(
    ids: Int32Array,
    positions: Int32Array,
    T: number,
    attend: (l: number, b: BlockBuffers) => void,
  ): void {
    const s = this.shape,
      w = this.weights,
      be = this.backend,
      a = this.act;
    be.upload(a.ids, ids);
    be.upload(a.positions, positions);
    embedW(be, a.block.resid, a.ids, w.embed, T, s.C);
    for (let l = 0; l < s.L; l++) blockForward(be, s, w.layers[l], a.block, a.positions, T, () => attend(l, a.block));
  }

  /** Final norm and lm_head on the first B rows of `x` (B, C): logits (B, V). */
  private head(x: F32, B: number): F32 {
    const { C, V, eps } = this.shape,
      a = this.act,
      be = this.backend;
    be.rmsnormForward(a.headNorm, a.rstdHead, x, this.weights.finalNorm, B, C, eps);
    linearW(be, a.logits, a.headNorm, this.weights.lmHead, null, B, C, V);
    return be.view(a.logits, 0, B * V);
  }
}
