// The contract every compute backend fulfils, written against handles so that a device backend
// is a new folder and no model code changes. A Tensor is an opaque handle with a dtype and a
// length; its storage belongs to the backend. A view is (tensor, offset, length) and shares the
// storage. upload and download are the only host↔device copies. Every kernel of HostKernels
// (kernels.ts, where each one is documented) is here with the same name and argument order, a
// Tensor in place of each typed array; small results stay host values (sumSquares returns a
// number, chooseToken writes its host Float64Array). src/engine/cpu.ts implements this contract
// once over any HostKernels table (the reference and the native addon).
import type { BackendName, HostKernels } from './kernels.ts';

export type { BackendName } from './kernels.ts';

/** Element types: f32, bf16 (raw bfloat16 bits, src/engine/bf16.ts) and i32 (ids, positions, offsets). */
export type DType = 'f32' | 'bf16' | 'i32';

/** The host array that holds each dtype (upload's source, download's destination). */
export interface HostArrayOf {
  f32: Float32Array;
  bf16: Uint16Array;
  i32: Int32Array;
}
export type HostArray = HostArrayOf[DType];

/** The dtype a host array holds (null for anything else). */
export function hostDType(a: unknown): DType | null {
  return a instanceof Float32Array ? 'f32' : a instanceof Uint16Array ? 'bf16' : a instanceof Int32Array ? 'i32' : null;
}

/** A handle to `length` elements of `dtype` owned by a backend; nothing else is visible. */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly length: number;
}

/** A host-kernel argument as the Backend takes it: a tensor of the matching dtype for each typed array. */
type OnDevice<A> = A extends Float32Array
  ? Tensor<'f32'>
  : A extends Uint16Array
    ? Tensor<'bf16'>
    : A extends Int32Array
      ? Tensor<'i32'>
      : A;
type DeviceKernel<F> = F extends (...args: infer P) => infer R
  ? (...args: { [I in keyof P]: OnDevice<P[I]> }) => R
  : never;

/** The kernel names of HostKernels (everything but the identity fields). */
export type KernelName = Exclude<keyof HostKernels, 'name' | 'isa' | 'threads'>;

/** Every kernel of HostKernels on tensors: derived, so the two can never disagree. */
export type DeviceKernels = { [K in KernelName]: DeviceKernel<HostKernels[K]> };

export interface Backend extends DeviceKernels {
  readonly name: BackendName;
  /** Which kernels the backend dispatched to, e.g. "avx512", "avx2", "portable", "typescript". */
  readonly isa: string;
  /** Threads the backend uses. */
  readonly threads: number;

  /** A new tensor of `length` elements, zero-filled. */
  alloc<D extends DType>(dtype: D, length: number): Tensor<D>;
  /** Elements offset .. offset+length−1 of t, sharing its storage (a view of a view works); out of range throws. */
  view<D extends DType>(t: Tensor<D>, offset: number, length: number): Tensor<D>;
  /**
   * Host → backend: src's elements into the first src.length elements of dst (dst may be longer:
   * buffers are allocated for the maximum). A source longer than dst, or of another dtype, throws.
   */
  upload<D extends DType>(dst: Tensor<D>, src: HostArrayOf[D]): void;
  /**
   * Backend → host: src's elements into the first src.length elements of dst (a new array of
   * src.length when dst is absent, so hot paths can reuse one); returns dst.
   */
  download<D extends DType>(src: Tensor<D>, dst?: HostArrayOf[D]): HostArrayOf[D];
  /** src into the first src.length elements of dst, on the backend (same dtype; dst may be longer). */
  copy<D extends DType>(dst: Tensor<D>, src: Tensor<D>): void;
  /** Every element of t set to 0 (also clears NaN, unlike scale by 0). */
  zero(t: Tensor): void;
}
