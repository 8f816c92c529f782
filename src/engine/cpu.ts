// The Backend contract (backend.ts) on the host, over any HostKernels table: the TypeScript
// reference and the native addon are both this one implementation. A tensor keeps its typed array
// under a symbol this module does not export, so model code provably reaches storage only through
// the contract; a view is a subarray of its parent's storage. Each kernel call unwraps its tensor
// arguments (checking their dtypes) and calls the host kernel: no allocation per call, since
// decoding makes ~400 calls per token.
import { hostDType, type Backend, type DeviceKernels, type DType, type HostArrayOf, type Tensor } from './backend.ts';
import type { HostKernels } from './kernels.ts';
import { fail } from '../util/errors.ts';

const STORAGE = Symbol('storage');

class CpuTensor<D extends DType = DType> implements Tensor<D> {
  readonly length: number;
  readonly [STORAGE]: HostArrayOf[D];
  constructor(
    readonly dtype: D,
    data: HostArrayOf[D],
  ) {
    this.length = data.length;
    this[STORAGE] = data;
  }
}

const HOST_ARRAY: { [D in DType]: new (n: number) => HostArrayOf[D] } = {
  f32: Float32Array,
  bf16: Uint16Array,
  i32: Int32Array,
};

/** t's storage, checked to be a CPU tensor of dtype `want` (`what` names the call in the error). */
function storage<D extends DType>(t: Tensor<D>, want: D, what: string): HostArrayOf[D] {
  const s = (t as CpuTensor<D>)[STORAGE];
  if (s === undefined || t.dtype !== want)
    fail(
      s === undefined
        ? `${what}: not a tensor of a CPU backend`
        : `${what}: expected a ${want} tensor, got ${t.dtype} (${t.length} elements)`,
    );
  return s;
}

// The unwrappers of the kernel table below: one per dtype, and the nullable f32 (biases, dinp).
const f32 = (t: Tensor<'f32'>, what: string): Float32Array => storage(t, 'f32', what);
const bf16 = (t: Tensor<'bf16'>, what: string): Uint16Array => storage(t, 'bf16', what);
const i32 = (t: Tensor<'i32'>, what: string): Int32Array => storage(t, 'i32', what);
const f32n = (t: Tensor<'f32'> | null, what: string): Float32Array | null => (t === null ? null : f32(t, what));

/** The Backend over host kernels `k` (tensors are host typed arrays). */
export function cpuBackend(k: HostKernels): Backend {
  return { name: k.name, isa: k.isa, threads: k.threads, ...memory, ...kernelsOnTensors(k) };
}

/** The memory half of the contract: storage is a typed array, a view its subarray. */
const memory: Pick<Backend, 'alloc' | 'view' | 'upload' | 'download' | 'copy' | 'zero'> = {
  alloc: (dtype, length) => {
    if (!(Number.isInteger(length) && length >= 0)) fail(`alloc: length must be a non-negative integer, got ${length}`);
    const make = HOST_ARRAY[dtype] as new (n: number) => HostArrayOf[typeof dtype];
    if (!make) fail(`alloc: unknown dtype "${String(dtype)}" (f32, bf16 or i32)`);
    return new CpuTensor(dtype, new make(length));
  },
  view: (t, offset, length) => {
    const s = storage(t, t.dtype, 'view');
    if (!(
      Number.isInteger(offset) &&
      Number.isInteger(length) &&
      offset >= 0 &&
      length >= 0 &&
      offset + length <= t.length
    ))
      fail(`view: [${offset}, ${offset + length}) is outside a tensor of ${t.length} elements`);
    return new CpuTensor(t.dtype, s.subarray(offset, offset + length) as typeof s);
  },
  upload: (dst, src) => {
    const d = storage(dst, dst.dtype, 'upload');
    if (hostDType(src) !== dst.dtype)
      fail(`upload: a ${hostDType(src) ?? 'non-typed'} array into a ${dst.dtype} tensor`);
    if (src.length > d.length) fail(`upload: ${src.length} elements do not fit a tensor of ${d.length}`);
    d.set(src as never);
  },
  download: (src, dst) => {
    const s = storage(src, src.dtype, 'download');
    if (!dst) return s.slice() as typeof s;
    if (hostDType(dst) !== src.dtype)
      fail(`download: a ${src.dtype} tensor into a ${hostDType(dst) ?? 'non-typed'} array`);
    if (dst.length < s.length) fail(`download: ${s.length} elements do not fit an array of ${dst.length}`);
    dst.set(s as never);
    return dst;
  },
  copy: (dst, src) => {
    const s = storage(src, src.dtype, 'copy'),
      d = storage(dst, src.dtype, 'copy');
    if (s.length > d.length) fail(`copy: ${s.length} elements do not fit a tensor of ${d.length}`);
    d.set(s as never);
  },
  zero: (t) => {
    storage(t, t.dtype, 'zero').fill(0);
  },
};

/** Each kernel of `k` on tensors: unwrap (dtype-checked), call. A table, one entry per kernel. */
function kernelsOnTensors(k: HostKernels): DeviceKernels {
  return {
    matmul: (out, a, b, M, N, K, tA, tB, acc) =>
      k.matmul(f32(out, 'matmul'), f32(a, 'matmul'), f32(b, 'matmul'), M, N, K, tA, tB, acc),
    matmulBf16: (out, a, b, M, N, K, tA, tB, acc) =>
      k.matmulBf16(f32(out, 'matmulBf16'), bf16(a, 'matmulBf16'), bf16(b, 'matmulBf16'), M, N, K, tA, tB, acc),
    linearForward: (out, inp, w, bias, T, C, OC) =>
      k.linearForward(f32(out, 'linear'), f32(inp, 'linear'), f32(w, 'linear'), f32n(bias, 'linear'), T, C, OC),
    linearForwardBf16: (out, inp, w, bias, T, C, OC) =>
      k.linearForwardBf16(
        f32(out, 'linearBf16'),
        f32(inp, 'linearBf16'),
        bf16(w, 'linearBf16'),
        f32n(bias, 'linearBf16'),
        T,
        C,
        OC,
      ),
    linearBackward: (dinp, dw, db, dout, inp, w, T, C, OC) =>
      k.linearBackward(
        f32n(dinp, 'linearBackward'),
        f32(dw, 'linearBackward'),
        f32n(db, 'linearBackward'),
        f32(dout, 'linearBackward'),
        f32(inp, 'linearBackward'),
        f32(w, 'linearBackward'),
        T,
        C,
        OC,
      ),
    linearBackwardBf16: (dinp, dw, db, dout, inp, w, T, C, OC, split) =>
      k.linearBackwardBf16(
        f32n(dinp, 'linearBackwardBf16'),
        f32(dw, 'linearBackwardBf16'),
        f32n(db, 'linearBackwardBf16'),
        f32(dout, 'linearBackwardBf16'),
        f32(inp, 'linearBackwardBf16'),
        bf16(w, 'linearBackwardBf16'),
        T,
        C,
        OC,
        split,
      ),
    roundBf16: (out, x, n) => k.roundBf16(bf16(out, 'roundBf16'), f32(x, 'roundBf16'), n),
    widenBf16: (out, x, n) => k.widenBf16(f32(out, 'widenBf16'), bf16(x, 'widenBf16'), n),
    embeddingForward: (out, ids, wte, T, C) =>
      k.embeddingForward(f32(out, 'embedding'), i32(ids, 'embedding'), f32(wte, 'embedding'), T, C),
    embeddingForwardBf16: (out, ids, wte, T, C) =>
      k.embeddingForwardBf16(f32(out, 'embeddingBf16'), i32(ids, 'embeddingBf16'), bf16(wte, 'embeddingBf16'), T, C),
    embeddingBackward: (dwte, dout, ids, T, C) =>
      k.embeddingBackward(
        f32(dwte, 'embeddingBackward'),
        f32(dout, 'embeddingBackward'),
        i32(ids, 'embeddingBackward'),
        T,
        C,
      ),
    rmsnormForward: (out, rstd, inp, w, T, C, eps) =>
      k.rmsnormForward(f32(out, 'rmsnorm'), f32(rstd, 'rmsnorm'), f32(inp, 'rmsnorm'), f32(w, 'rmsnorm'), T, C, eps),
    rmsnormBackward: (dinp, dw, dout, inp, w, rstd, T, C) =>
      k.rmsnormBackward(
        f32(dinp, 'rmsnormBackward'),
        f32(dw, 'rmsnormBackward'),
        f32(dout, 'rmsnormBackward'),
        f32(inp, 'rmsnormBackward'),
        f32(w, 'rmsnormBackward'),
        f32(rstd, 'rmsnormBackward'),
        T,
        C,
      ),
    ropeForward: (x, pos, T, NH, HD, theta) => k.ropeForward(f32(x, 'rope'), i32(pos, 'rope'), T, NH, HD, theta),
    ropeBackward: (dx, pos, T, NH, HD, theta) =>
      k.ropeBackward(f32(dx, 'ropeBackward'), i32(pos, 'ropeBackward'), T, NH, HD, theta),
    attentionForward: (out, lse, q, kk, v, cu, B, T, NH, NKV, HD) =>
      k.attentionForward(
        f32(out, 'attention'),
        f32(lse, 'attention'),
        f32(q, 'attention'),
        f32(kk, 'attention'),
        f32(v, 'attention'),
        i32(cu, 'attention'),
        B,
        T,
        NH,
        NKV,
        HD,
      ),
    attentionBackward: (dq, dk, dv, dout, q, kk, v, out, lse, cu, B, T, NH, NKV, HD) =>
      k.attentionBackward(
        f32(dq, 'attentionBackward'),
        f32(dk, 'attentionBackward'),
        f32(dv, 'attentionBackward'),
        f32(dout, 'attentionBackward'),
        f32(q, 'attentionBackward'),
        f32(kk, 'attentionBackward'),
        f32(v, 'attentionBackward'),
        f32(out, 'attentionBackward'),
        f32(lse, 'attentionBackward'),
        i32(cu, 'attentionBackward'),
        B,
        T,
        NH,
        NKV,
        HD,
      ),
    attentionDecode: (out, q, kc, vc, slots, lens, B, NH, NKV, HD, maxLen) =>
      k.attentionDecode(
        f32(out, 'attentionDecode'),
        f32(q, 'attentionDecode'),
        f32(kc, 'attentionDecode'),
        f32(vc, 'attentionDecode'),
        i32(slots, 'attentionDecode'),
        i32(lens, 'attentionDecode'),
        B,
        NH,
        NKV,
        HD,
        maxLen,
      ),
    attentionDecodeBf16: (out, q, kc, vc, slots, lens, B, NH, NKV, HD, maxLen) =>
      k.attentionDecodeBf16(
        f32(out, 'attentionDecodeBf16'),
        f32(q, 'attentionDecodeBf16'),
        bf16(kc, 'attentionDecodeBf16'),
        bf16(vc, 'attentionDecodeBf16'),
        i32(slots, 'attentionDecodeBf16'),
        i32(lens, 'attentionDecodeBf16'),
        B,
        NH,
        NKV,
        HD,
        maxLen,
      ),
    swigluForward: (out, gateUp, T, I) => k.swigluForward(f32(out, 'swiglu'), f32(gateUp, 'swiglu'), T, I),
    swigluBackward: (dgateUp, dout, gateUp, T, I) =>
      k.swigluBackward(
        f32(dgateUp, 'swigluBackward'),
        f32(dout, 'swigluBackward'),
        f32(gateUp, 'swigluBackward'),
        T,
        I,
      ),
    add: (out, a, b, n) => k.add(f32(out, 'add'), f32(a, 'add'), f32(b, 'add'), n),
    copyColumns: (dst, src, rows, cols, ds, dc, ss, sc) =>
      k.copyColumns(f32(dst, 'copyColumns'), f32(src, 'copyColumns'), rows, cols, ds, dc, ss, sc),
    lossHeadForward: (lp, ent, logits, targets, T, V) =>
      k.lossHeadForward(
        f32(lp, 'lossHead'),
        f32(ent, 'lossHead'),
        f32(logits, 'lossHead'),
        i32(targets, 'lossHead'),
        T,
        V,
      ),
    lossHeadBackward: (dlogits, logits, targets, cl, ce, T, V) =>
      k.lossHeadBackward(
        f32(dlogits, 'lossHeadBackward'),
        f32(logits, 'lossHeadBackward'),
        i32(targets, 'lossHeadBackward'),
        f32(cl, 'lossHeadBackward'),
        f32(ce, 'lossHeadBackward'),
        T,
        V,
      ),
    adamw: (p, g, m, v, n, lr, b1, b2, eps, wd, step) =>
      k.adamw(f32(p, 'adamw'), f32(g, 'adamw'), f32(m, 'adamw'), f32(v, 'adamw'), n, lr, b1, b2, eps, wd, step),
    chooseToken: (out, logits, V, invT, u) => k.chooseToken(out, f32(logits, 'chooseToken'), V, invT, u),
    chooseTokenTruncated: (out, logits, V, invT, topK, topP, u) =>
      k.chooseTokenTruncated(out, f32(logits, 'chooseTokenTruncated'), V, invT, topK, topP, u),
    sumSquares: (x, n) => k.sumSquares(f32(x, 'sumSquares'), n),
    scale: (x, s, n) => k.scale(f32(x, 'scale'), s, n),
  };
}
