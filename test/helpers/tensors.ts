// Host arrays onto a backend and back, for tests: the contract's upload and download in one call.
import type { Backend, DType, HostArrayOf, Tensor } from '../../src/engine/backend.ts';

const DTYPE_OF = (a: Float32Array | Uint16Array | Int32Array): DType =>
  a instanceof Float32Array ? 'f32' : a instanceof Uint16Array ? 'bf16' : 'i32';

/** A new tensor holding `host` (dtype from its array type). */
export function tensorOf(be: Backend, host: Float32Array): Tensor<'f32'>;
export function tensorOf(be: Backend, host: Uint16Array): Tensor<'bf16'>;
export function tensorOf(be: Backend, host: Int32Array): Tensor<'i32'>;
export function tensorOf(be: Backend, host: HostArrayOf[DType]): Tensor {
  const t = be.alloc(DTYPE_OF(host), host.length);
  be.upload(t, host as never);
  return t;
}
