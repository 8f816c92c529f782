// bfloat16 on the host: a bf16 tensor is a Uint16Array of raw bits (the top half of an fp32).
// fp32 → bf16 rounds to nearest, ties to even, as torch and the CPU's vcvtneps2bf16 do; bf16 →
// fp32 is exact. The one definition of both conversions; host kernels take bf16 as Uint16Array and a
// bf16 tensor (backend.ts) holds these bits.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bits nearest to x (ties to even; NaN stays NaN). */
export function bf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The fp32 value of bf16 bits h (exact). */
export function bf16Value(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

/** x rounded to bf16, as a new Uint16Array of bits. */
export function toBf16(x: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(x.length);
  if (!(x instanceof Float32Array)) {
    for (let i = 0; i < x.length; i++) out[i] = bf16Bits(x[i]);
    return out;
  }
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length); // bf16Bits on the bits, without a copy
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    out[i] = (b & 0x7fffffff) > 0x7f800000 ? (b >>> 16) | 0x40 : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
  }
  return out;
}

/** bf16 bits widened to fp32 (exact), into `out` when given. */
export function fromBf16(h: Uint16Array, out = new Float32Array(h.length)): Float32Array {
  const o32 = new Uint32Array(out.buffer, out.byteOffset, h.length);
  for (let i = 0; i < h.length; i++) o32[i] = h[i] << 16;
  return out;
}

/** x rounded to bf16 and widened back: the fp32 values a bf16 tensor of x holds. */
export function roundToBf16(x: ArrayLike<number>): Float32Array {
  return fromBf16(toBf16(x));
}
