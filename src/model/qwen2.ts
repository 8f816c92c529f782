// The Qwen2 (and Llama) decoder over packed variable-length sequences: forward keeps the
// activations backward needs, backward calls the same kernels in exactly the reverse order and
// accumulates into one flat gradient buffer. The loss head never materialises (T, V) logits:
// it runs in chunks of rows that have a target and keeps only each token's logprob and entropy.
// A model holds fp32 parameters (training, scoring, generation) or, for inference only, bf16
// ones (precision "bf16": GEMMs on bf16 weights with fp32 accumulation; norms, attention's
// softmax and the loss head in fp32), with no fp32 copy of the matrices. An fp32 model can also
// compute in bf16 (mixed precision, setComputePrecision): each forward rounds the fp32 master
// weights into a bf16 copy that the GEMMs of forward and backward use; gradients, norms, the
// loss head and the optimiser stay fp32.
import path from 'node:path';
import type { Backend } from '../engine/backend.ts';
import { fromBf16, toBf16 } from '../engine/bf16.ts';
import { getBackend } from '../engine/index.ts';
import { noteBf16Speed, type Precision } from '../engine/precision.ts';
import { fail } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { checkBatch, type PackedBatch } from './batch.ts';
import { blockBackward, blockForward, decoderShape, type BlockBuffers, type DecoderShape } from './block.ts';
import { loadConfig, type ModelConfig } from './config.ts';
import { defaultGenerationConfig, readGenerationConfig, readWeights, readWeightsBf16, writeModelDir } from './io.ts';
import {
  bf16ModelViews,
  embedW,
  linearBackwardW,
  linearW,
  mixedModelViews,
  modelViews,
  paramLayout,
  type ModelViews,
  type ParamLayout,
  type Weight,
} from './params.ts';

export type { PackedBatch } from './batch.ts';

/**
 * Rows of the loss head computed at once: (HEAD_ROWS, V) logits is the largest buffer (311 MB at
 * the 0.5B's V = 151936). Each chunk re-reads lm_head (V, C) and re-writes its gradient, so fewer,
 * larger chunks pay that less often: 512 rows took 4.7 s per 512 rows of the 0.5B head's three
 * GEMMs vs 5.3-5.7 s as four 128-row chunks.
 */
const HEAD_ROWS = 512;

/**
 * Activations of one layer kept for backward; every buffer holds `cap` tokens. Under activation
 * checkpointing only `resid` is the layer's own: the others are one set shared by all layers,
 * refilled by recomputing the layer in backward.
 */
type LayerActs = Omit<BlockBuffers, 'mlp' | 'proj' | 'out'> & {
  lse: Float32Array; // (T, NH)
};

/** Buffers shared by all layers: the final stream, the head chunk and the backward scratch. */
interface Scratch {
  residOut: Float32Array; // (T, C) stream after the last layer
  lnf: Float32Array; // (T, C) model.norm output
  rstdf: Float32Array; // (T)
  mlp: Float32Array; // (T, I) swiglu output (recomputed in backward rather than kept per layer)
  proj: Float32Array; // (T, C) o_proj / down_proj output before the residual add
  headIn: Float32Array; // (HEAD_ROWS, C) rows of lnf gathered for the head
  headLogits: Float32Array; // (HEAD_ROWS, V) logits, then dlogits in place
  headTargets: Int32Array; // (HEAD_ROWS)
  headCl: Float32Array; // (HEAD_ROWS)
  headCe: Float32Array; // (HEAD_ROWS)
  headLp: Float32Array; // (HEAD_ROWS)
  headEnt: Float32Array; // (HEAD_ROWS)
  dresid: Float32Array; // (T, C) gradient of the residual stream
  dln: Float32Array; // (T, C)
  dtmp: Float32Array; // (T, C)
  dq: Float32Array; // (T, QD)
  dk: Float32Array; // (T, KD)
  dv: Float32Array; // (T, KD)
  datt: Float32Array; // (T, QD)
  dmlp: Float32Array; // (T, I)
  dgate: Float32Array; // (T, I)
  dup: Float32Array; // (T, I)
}

export interface LoadOptions {
  backend?: Backend;
  /** fp32 (default), or bf16 for inference: the weights are read into bf16, whatever the file's dtype. */
  precision?: Precision;
}

export class Qwen2Model {
  readonly layout: ParamLayout;
  /** fp32, or bf16 (inference only: forward, logits and generation; no backward, no optimizer). */
  readonly precision: Precision;
  /** The bf16 parameters (bits, `layout` order) of a bf16 model; null in fp32. */
  readonly params16: Uint16Array | null;
  private readonly p32: Float32Array | null;
  /** Named views of the parameters in their dtype (the matrices bf16 in a bf16 model). */
  readonly w: ModelViews<Weight>;
  /** generation_config.json's content, written back on save. */
  generationConfig: Record<string, unknown>;
  /** The folder this model was loaded from (its tokenizer files travel with save()). */
  sourceDir: string | null = null;

  private readonly shape: DecoderShape;
  /** Activation checkpointing: keep each layer's input only and recompute the layer in backward. */
  private checkpointing = false;
  private cap = 0;
  private acts: LayerActs[] = [];
  private s: Scratch | null = null;
  /** The batch of the last forward, which backward differentiates. */
  private batch: PackedBatch | null = null;
  /** Token rows with a target (the rows the loss head computes), from the last forward. */
  private headRows = new Int32Array(0);

  /** params: fp32 (or none: zeros), or a Uint16Array of bf16 bits for a bf16 inference model. */
  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    params?: Float32Array | Uint16Array,
  ) {
    this.layout = paramLayout(config);
    this.shape = decoderShape(config);
    const p = params ?? new Float32Array(this.layout.total);
    if (p.length !== this.layout.total) throw new Error(`params has ${p.length} elements, layout ${this.layout.total}`);
    if (p instanceof Uint16Array) {
      this.precision = 'bf16';
      this.params16 = p;
      this.p32 = null;
      this.w = bf16ModelViews(config, this.layout, p);
      noteBf16Speed(backend);
    } else {
      this.precision = 'fp32';
      this.params16 = null;
      this.p32 = p;
      this.w = modelViews(config, this.layout, p);
    }
    this.generationConfig = defaultGenerationConfig(config);
  }

  /** All fp32 parameters, one flat buffer in `layout` order (fp32 models only). */
  get params(): Float32Array {
    if (!this.p32) fail(this.bf16Only('fp32 parameters'));
    return this.p32;
  }

  private bf16Only(what: string): string {
    return `${what}: this model holds bf16 weights for inference (precision bf16); load it with precision fp32 to train`;
  }

  /** Mixed precision: the bf16 copy of the master weights and its views (null: compute in fp32). */
  private mixed: { p16: Uint16Array; w: ModelViews<Uint16Array> } | null = null;

  /**
   * The precision of the GEMMs: bf16 on an fp32 model is mixed-precision training (fp32 master
   * weights, gradients and optimiser; a bf16 copy rounded at every forward). A bf16 model always
   * computes in bf16.
   */
  setComputePrecision(p: Precision): void {
    if (p === 'fp32' || !this.p32) {
      if (p === 'fp32' && !this.p32) fail(this.bf16Only('fp32 compute'));
      this.mixed = null;
      return;
    }
    if (this.mixed) return;
    const p16 = new Uint16Array(this.layout.total);
    this.mixed = { p16, w: mixedModelViews(this.config, this.layout, p16, this.p32) };
    noteBf16Speed(this.backend);
  }

  /**
   * Activation checkpointing (train.activationCheckpointing): forward keeps each layer's input
   * only (T·C floats per layer instead of ~(6C + 2I) T) and backward recomputes each layer first.
   * The gradients are the same numbers; a step costs one more forward.
   */
  setActivationCheckpointing(on: boolean): void {
    if (on === this.checkpointing) return;
    this.checkpointing = on;
    this.cap = 0; // reallocate the activations at the next forward
    this.acts = [];
    this.batch = null;
  }

  /** Bytes of the per-layer activation buffers now allocated (shared ones counted once). */
  get activationBytes(): number {
    const seen = new Set<Float32Array>();
    for (const a of this.acts) for (const b of Object.values(a)) seen.add(b);
    let n = 0;
    for (const b of seen) n += b.byteLength;
    return n;
  }

  get computePrecision(): Precision {
    return this.mixed || !this.p32 ? 'bf16' : 'fp32';
  }

  /** The views forward and backward compute with; in mixed precision refreshed from the master weights. */
  private forwardViews(refresh: boolean): ModelViews<Weight> {
    if (!this.mixed) return this.w;
    if (refresh) this.backend.roundBf16(this.mixed.p16, this.p32!, this.layout.total);
    return this.mixed.w;
  }

  /** A bf16 inference copy of this fp32 model (weights rounded to nearest even). */
  toBf16(): Qwen2Model {
    const m = new Qwen2Model(this.config, this.backend, toBf16(this.params));
    m.generationConfig = this.generationConfig;
    m.sourceDir = this.sourceDir;
    return m;
  }

  /** Loads a Hugging Face model folder (config.json + model.safetensors or shards). */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Qwen2Model> {
    const config = loadConfig(path.join(dir, 'config.json'));
    const layout = paramLayout(config);
    const backend = opts.backend ?? getBackend();
    const params =
      opts.precision === 'bf16'
        ? readWeightsBf16(dir, layout, config)
        : readWeights(dir, layout, config, (x, n) => backend.sumSquares(x, n));
    const model = new Qwen2Model(config, backend, params);
    model.generationConfig = readGenerationConfig(dir, config);
    model.sourceDir = path.resolve(dir);
    return model;
  }

  /** Random initialisation as transformers does: normal(0, initializer_range) weights, norms 1, biases 0. */
  static init(config: ModelConfig, seed: number, opts: LoadOptions = {}): Qwen2Model {
    const model = new Qwen2Model(config, opts.backend ?? getBackend());
    const raw = config.raw.initializer_range;
    const std = typeof raw === 'number' ? raw : 0.02;
    const rng = new Rng(seed);
    for (const spec of model.layout.specs) {
      const p = model.params.subarray(spec.offset, spec.offset + spec.size);
      if (spec.name.endsWith('norm.weight')) p.fill(1);
      else if (spec.name.endsWith('.bias')) p.fill(0);
      else for (let i = 0; i < p.length; i++) p[i] = rng.normal() * std;
    }
    return model;
  }

  /**
   * Writes a folder transformers can load, replaced atomically, with weights in `dtype` (default
   * the model's own: F32, or BF16 for a bf16 model; fp32 → bf16 rounds to nearest even, bf16 →
   * fp32 widens exactly).
   */
  save(dir: string, dtype: Precision = this.precision): void {
    const params = dtype === 'bf16' ? (this.params16 ?? toBf16(this.p32!)) : (this.p32 ?? fromBf16(this.params16!));
    writeModelDir(dir, {
      config: this.config,
      layout: this.layout,
      params,
      generationConfig: this.generationConfig,
      sourceDir: this.sourceDir,
    });
  }

  private gradBuf: Float32Array | null = null;
  private gradViews: ModelViews | null = null;

  /**
   * The gradients, same layout as params; backward accumulates here. Allocated on first use,
   * so a model that only generates or scores never pays for them.
   */
  get grads(): Float32Array {
    if (!this.p32) fail(this.bf16Only('gradients'));
    if (!this.gradBuf) this.gradBuf = new Float32Array(this.layout.total);
    return this.gradBuf;
  }

  /** Named views into grads. */
  get g(): ModelViews {
    if (!this.gradViews) this.gradViews = modelViews(this.config, this.layout, this.grads);
    return this.gradViews;
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  /**
   * Per-token log p(target) and entropy of the next-token distribution (0 where target = −1).
   * Keeps the activations for backward(). Returns fresh arrays of length T.
   */
  forward(batch: PackedBatch): { logprob: Float32Array; entropy: Float32Array } {
    const T = checkBatch(batch, this.config.vocabSize);
    this.trunkForward(batch, T);
    const { backend: be, s } = this.ready();
    const C = this.config.hiddenSize,
      V = this.config.vocabSize;
    const rows: number[] = [];
    for (let t = 0; t < T; t++) if (batch.targets[t] >= 0) rows.push(t);
    this.headRows = Int32Array.from(rows);
    const logprob = new Float32Array(T),
      entropy = new Float32Array(T);
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const n = Math.min(HEAD_ROWS, rows.length - r0);
      this.gatherHeadRows(batch, rows, r0, n);
      linearW(be, s.headLogits, s.headIn, this.forwardViews(false).lmHead, null, n, C, V);
      be.lossHeadForward(s.headLp, s.headEnt, s.headLogits, s.headTargets, n, V);
      for (let i = 0; i < n; i++) {
        logprob[rows[r0 + i]] = s.headLp[i];
        entropy[rows[r0 + i]] = s.headEnt[i];
      }
    }
    this.batch = batch;
    return { logprob, entropy };
  }

  /** One loss-head chunk's inputs: final-norm rows rows[r0..r0+n) → headIn (n, C), their targets → headTargets. */
  private gatherHeadRows(batch: PackedBatch, rows: ArrayLike<number>, r0: number, n: number): void {
    const { s } = this.ready();
    const C = this.config.hiddenSize;
    for (let i = 0; i < n; i++) {
      const t = rows[r0 + i];
      s.headIn.set(s.lnf.subarray(t * C, (t + 1) * C), i * C);
      s.headTargets[i] = batch.targets[t];
    }
  }

  /**
   * Gradient of Σ_t (coefLogprob[t]·logprob[t] + coefEntropy[t]·entropy[t]) for the last
   * forward's batch, ACCUMULATED into grads (micro-batches add up). Coefficients are (T).
   */
  backward(coefLogprob: Float32Array, coefEntropy: Float32Array): void {
    if (!this.p32) fail(this.bf16Only('backward'));
    const batch = this.batch;
    if (!batch) throw new Error('backward() without a preceding forward()');
    const T = batch.ids.length;
    if (coefLogprob.length < T || coefEntropy.length < T)
      throw new Error(`backward: coefficients must have T=${T} entries`);
    const { backend: be, s } = this.ready();
    const c = this.config,
      w = this.forwardViews(false),
      g = this.g;
    const C = c.hiddenSize,
      V = c.vocabSize;

    // Loss head, chunk by chunk: recompute the logits, turn them into dlogits in place, then
    // d lm_head += dlogitsᵀ·lnf and d lnf = dlogits·lm_head (rows without a target get 0).
    s.dtmp.fill(0, 0, T * C); // d lnf (T, C)
    const rows = this.headRows;
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const n = Math.min(HEAD_ROWS, rows.length - r0);
      this.gatherHeadRows(batch, rows, r0, n);
      for (let i = 0; i < n; i++) {
        s.headCl[i] = coefLogprob[rows[r0 + i]];
        s.headCe[i] = coefEntropy[rows[r0 + i]];
      }
      linearW(be, s.headLogits, s.headIn, w.lmHead, null, n, C, V);
      be.lossHeadBackward(s.headLogits, s.headLogits, s.headTargets, s.headCl, s.headCe, n, V);
      linearBackwardW(be, s.dln, g.lmHead, null, s.headLogits, s.headIn, w.lmHead, n, C, V);
      for (let i = 0; i < n; i++) {
        const t = rows[r0 + i];
        s.dtmp.set(s.dln.subarray(i * C, (i + 1) * C), t * C);
      }
    }
    s.dresid.fill(0, 0, T * C);
    be.rmsnormBackward(s.dresid, g.finalNorm, s.dtmp, s.residOut, w.finalNorm, s.rstdf, T, C);

    for (let l = c.numLayers - 1; l >= 0; l--) {
      if (this.checkpointing) this.layerForward(l, w, batch, T); // refill the shared activations
      blockBackward(
        be,
        this.shape,
        w.layers[l],
        g.layers[l],
        this.blockBuffers(l),
        this.acts[l].lse,
        s.dresid,
        s,
        batch.positions,
        batch.cuSeqlens,
        T,
      );
    }
    be.embeddingBackward(g.embed, s.dresid, batch.ids, T, C);
  }

  /** Full (T, V) logits of a batch, for tests and scoring short texts (allocates T·V floats). */
  logits(batch: PackedBatch): Float32Array {
    const T = checkBatch(batch, this.config.vocabSize);
    this.trunkForward(batch, T);
    const { backend: be, s } = this.ready();
    const out = new Float32Array(T * this.config.vocabSize);
    linearW(be, out, s.lnf, this.forwardViews(false).lmHead, null, T, this.config.hiddenSize, this.config.vocabSize);
    this.batch = null; // the head activations do not match a backward
    return out;
  }

  /** Embedding, every decoder layer and the final norm; leaves lnf (T, C) in the scratch. */
  private trunkForward(batch: PackedBatch, T: number): void {
    this.ensureCapacity(T);
    const { backend: be, s } = this.ready();
    const c = this.config,
      w = this.forwardViews(true);
    const C = c.hiddenSize;

    embedW(be, this.acts[0].resid, batch.ids, w.embed, T, C);
    for (let l = 0; l < c.numLayers; l++) this.layerForward(l, w, batch, T);
    be.rmsnormForward(s.lnf, s.rstdf, s.residOut, w.finalNorm, T, C, c.rmsNormEps);
  }

  /** Layer l's forward (blockForward) over the batch, into its activation buffers. */
  private layerForward(l: number, w: ModelViews<Weight>, batch: PackedBatch, T: number): void {
    const { NH, NKV, HD } = this.shape,
      b = this.blockBuffers(l),
      lse = this.acts[l].lse;
    blockForward(this.backend, this.shape, w.layers[l], b, batch.positions, T, () => {
      this.backend.attentionForward(
        b.att,
        lse,
        b.q,
        b.k,
        b.v,
        batch.cuSeqlens,
        batch.cuSeqlens.length - 1,
        T,
        NH,
        NKV,
        HD,
      );
    });
  }

  /** Layer l's BlockBuffers: its activations, the shared MLP/projection scratch, the next layer's input as out. */
  private blockBuffers(l: number): BlockBuffers {
    const s = this.s!;
    const out = l + 1 < this.config.numLayers ? this.acts[l + 1].resid : s.residOut;
    return { ...this.acts[l], mlp: s.mlp, proj: s.proj, out };
  }

  private ready(): { backend: Backend; s: Scratch } {
    if (!this.s) throw new Error('no activations allocated');
    return { backend: this.backend, s: this.s };
  }

  /** Allocates activations for T tokens (grown, never shrunk: RL batches vary in size). */
  private ensureCapacity(T: number): void {
    if (T <= this.cap) return;
    const cap = Math.max(T, Math.ceil(this.cap * 1.25));
    const c = this.config;
    const C = c.hiddenSize,
      NH = c.numHeads,
      QD = NH * c.headDim,
      KD = c.numKvHeads * c.headDim,
      I = c.intermediateSize;
    const f = (n: number): Float32Array => new Float32Array(n);
    const layerActs = (): Omit<LayerActs, 'resid'> => ({
      ln1: f(cap * C),
      rstd1: f(cap),
      q: f(cap * QD),
      k: f(cap * KD),
      v: f(cap * KD),
      att: f(cap * QD),
      lse: f(cap * NH),
      resid2: f(cap * C),
      ln2: f(cap * C),
      rstd2: f(cap),
      gate: f(cap * I),
      up: f(cap * I),
    });
    const shared = this.checkpointing ? layerActs() : null;
    this.acts = [];
    for (let l = 0; l < c.numLayers; l++) this.acts.push({ resid: f(cap * C), ...(shared ?? layerActs()) });
    const R = HEAD_ROWS,
      V = c.vocabSize;
    const headLogits = this.s?.headLogits ?? f(R * V);
    this.s = {
      residOut: f(cap * C),
      lnf: f(cap * C),
      rstdf: f(cap),
      mlp: f(cap * I),
      proj: f(cap * C),
      headIn: f(R * C),
      headLogits,
      headTargets: new Int32Array(R),
      headCl: f(R),
      headCe: f(R),
      headLp: f(R),
      headEnt: f(R),
      dresid: f(cap * C),
      dln: f(Math.max(cap, R) * C),
      dtmp: f(cap * C),
      dq: f(cap * QD),
      dk: f(cap * KD),
      dv: f(cap * KD),
      datt: f(cap * QD),
      dmlp: f(cap * I),
      dgate: f(cap * I),
      dup: f(cap * I),
    };
    this.cap = cap;
    this.batch = null;
  }
}
