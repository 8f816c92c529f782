// Host arrays onto a backend and back, for tests: the contract's upload and download in one call.
import { hostDType, type Backend, type DType, type HostArrayOf, type Tensor } from '../../src/engine/backend.ts';

/** A new tensor holding `host` (dtype from its array type). */
export function tensorOf(be: Backend, host: Float32Array): Tensor<'f32'>;
export function tensorOf(be: Backend, host: Uint16Array): Tensor<'bf16'>;
export function tensorOf(be: Backend, host: Int32Array): Tensor<'i32'>;
export function tensorOf(be: Backend, host: HostArrayOf[DType]): Tensor {
  const t = be.alloc(hostDType(host)!, host.length);
  be.upload(t, host as never);
  return t;
}
