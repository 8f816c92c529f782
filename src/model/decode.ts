// Inference-only forward with a KV cache: prefill packs several prompts into one pass (packed
// causal attention) and stores their keys/values in cache slots; each decode step then runs B
// new tokens, one per active slot, through the linear layers as B rows and attends to the cache
// (backend.attentionDecode). Only the positions whose next token is wanted reach the lm_head.
import type { Backend } from '../engine/backend.ts';
import { fail } from '../util/errors.ts';
import type { Precision } from '../engine/precision.ts';
import type { ModelConfig } from './config.ts';
import { blockForward, decoderShape, type BlockBuffers, type DecoderShape } from './block.ts';
import { embedW, linearW, type ModelViews, type Weight } from './params.ts';

export { decoderShape, type DecoderShape } from './block.ts';

/**
 * Keys and values of S sequences ("slots"), each up to maxLen positions, per layer:
 * k[l], v[l] of shape (S, maxLen, NKV*HD), the layout of Backend.attentionDecode.
 */
export class KvCache {
  /** fp32, or bf16 bits (Uint16Array) for a bf16 cache: half the memory. */
  readonly k: KvTensor[];
  readonly v: KvTensor[];
  /** Values per position: NKV*HD. */
  readonly rowSize: number;

  constructor(
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
      this.k.push(dtype === 'bf16' ? new Uint16Array(n) : new Float32Array(n));
      this.v.push(dtype === 'bf16' ? new Uint16Array(n) : new Float32Array(n));
    }
  }

  /** Bytes held by the cache. */
  get bytes(): number {
    return 2 * this.shape.L * this.slots * this.maxLen * this.rowSize * (this.dtype === 'bf16' ? 2 : 4);
  }

  /** Rows k, v (n·rowSize values) of layer l stored at value offset `at` (rounded to bf16 in a bf16 cache). */
  write(be: Backend, l: number, at: number, k: Float32Array, v: Float32Array): void {
    for (const [dst, src] of [
      [this.k[l], k],
      [this.v[l], v],
    ] as const) {
      if (dst instanceof Uint16Array) be.roundBf16(dst.subarray(at, at + src.length), src, src.length);
      else dst.set(src, at);
    }
  }

  /** attentionDecode against layer l's cache, in its dtype. */
  attend(
    be: Backend,
    l: number,
    out: Float32Array,
    q: Float32Array,
    slots: Int32Array,
    lens: Int32Array,
    B: number,
  ): void {
    const { NH, NKV, HD } = this.shape,
      k = this.k[l],
      v = this.v[l];
    if (k instanceof Uint16Array)
      be.attentionDecodeBf16(out, q, k, v as Uint16Array, slots, lens, B, NH, NKV, HD, this.maxLen);
    else be.attentionDecode(out, q, k, v as Float32Array, slots, lens, B, NH, NKV, HD, this.maxLen);
  }

  /** Positions 0..len−1 of slot `from` copied into slot `to` (samples sharing a prompt). */
  copySlot(from: number, to: number, len: number): void {
    const R = this.rowSize,
      M = this.maxLen;
    for (let l = 0; l < this.shape.L; l++) {
      this.k[l].copyWithin(to * M * R, from * M * R, (from * M + len) * R);
      this.v[l].copyWithin(to * M * R, from * M * R, (from * M + len) * R);
    }
  }

  /** A copy of positions 0..len−1 of `slot`, to restore into another slot later. */
  savePrefix(slot: number, len: number): KvPrefix {
    const R = this.rowSize,
      M = this.maxLen;
    const k: KvTensor[] = [],
      v: KvTensor[] = [];
    for (let l = 0; l < this.shape.L; l++) {
      k.push(this.k[l].slice(slot * M * R, (slot * M + len) * R));
      v.push(this.v[l].slice(slot * M * R, (slot * M + len) * R));
    }
    return { len, k, v };
  }

  restorePrefix(prefix: KvPrefix, slot: number): void {
    const off = slot * this.maxLen * this.rowSize;
    for (let l = 0; l < this.shape.L; l++) {
      (this.k[l] as Float32Array).set(prefix.k[l] as Float32Array, off); // same dtype: savePrefix of a cache like this one
      (this.v[l] as Float32Array).set(prefix.v[l] as Float32Array, off);
    }
  }
}

/** A cache tensor: fp32, or bf16 bits. */
export type KvTensor = Float32Array | Uint16Array;

/** Keys/values of one prompt kept outside the cache: k[l], v[l] of shape (len, NKV*HD), in the cache's dtype. */
export interface KvPrefix {
  len: number;
  k: KvTensor[];
  v: KvTensor[];
}

/** Activation buffers for up to `rows` tokens, grown on demand. */
class Activations {
  rows = 0;
  x = new Float32Array(0); // (T, C) residual stream
  xn = new Float32Array(0); // (T, C) normalised input of a sublayer
  rstd = new Float32Array(0); // (T)
  q = new Float32Array(0); // (T, NH*HD)
  k = new Float32Array(0); // (T, NKV*HD)
  v = new Float32Array(0); // (T, NKV*HD)
  att = new Float32Array(0); // (T, NH*HD)
  lse = new Float32Array(0); // (T, NH)
  proj = new Float32Array(0); // (T, C)
  gate = new Float32Array(0); // (T, I)
  up = new Float32Array(0); // (T, I)
  h = new Float32Array(0); // (T, I) silu(gate)·up
  /** The same buffers as blockForward sees them: the residual stream x updated in place, xn and rstd shared by both norms. */
  block: BlockBuffers | null = null;

  ensure(rows: number, s: DecoderShape): void {
    if (rows <= this.rows) return;
    const { C, NH, NKV, HD, I } = s;
    this.rows = rows;
    this.x = new Float32Array(rows * C);
    this.xn = new Float32Array(rows * C);
    this.rstd = new Float32Array(rows);
    this.q = new Float32Array(rows * NH * HD);
    this.k = new Float32Array(rows * NKV * HD);
    this.v = new Float32Array(rows * NKV * HD);
    this.att = new Float32Array(rows * NH * HD);
    this.lse = new Float32Array(rows * NH);
    this.proj = new Float32Array(rows * C);
    this.gate = new Float32Array(rows * I);
    this.up = new Float32Array(rows * I);
    this.h = new Float32Array(rows * I);
    this.block = {
      resid: this.x,
      ln1: this.xn,
      rstd1: this.rstd,
      q: this.q,
      k: this.k,
      v: this.v,
      att: this.att,
      resid2: this.x,
      ln2: this.xn,
      rstd2: this.rstd,
      gate: this.gate,
      up: this.up,
      mlp: this.h,
      proj: this.proj,
      out: this.x,
    };
  }
}

export class KvDecoder {
  readonly cache: KvCache;
  readonly shape: DecoderShape;
  private readonly act = new Activations();
  private headIn = new Float32Array(0); // (B, C) residual rows that reach the lm_head
  private headNorm = new Float32Array(0); // (B, C) the same, final-normed
  private logitsBuf = new Float32Array(0); // (B, V)
  private rstdHead = new Float32Array(0); // (B)
  private lens = new Int32Array(0); // (B) keys per slot after this step, for attentionDecode
  private headRows = new Int32Array(0); // (B) 0..B−1: every decode row reaches the lm_head

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
    this.cache = new KvCache(this.shape, slots, maxLen, weights.embed instanceof Uint16Array ? 'bf16' : 'fp32');
  }

  /**
   * Prefill: prompts ids (packed, prompt p = ids[cu[p] .. cu[p+1])) run through the model in one
   * pass; their keys/values go to cache slot slots[p] at positions 0..len−1. Returns the logits
   * of each prompt's last position, (P, V), valid until the next call.
   */
  prefill(ids: Int32Array, cuSeqlens: Int32Array, slots: Int32Array, P: number): Float32Array {
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
    const { NH, NKV, HD } = this.shape;
    const R = NKV * HD,
      M = this.cache.maxLen;
    this.layersForward(ids, positions, T, (l, a) => {
      // packed causal attention over the prompts, then their k/v rows into their slots
      this.backend.attentionForward(a.att, a.lse, a.q, a.k, a.v, cuSeqlens, P, T, NH, NKV, HD);
      for (let p = 0; p < P; p++) {
        const t0 = cuSeqlens[p],
          len = cuSeqlens[p + 1] - t0;
        this.cache.write(
          this.backend,
          l,
          slots[p] * M * R,
          a.k.subarray(t0 * R, (t0 + len) * R),
          a.v.subarray(t0 * R, (t0 + len) * R),
        );
      }
    });
    return this.head(last, P);
  }

  /**
   * One decode step: token b (ids[b]) sits at position positions[b] of slot slots[b], whose
   * earlier positions are cached. Writes its k/v there and returns next-token logits (B, V),
   * valid until the next call.
   */
  step(ids: Int32Array, slots: Int32Array, positions: Int32Array, B: number): Float32Array {
    const { NKV, HD } = this.shape;
    const R = NKV * HD,
      M = this.cache.maxLen;
    // Per-step index buffers are kept (grown on demand): a step should allocate nothing.
    if (this.lens.length < B) {
      this.lens = new Int32Array(B);
      this.headRows = Int32Array.from({ length: B }, (_, b) => b);
    }
    const lens = this.lens;
    for (let b = 0; b < B; b++) {
      if (positions[b] >= M) fail(`decode: position ${positions[b]} is past the cache length ${M}`);
      lens[b] = positions[b] + 1;
    }
    this.layersForward(ids, positions, B, (l, a) => {
      for (let b = 0; b < B; b++) {
        this.cache.write(
          this.backend,
          l,
          (slots[b] * M + positions[b]) * R,
          a.k.subarray(b * R, (b + 1) * R),
          a.v.subarray(b * R, (b + 1) * R),
        );
      }
      this.cache.attend(this.backend, l, a.att, a.q, slots, lens, B);
    });
    return this.head(this.headRows, B);
  }

  /**
   * Embedding and every layer over T rows; `attend(l, act)` fills act.att (T, NH*HD) from
   * act.q/k/v after RoPE (and stores k/v wherever the caller caches them).
   */
  private layersForward(
    ids: Int32Array,
    positions: Int32Array,
    T: number,
    attend: (l: number, a: Activations) => void,
  ): void {
    const s = this.shape,
      w = this.weights,
      be = this.backend;
    const a = this.act;
    a.ensure(T, s);
    embedW(be, a.x, ids, w.embed, T, s.C);
    for (let l = 0; l < s.L; l++) blockForward(be, s, w.layers[l], a.block!, positions, T, () => attend(l, a));
  }

  /** Final norm and lm_head on the residual rows `rows` only: (B, V). */
  private head(rows: Int32Array, B: number): Float32Array {
    const { C, V, eps } = this.shape;
    if (this.headIn.length < B * C) {
      this.headIn = new Float32Array(B * C);
      this.headNorm = new Float32Array(B * C);
      this.rstdHead = new Float32Array(B);
      this.logitsBuf = new Float32Array(B * V);
    }
    for (let b = 0; b < B; b++) this.headIn.set(this.act.x.subarray(rows[b] * C, (rows[b] + 1) * C), b * C);
    this.backend.rmsnormForward(this.headNorm, this.rstdHead, this.headIn, this.weights.finalNorm, B, C, eps);
    linearW(this.backend, this.logitsBuf, this.headNorm, this.weights.lmHead, null, B, C, V);
    return this.logitsBuf;
  }
}
