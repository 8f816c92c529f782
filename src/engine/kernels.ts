// The host kernel contract: every compute kernel on host typed arrays, fulfilled by the
// TypeScript reference (src/engine/reference.ts, the definition of correctness) and the native
// addon (native/, loaded by src/engine/native.ts). Model code never calls these directly: it
// holds Tensor handles and calls the Backend of backend.ts, whose kernels have these names,
// arguments and documentation with a Tensor in place of each typed array (src/engine/cpu.ts
// unwraps them here). All arrays are row-major float32 (ids int32) except the bf16 operands of
// the *Bf16 methods, which are Uint16Arrays of raw bfloat16 bits (src/engine/bf16.ts). Sizes are
// passed explicitly: buffers are allocated for the maximum and may be longer than a call needs.
//
// Conventions (llm.c): xxxForward(out, ..., inp, ...) / xxxBackward(dinp, dweight, ..., dout, ...).
// Parameter gradients ACCUMULATE (+=). Activation gradients are WRITTEN (=) unless the doc says
// "accumulates" (the residual stream). Shape vocabulary: T tokens, C channels, OC output
// channels, V vocab, NH query heads, NKV key/value heads, HD head dim, B sequences or slots.

export type BackendName = 'native' | 'reference';

export interface HostKernels {
  readonly name: BackendName;
  /** Which kernels the backend dispatched to, e.g. "avx512", "avx2", "portable", "typescript". */
  readonly isa: string;
  /** Threads the backend uses. */
  readonly threads: number;

  /**
   * General matrix multiply: out(M,N) = op(a)(M,K) · op(b)(K,N), plus the old out if accumulate.
   * a is (M,K), or (K,M) when transA; b is (K,N), or (N,K) when transB.
   */
  matmul(
    out: Float32Array,
    a: Float32Array,
    b: Float32Array,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
  ): void;

  /**
   * matmul on bf16 operands with fp32 accumulation and an fp32 out: a and b hold bf16 bits
   * (Uint16Array), layouts as matmul. Exact products of bf16 values, summed in fp32 (or wider).
   */
  matmulBf16(
    out: Float32Array,
    a: Uint16Array,
    b: Uint16Array,
    M: number,
    N: number,
    K: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
  ): void;
  /**
   * linearForward with a bf16 weight(OC,C) (Uint16Array of bits): out(T,OC) = bf16(inp)·weightᵀ +
   * bias, where bf16(inp) rounds the fp32 input to bf16 (nearest even) first; fp32 accumulation.
   */
  linearForwardBf16(
    out: Float32Array,
    inp: Float32Array,
    weight: Uint16Array,
    bias: Float32Array | null,
    T: number,
    C: number,
    OC: number,
  ): void;

  /**
   * linearBackward for a bf16 weight (mixed-precision training), products accumulated in fp32:
   * dinp(T,C) = d·weight (written, may be null), dweight(OC,C) += dᵀ·x (accumulates), dbias(OC) +=
   * Σ_t dout in fp32 (accumulates). split false: d = bf16(dout), x = bf16(inp), rounded to nearest
   * even (the usual mixed precision). split true: each is a bf16 pair hi = bf16(v), lo = bf16(v −
   * hi), with dweight += dhᵀ·xh + dlᵀ·xh + dhᵀ·xl: fp32 products on the unrounded dout and inp to
   * about 2⁻¹⁶, at 2.5× the bf16 products' work.
   */
  linearBackwardBf16(
    dinp: Float32Array | null,
    dweight: Float32Array,
    dbias: Float32Array | null,
    dout: Float32Array,
    inp: Float32Array,
    weight: Uint16Array,
    T: number,
    C: number,
    OC: number,
    split: boolean,
  ): void;
  /** out(n) ← x(n) rounded to bf16 bits (nearest even): the bf16 copy of fp32 master weights. */
  roundBf16(out: Uint16Array, x: Float32Array, n: number): void;
  /** out(n) ← x(n) bf16 bits widened to fp32 (exact): the fp32 norms and biases of a bf16 model. */
  widenBf16(out: Float32Array, x: Uint16Array, n: number): void;

  /** A linear layer, torch layout: out(T,OC) = inp(T,C) · weight(OC,C)^T + bias(OC). */
  linearForward(
    out: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    bias: Float32Array | null,
    T: number,
    C: number,
    OC: number,
  ): void;
  /** dinp(T,C) written; dweight(OC,C) and dbias(OC) accumulate. dinp may be null (not needed). */
  linearBackward(
    dinp: Float32Array | null,
    dweight: Float32Array,
    dbias: Float32Array | null,
    dout: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    T: number,
    C: number,
    OC: number,
  ): void;

  /** out(T,C) = wte[ids[t]]; wte is (V,C). */
  embeddingForward(out: Float32Array, ids: Int32Array, wte: Float32Array, T: number, C: number): void;
  /** dwte(V,C) accumulates dout(T,C) at rows ids[t]. */
  embeddingBackward(dwte: Float32Array, dout: Float32Array, ids: Int32Array, T: number, C: number): void;
  /** embeddingForward from a bf16 table wte(V,C) (Uint16Array of bits): rows widened to fp32 exactly. */
  embeddingForwardBf16(out: Float32Array, ids: Int32Array, wte: Uint16Array, T: number, C: number): void;

  /** RMSNorm: out = inp · rstd · weight, rstd(T) = 1/sqrt(mean(inp²) + eps) saved for backward. */
  rmsnormForward(
    out: Float32Array,
    rstd: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    T: number,
    C: number,
    eps: number,
  ): void;
  /** dinp(T,C) ACCUMULATES (its input is the residual stream); dweight(C) accumulates. */
  rmsnormBackward(
    dinp: Float32Array,
    dweight: Float32Array,
    dout: Float32Array,
    inp: Float32Array,
    weight: Float32Array,
    rstd: Float32Array,
    T: number,
    C: number,
  ): void;

  /**
   * Rotary embedding, Hugging Face rotate-half convention, in place on x(T, NH*HD):
   * x' = x·cos + rotate_half(x)·sin, rotate_half([x1, x2]) = [−x2, x1], angle = pos[t]·theta^(−2i/HD)
   * for i < HD/2, the same angle used for element i and i + HD/2.
   */
  ropeForward(x: Float32Array, positions: Int32Array, T: number, NH: number, HD: number, theta: number): void;
  /** The transpose rotation, in place on dx(T, NH*HD). */
  ropeBackward(dx: Float32Array, positions: Int32Array, T: number, NH: number, HD: number, theta: number): void;

  /**
   * Causal grouped-query attention over packed sequences: sequence b occupies tokens
   * cuSeqlens[b] .. cuSeqlens[b+1]−1 (cuSeqlens has B+1 entries, cuSeqlens[B] = T); no attention
   * across sequences. q(T, NH*HD), k and v (T, NKV*HD); query head h reads kv head h / (NH/NKV).
   * Scale 1/sqrt(HD). Writes out(T, NH*HD) and lse(T, NH), the log-sum-exp of each row's scaled
   * scores, which backward uses to recompute probabilities (no T×T matrix is kept).
   */
  attentionForward(
    out: Float32Array,
    lse: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    cuSeqlens: Int32Array,
    B: number,
    T: number,
    NH: number,
    NKV: number,
    HD: number,
  ): void;
  /** dq(T,NH*HD), dk and dv (T,NKV*HD) written. */
  attentionBackward(
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
    dout: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    out: Float32Array,
    lse: Float32Array,
    cuSeqlens: Int32Array,
    B: number,
    T: number,
    NH: number,
    NKV: number,
    HD: number,
  ): void;

  /**
   * Attention of B new tokens against a KV cache (decoding). kCache, vCache: (S, maxLen, NKV*HD)
   * for S slots; token b lives in slot slots[b] and attends to that slot's positions
   * 0 .. lens[b]−1 (its own key/value already written at lens[b]−1). q, out: (B, NH*HD).
   */
  attentionDecode(
    out: Float32Array,
    q: Float32Array,
    kCache: Float32Array,
    vCache: Float32Array,
    slots: Int32Array,
    lens: Int32Array,
    B: number,
    NH: number,
    NKV: number,
    HD: number,
    maxLen: number,
  ): void;

  /** attentionDecode against a bf16 cache (Uint16Arrays of bf16 bits, widened exactly): half the memory. */
  attentionDecodeBf16(
    out: Float32Array,
    q: Float32Array,
    kCache: Uint16Array,
    vCache: Uint16Array,
    slots: Int32Array,
    lens: Int32Array,
    B: number,
    NH: number,
    NKV: number,
    HD: number,
    maxLen: number,
  ): void;

  /**
   * SwiGLU on the fused gate|up projection's output gateUp(T, 2I), gate = its first I columns and
   * up the last I: out(T, I) = silu(gate)·up, silu(x) = x·sigmoid(x).
   */
  swigluForward(out: Float32Array, gateUp: Float32Array, T: number, I: number): void;
  /** dgateUp(T, 2I) written: d gate in its first I columns, d up in the last I. */
  swigluBackward(dgateUp: Float32Array, dout: Float32Array, gateUp: Float32Array, T: number, I: number): void;

  /** out(n) = a + b (out may alias a or b). */
  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;

  /**
   * A block of columns between row-major matrices: dst[r·dstStride + dstCol + j] =
   * src[r·srcStride + srcCol + j] for r < rows, j < cols. Splits a fused projection's output
   * (q|k|v, gate|up) into its parts and joins their gradients for the fused backward.
   */
  copyColumns(
    dst: Float32Array,
    src: Float32Array,
    rows: number,
    cols: number,
    dstStride: number,
    dstCol: number,
    srcStride: number,
    srcCol: number,
  ): void;

  /**
   * The loss head on logits(T,V): logprob[t] = log softmax(logits[t])[targets[t]] and
   * entropy[t] = −Σ_v p_v log p_v of the full distribution.
   */
  lossHeadForward(
    logprob: Float32Array,
    entropy: Float32Array,
    logits: Float32Array,
    targets: Int32Array,
    T: number,
    V: number,
  ): void;
  /**
   * dlogits(T,V) written from per-token coefficients: d/dz of Σ_t (coefLogprob[t]·logprob[t] +
   * coefEntropy[t]·entropy[t]), i.e. cl·(1[v=y] − p_v) − ce·p_v·(log p_v + H).
   * dlogits may be the same array as logits (rows are read before they are overwritten).
   */
  lossHeadBackward(
    dlogits: Float32Array,
    logits: Float32Array,
    targets: Int32Array,
    coefLogprob: Float32Array,
    coefEntropy: Float32Array,
    T: number,
    V: number,
  ): void;

  /**
   * One AdamW step exactly as torch.optim.AdamW (decoupled weight decay, bias correction) on n
   * elements: p ← p·(1 − lr·wd); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
   * p ← p − (lr / (1−β1^step)) · m / (sqrt(v) / sqrt(1−β2^step) + eps). step counts from 1.
   */
  adamw(
    params: Float32Array,
    grads: Float32Array,
    m: Float32Array,
    v: Float32Array,
    n: number,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    step: number,
  ): void;

  /**
   * Chooses the next token from one row of logits (V), without top-k/top-p (the sampler keeps
   * those): out[0] = the id, out[1] = its logprob. invT = 0 is greedy: the first maximum, with
   * the T = 1 log-softmax as logprob. Otherwise p_v = exp((z_v − max)·invT), the token is the
   * first whose cumulative mass exceeds u·Σp (u ∈ [0, 1), inverse CDF in vocabulary order), and
   * its logprob is log(p/Σp).
   */
  chooseToken(out: Float64Array, logits: Float32Array, V: number, invT: number, u: number): void;

  /**
   * chooseToken with truncation, invT > 0: p_v = exp((z_v − max)·invT). top-k keeps the ids whose
   * p is at least the topK-th largest (ties kept, as transformers' TopKLogitsWarper; topK = 0 or
   * ≥ V keeps all); top-p then keeps the smallest set of the most likely of those (equal p: the
   * lower id first) whose mass reaches topP times theirs (topP = 1 keeps all). The token is the
   * first kept id, in vocabulary order, whose cumulative kept mass exceeds u·(kept mass); out[0] =
   * the id, out[1] = log(p / kept mass), the logprob it was drawn with.
   */
  chooseTokenTruncated(
    out: Float64Array,
    logits: Float32Array,
    V: number,
    invT: number,
    topK: number,
    topP: number,
    u: number,
  ): void;

  /** Σ x² over n elements, accumulated in double (global gradient norm). */
  sumSquares(x: Float32Array, n: number): number;
  /** x ← x·s over n elements (gradient clipping). */
  scale(x: Float32Array, s: number, n: number): void;
}
