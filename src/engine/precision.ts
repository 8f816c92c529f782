// The numeric precision a model runs in: fp32 everywhere, or bf16 weights (GEMMs on bf16
// operands with fp32 accumulation; norms, softmax, entropy and the loss head stay fp32), and how
// mixed precision's backward feeds its bf16 GEMMs.
import { fail } from '../util/errors.ts';
import type { Backend } from './backend.ts';

export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** `value` as a Precision; otherwise a one-line error naming `source` and the choices. */
export function parsePrecision(value: string | undefined, source: string, fallback: Precision = 'fp32'): Precision {
  if (value === undefined) return fallback;
  if ((PRECISIONS as readonly string[]).includes(value)) return value as Precision;
  fail(`${source} must be one of ${PRECISIONS.join(', ')}; got "${value}"`);
}

/**
 * How mixed precision's backward treats dout and the layer input of each linear layer before its
 * bf16 GEMMs (HostKernels.linearBackwardBf16): "round" to bf16, the usual mixed precision; or
 * "split" each into a bf16 hi+lo pair, as accurate as fp32 products at 2.5× the bf16 GEMM work
 * (a ~25% slower 20M train step). Whether split trains better is not settled, hence the choice.
 */
export const BF16_BACKWARDS = ['round', 'split'] as const;
export type Bf16Backward = (typeof BF16_BACKWARDS)[number];
export const DEFAULT_BF16_BACKWARD: Bf16Backward = 'split';

/** `value` as a Bf16Backward; otherwise a one-line error naming `source` and the choices. */
export function parseBf16Backward(value: string | undefined, source: string): Bf16Backward {
  if (value === undefined) return DEFAULT_BF16_BACKWARD;
  if ((BF16_BACKWARDS as readonly string[]).includes(value)) return value as Bf16Backward;
  fail(`${source} must be one of ${BF16_BACKWARDS.join(', ')}; got "${value}"`);
}

let warnedSlowBf16 = false;

/**
 * Says once per process when bf16 runs without a bf16 dot-product unit (the backend widens bf16 to
 * fp32: correct, but slower than fp32 itself).
 */
export function noteBf16Speed(be: Backend): void {
  const isa = (be as { bf16Isa?: string }).bf16Isa;
  if (warnedSlowBf16 || isa?.startsWith('avx512_bf16')) return;
  warnedSlowBf16 = true;
  process.stderr.write(
    `note: bf16 on the ${be.name} backend (${isa ?? be.isa}) has no avx512_bf16 kernels here; it works, converting to fp32, and runs slower than fp32\n`,
  );
}
