// The Qwen2 (and Llama) decoder over packed variable-length sequences: forward keeps the
// activations backward needs, backward calls the same kernels in exactly the reverse order and
// accumulates into one flat gradient buffer. The loss head never materialises (T, V) logits:
// it runs in chunks of rows that have a target and keeps only each token's logprob and entropy.
// A model holds fp32 parameters (training, scoring, generation) or, for inference only, bf16
// ones (precision "bf16": GEMMs on bf16 weights with fp32 accumulation; norms, attention's
// softmax and the loss head in fp32), with no fp32 copy of the matrices. An fp32 model can also
// compute in bf16 (mixed precision, setComputePrecision): each forward rounds the fp32 master
// weights into a bf16 copy that the GEMMs of forward and backward use; gradients, norms, the
// loss head and the optimiser stay fp32. Parameters, gradients and activations are backend
// tensors: a batch's ids/positions/offsets and the head's targets and coefficients are uploaded
// each call, and only per-token logprob/entropy come back (downloaded), so the same code runs on
// any backend.
import path from 'node:path';
import type { Backend, Tensor } from '../engine/backend.ts';
import { fromBf16, toBf16 } from '../engine/bf16.ts';
import { getBackend } from '../engine/index.ts';
import { DEFAULT_BF16_BACKWARD, noteBf16Speed, type Bf16Backward, type Precision } from '../engine/precision.ts';
import { fail } from '../util/errors.ts';
import { checkBatch, type PackedBatch } from './batch.ts';
import { blockBackward, blockForward, decoderShape, type BlockBuffers, type DecoderShape } from './block.ts';
import { loadConfig, type ModelConfig } from './config.ts';
import { checkFinite, defaultGenerationConfig, readGenerationConfig, streamWeights, writeModelDir } from './io.ts';
import {
  bf16ModelViews,
  embedW,
  initialParams,
  linearBackwardW,
  linearW,
  mixedModelViews,
  modelViews,
  paramLayout,
  type F32,
  type I32,
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
  lse: F32; // (T, NH)
};

/** Buffers shared by all layers: the final stream, the head chunk and the backward scratch. */
interface Scratch {
  residOut: F32; // (T, C) stream after the last layer
  lnf: F32; // (T, C) model.norm output
  rstdf: F32; // (T)
  mlp: F32; // (T, I) swiglu output (recomputed in backward rather than kept per layer)
  /**
   * (T, max(QD+2KD, 2I)): the fused q|k|v output before its split, and in backward the fused
   * projections' gradients before their GEMMs (never two of them live at once).
   */
  fused: F32;
  proj: F32; // (T, C) o_proj / down_proj output before the residual add
  headIn: F32; // (HEAD_ROWS, C) rows of lnf gathered for the head
  headLogits: F32; // (HEAD_ROWS, V) logits, then dlogits in place
  headTargets: I32; // (HEAD_ROWS)
  headRows: I32; // (HEAD_ROWS) token rows of this chunk (gathered and scattered by embedding kernels)
  headCl: F32; // (HEAD_ROWS)
  headCe: F32; // (HEAD_ROWS)
  headLp: F32; // (HEAD_ROWS)
  headEnt: F32; // (HEAD_ROWS)
  dresid: F32; // (T, C) gradient of the residual stream
  dln: F32; // (T, C)
  dtmp: F32; // (T, C)
  dq: F32; // (T, QD)
  dk: F32; // (T, KD)
  dv: F32; // (T, KD)
  datt: F32; // (T, QD)
  dqkv: F32; // = fused
  dgateUp: F32; // = fused
  dmlp: F32; // (T, I)
  ids: I32; // (T) the batch, uploaded by trunkForward
  positions: I32; // (T)
  cuSeqlens: I32; // (T+1) B+1 used
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
  /** All parameters, one flat tensor in `layout` order, in the model's precision. */
  readonly weights: Weight;
  private readonly p32: F32 | null;
  /** Refills a bf16 model's f32 norms and biases from `weights` (after an upload). */
  private readonly widen: () => void;
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
  /** The batch of the last forward, which backward differentiates (its ids etc. are in the scratch). */
  private batch: PackedBatch | null = null;
  /** Token rows with a target (the rows the loss head computes), from the last forward. */
  private headRows = new Int32Array(0);
  /** Host staging of one head chunk: targets and coefficients up, logprob and entropy down. */
  private readonly host = {
    targets: new Int32Array(HEAD_ROWS),
    cl: new Float32Array(HEAD_ROWS),
    ce: new Float32Array(HEAD_ROWS),
    lp: new Float32Array(HEAD_ROWS),
    ent: new Float32Array(HEAD_ROWS),
  };

  /**
   * A model on `backend` with zero parameters of `precision`, or with host `params` uploaded:
   * fp32, or a Uint16Array of bf16 bits for a bf16 inference model.
   */
  constructor(
    readonly config: ModelConfig,
    readonly backend: Backend,
    params?: Float32Array | Uint16Array,
    precision: Precision = params instanceof Uint16Array ? 'bf16' : 'fp32',
  ) {
    this.layout = paramLayout(config);
    this.shape = decoderShape(config);
    if (params && params.length !== this.layout.total)
      throw new Error(`params has ${params.length} elements, layout ${this.layout.total}`);
    if (precision === 'bf16') {
      const p16 = backend.alloc('bf16', this.layout.total);
      const views = bf16ModelViews(backend, config, this.layout, p16);
      this.precision = 'bf16';
      this.weights = p16;
      this.p32 = null;
      this.w = views.w;
      this.widen = views.widen;
      noteBf16Speed(backend);
    } else {
      const p32 = backend.alloc('f32', this.layout.total);
      this.precision = 'fp32';
      this.weights = p32;
      this.p32 = p32;
      this.w = modelViews(backend, config, this.layout, p32);
      this.widen = () => {};
    }
    if (params) this.writeWeights(params);
    this.generationConfig = defaultGenerationConfig(config);
  }

  /** All fp32 parameters, one flat tensor in `layout` order (fp32 models only). */
  get params(): F32 {
    if (!this.p32) fail(this.bf16Only('fp32 parameters'));
    return this.p32;
  }

  /** The parameters downloaded to the host, in the model's precision (bf16: bits). */
  readWeights(): Float32Array | Uint16Array {
    return this.backend.download(this.weights);
  }

  /** The fp32 parameters downloaded to the host (fp32 models only). */
  readParams(): Float32Array {
    return this.backend.download(this.params);
  }

  /** Uploads new parameters (host, `layout` order) in the model's precision: the one way weights change from the host. */
  writeWeights(params: Float32Array | Uint16Array): void {
    if (params.length !== this.layout.total)
      fail(`weights: ${params.length} values for a model of ${this.layout.total} parameters`);
    const be = this.backend;
    if (this.weights.dtype === 'bf16') {
      if (!(params instanceof Uint16Array)) fail('weights: a bf16 model takes bf16 bits (Uint16Array)');
      be.upload(this.weights, params);
    } else {
      if (!(params instanceof Float32Array)) fail(this.bf16Only('fp32 weights'));
      be.upload(this.weights, params);
    }
    this.widen();
  }

  private bf16Only(what: string): string {
    return `${what}: this model holds bf16 weights for inference (precision bf16); load it with precision fp32 to train`;
  }

  /** Mixed precision: the bf16 copy of the master weights and its views (null: compute in fp32). */
  private mixed: { p16: Tensor<'bf16'>; w: ModelViews<Tensor<'bf16'>> } | null = null;
  /** How backward's bf16 GEMMs take dout and the layer inputs: rounded or split (precision.ts). */
  private bf16Backward: Bf16Backward = DEFAULT_BF16_BACKWARD;

  /**
   * The precision of the GEMMs: bf16 on an fp32 model is mixed-precision training (fp32 master
   * weights, gradients and optimiser; a bf16 copy rounded at every forward), whose backward
   * rounds or splits its fp32 operands as bf16Backward says. A bf16 model always computes in bf16.
   */
  setComputePrecision(
    p: Precision,
    { bf16Backward = DEFAULT_BF16_BACKWARD }: { bf16Backward?: Bf16Backward } = {},
  ): void {
    this.bf16Backward = bf16Backward;
    if (p === 'fp32' || !this.p32) {
      if (p === 'fp32' && !this.p32) fail(this.bf16Only('fp32 compute'));
      this.mixed = null;
      return;
    }
    if (this.mixed) return;
    const p16 = this.backend.alloc('bf16', this.layout.total);
    this.mixed = { p16, w: mixedModelViews(this.backend, this.config, this.layout, p16, this.p32) };
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
    const seen = new Set<F32>();
    for (const a of this.acts) for (const b of Object.values(a)) seen.add(b);
    let n = 0;
    for (const b of seen) n += b.length * 4;
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
    // Rounded on the backend: no host copy of the weights (2 GB of fp32 at 0.5B parameters).
    const m = new Qwen2Model(this.config, this.backend, undefined, 'bf16');
    this.backend.roundBf16(m.weights as Tensor<'bf16'>, this.params, this.layout.total);
    m.widen();
    m.generationConfig = this.generationConfig;
    m.sourceDir = this.sourceDir;
    return m;
  }

  /** Loads a Hugging Face model folder (config.json + model.safetensors or shards): one upload of the weights. */
  static async load(dir: string, opts: LoadOptions = {}): Promise<Qwen2Model> {
    const config = loadConfig(path.join(dir, 'config.json'));
    const layout = paramLayout(config);
    const backend = opts.backend ?? getBackend();
    const precision = opts.precision ?? 'fp32';
    const model = new Qwen2Model(config, backend, undefined, precision);
    // One tensor at a time into its view: no host copy of the whole model. Each is checked for
    // NaN/Inf on the host as it passes, except that fp32 leaves the common all-finite case to one
    // Σx² on the backend and searches only when that is not finite.
    const weights = model.weights as Tensor<Weight['dtype']>;
    streamWeights(dir, layout, config, precision, (spec, data) => {
      backend.upload(backend.view(weights, spec.offset, spec.size), data as never);
      if (data instanceof Uint16Array) checkFinite(dir, data, { ...layout, specs: [{ ...spec, offset: 0 }] });
    });
    if (precision === 'fp32' && !Number.isFinite(backend.sumSquares(model.params, layout.total)))
      checkFinite(dir, model.readParams(), layout);
    model.widen();
    model.generationConfig = readGenerationConfig(dir, config);
    model.sourceDir = path.resolve(dir);
    return model;
  }

  /** Random initialisation as transformers does (initialParams): normal(0, initializer_range) weights, norms 1, biases 0. */
  static init(config: ModelConfig, seed: number, opts: LoadOptions = {}): Qwen2Model {
    return new Qwen2Model(config, opts.backend ?? getBackend(), initialParams(config, seed));
  }

  /**
   * Writes a folder transformers can load, replaced atomically, with weights in `dtype` (default
   * the model's own: F32, or BF16 for a bf16 model; fp32 → bf16 rounds to nearest even, bf16 →
   * fp32 widens exactly).
   */
  save(dir: string, dtype: Precision = this.precision): void {
    const host = this.readWeights();
    const params =
      dtype === 'bf16'
        ? host instanceof Uint16Array
          ? host
          : toBf16(host)
        : host instanceof Float32Array
          ? host
          : fromBf16(host);
    writeModelDir(dir, {
      config: this.config,
      layout: this.layout,
      params,
      generationConfig: this.generationConfig,
      sourceDir: this.sourceDir,
    });
  }

  private gradBuf: F32 | null = null;
  private gradViews: ModelViews | null = null;

  /**
   * The gradients, same layout as params; backward accumulates here. Allocated on first use,
   * so a model that only generates or scores never pays for them.
   */
  get grads(): F32 {
    if (!this.p32) fail(this.bf16Only('gradients'));
    if (!this.gradBuf) this.gradBuf = this.backend.alloc('f32', this.layout.total);
    return this.gradBuf;
  }

  /** The gradients downloaded to the host. */
  readGrads(): Float32Array {
    return this.backend.download(this.grads);
  }

  /** Named views into grads. */
  get g(): ModelViews {
    if (!this.gradViews) this.gradViews = modelViews(this.backend, this.config, this.layout, this.grads);
    return this.gradViews;
  }

  zeroGrad(): void {
    this.backend.zero(this.grads);
  }

  /**
   * Per-token log p(target) and entropy of the next-token distribution (0 where target = −1),
   * downloaded. Keeps the activations for backward(). Returns fresh host arrays of length T.
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
    const h = this.host;
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const n = Math.min(HEAD_ROWS, rows.length - r0);
      this.gatherHeadRows(batch, r0, n);
      linearW(be, s.headLogits, s.headIn, this.forwardViews(false).lmHead, null, n, C, V);
      be.lossHeadForward(s.headLp, s.headEnt, s.headLogits, s.headTargets, n, V);
      be.download(be.view(s.headLp, 0, n), h.lp);
      be.download(be.view(s.headEnt, 0, n), h.ent);
      for (let i = 0; i < n; i++) {
        logprob[rows[r0 + i]] = h.lp[i];
        entropy[rows[r0 + i]] = h.ent[i];
      }
    }
    this.batch = batch;
    return { logprob, entropy };
  }

  /**
   * One loss-head chunk's inputs: the chunk's rows headRows[r0..r0+n) and their targets uploaded,
   * final-norm rows gathered into headIn (n, C) (embeddingForward with lnf as the table).
   */
  private gatherHeadRows(batch: PackedBatch, r0: number, n: number): void {
    const { backend: be, s } = this.ready();
    const rows = this.headRows.subarray(r0, r0 + n);
    for (let i = 0; i < n; i++) this.host.targets[i] = batch.targets[rows[i]];
    be.upload(s.headRows, rows);
    be.upload(s.headTargets, this.host.targets.subarray(0, n));
    be.embeddingForward(s.headIn, s.headRows, s.lnf, n, this.config.hiddenSize);
  }

  /**
   * Gradient of Σ_t (coefLogprob[t]·logprob[t] + coefEntropy[t]·entropy[t]) for the last
   * forward's batch, ACCUMULATED into grads (micro-batches add up). Coefficients are host (T),
   * uploaded chunk by chunk.
   */
  backward(coefLogprob: Float32Array, coefEntropy: Float32Array): void {
    if (!this.p32) fail(this.bf16Only('backward'));
    const batch = this.batch;
    if (!batch) throw new Error('backward() without a preceding forward()');
    const T = batch.ids.length,
      B = batch.cuSeqlens.length - 1;
    if (coefLogprob.length < T || coefEntropy.length < T)
      throw new Error(`backward: coefficients must have T=${T} entries`);
    const { backend: be, s } = this.ready();
    const c = this.config,
      w = this.forwardViews(false),
      g = this.g,
      h = this.host;
    const C = c.hiddenSize,
      V = c.vocabSize;

    // Loss head, chunk by chunk: recompute the logits, turn them into dlogits in place, then
    // d lm_head += dlogitsᵀ·lnf and d lnf = dlogits·lm_head, scattered to the chunk's rows of
    // dtmp (embeddingBackward into zeros: rows are distinct, so it is a copy; others stay 0).
    be.zero(s.dtmp); // d lnf (T, C)
    const rows = this.headRows;
    for (let r0 = 0; r0 < rows.length; r0 += HEAD_ROWS) {
      const n = Math.min(HEAD_ROWS, rows.length - r0);
      this.gatherHeadRows(batch, r0, n);
      for (let i = 0; i < n; i++) {
        h.cl[i] = coefLogprob[rows[r0 + i]];
        h.ce[i] = coefEntropy[rows[r0 + i]];
      }
      be.upload(s.headCl, h.cl.subarray(0, n));
      be.upload(s.headCe, h.ce.subarray(0, n));
      linearW(be, s.headLogits, s.headIn, w.lmHead, null, n, C, V);
      be.lossHeadBackward(s.headLogits, s.headLogits, s.headTargets, s.headCl, s.headCe, n, V);
      linearBackwardW(be, s.dln, g.lmHead, null, s.headLogits, s.headIn, w.lmHead, n, C, V, this.bf16Backward);
      be.embeddingBackward(s.dtmp, s.dln, s.headRows, n, C);
    }
    be.zero(s.dresid);
    be.rmsnormBackward(s.dresid, g.finalNorm, s.dtmp, s.residOut, w.finalNorm, s.rstdf, T, C);

    for (let l = c.numLayers - 1; l >= 0; l--) {
      if (this.checkpointing) this.layerForward(l, w, B, T); // refill the shared activations
      const b = this.blockBuffers(l);
      blockBackward(
        be,
        this.shape,
        w.layers[l],
        g.layers[l],
        b,
        this.acts[l].lse,
        s.dresid,
        s,
        s.positions,
        s.cuSeqlens,
        B,
        T,
        this.bf16Backward,
      );
    }
    be.embeddingBackward(g.embed, s.dresid, s.ids, T, C);
  }

  /** Full (T, V) logits of a batch downloaded, for tests and scoring short texts (T·V floats). */
  logits(batch: PackedBatch): Float32Array {
    const T = checkBatch(batch, this.config.vocabSize);
    this.trunkForward(batch, T);
    const { backend: be, s } = this.ready();
    const V = this.config.vocabSize;
    const out = be.alloc('f32', T * V);
    linearW(be, out, s.lnf, this.forwardViews(false).lmHead, null, T, this.config.hiddenSize, V);
    this.batch = null; // the head activations do not match a backward
    return be.download(out);
  }

  /** Uploads the batch; embedding, every decoder layer and the final norm; leaves lnf (T, C) in the scratch. */
  private trunkForward(batch: PackedBatch, T: number): void {
    this.ensureCapacity(T);
    const { backend: be, s } = this.ready();
    const c = this.config,
      w = this.forwardViews(true);
    const C = c.hiddenSize;
    be.upload(s.ids, batch.ids);
    be.upload(s.positions, batch.positions);
    be.upload(s.cuSeqlens, batch.cuSeqlens);
    embedW(be, this.acts[0].resid, s.ids, w.embed, T, C);
    for (let l = 0; l < c.numLayers; l++) this.layerForward(l, w, batch.cuSeqlens.length - 1, T);
    be.rmsnormForward(s.lnf, s.rstdf, s.residOut, w.finalNorm, T, C, c.rmsNormEps);
  }

  /** Layer l's forward (blockForward) over the uploaded batch of B sequences, into its activation buffers. */
  private layerForward(l: number, w: ModelViews<Weight>, B: number, T: number): void {
    const { NH, NKV, HD } = this.shape,
      s = this.s!,
      b = this.blockBuffers(l),
      lse = this.acts[l].lse;
    blockForward(this.backend, this.shape, w.layers[l], b, s.positions, T, () => {
      this.backend.attentionForward(b.att, lse, b.q, b.k, b.v, s.cuSeqlens, B, T, NH, NKV, HD);
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
    const be = this.backend;
    const f = (n: number): F32 => be.alloc('f32', n);
    const i32 = (n: number): I32 => be.alloc('i32', n);
    const fused = f(cap * Math.max(QD + 2 * KD, 2 * I));
    const layerActs = (): Omit<LayerActs, 'resid'> => ({
      ln1: f(cap * C),
      rstd1: f(cap),
      qkv: fused,
      q: f(cap * QD),
      k: f(cap * KD),
      v: f(cap * KD),
      att: f(cap * QD),
      lse: f(cap * NH),
      resid2: f(cap * C),
      ln2: f(cap * C),
      rstd2: f(cap),
      gateUp: f(cap * 2 * I),
    });
    this.acts = []; // drop the old activations before allocating the new ones
    const shared = this.checkpointing ? layerActs() : null;
    for (let l = 0; l < c.numLayers; l++) this.acts.push({ resid: f(cap * C), ...(shared ?? layerActs()) });
    const R = HEAD_ROWS,
      V = c.vocabSize;
    const headLogits = this.s?.headLogits ?? f(R * V);
    this.s = {
      residOut: f(cap * C),
      lnf: f(cap * C),
      rstdf: f(cap),
      mlp: f(cap * I),
      fused,
      proj: f(cap * C),
      headIn: f(R * C),
      headLogits,
      headTargets: i32(R),
      headRows: i32(R),
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
      dqkv: fused,
      dgateUp: fused,
      dmlp: f(cap * I),
      ids: i32(cap),
      positions: i32(cap),
      cuSeqlens: i32(cap + 1),
    };
    this.cap = cap;
    this.batch = null;
  }
}
