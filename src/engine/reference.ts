// The TypeScript reference: the living definition of every kernel in kernels.ts (referenceKernels,
// on host arrays) and, through cpu.ts, the reference Backend of handles (referenceBackend).
// Plain loops, sums accumulated in doubles, no cleverness beyond register tiles and a
// cache-friendly loop order in the matrix products; the native addon is tested against it, and it
// is the fallback when no compiler exists. The kernels live in reference/, one file per native
// file (gemm, kernels, attention, bf16), so a kernel's twin is found by its file name.
import type { Backend } from './backend.ts';
import { cpuBackend } from './cpu.ts';
import type { HostKernels } from './kernels.ts';
import { attentionBackward, attentionDecode, attentionDecodeBf16, attentionForward } from './reference/attention.ts';
import {
  embeddingForwardBf16,
  linearBackwardBf16,
  linearForwardBf16,
  matmulBf16,
  roundBf16,
  widenBf16,
} from './reference/bf16.ts';
import { matmul } from './reference/gemm.ts';
import {
  adamw,
  add,
  copyColumns,
  chooseToken,
  chooseTokenTruncated,
  embeddingBackward,
  embeddingForward,
  linearBackward,
  linearForward,
  lossHeadBackward,
  lossHeadForward,
  rmsnormBackward,
  rmsnormForward,
  ropeBackward,
  ropeForward,
  scale,
  sumSquares,
  swigluBackward,
  swigluForward,
} from './reference/kernels.ts';

export const referenceKernels: HostKernels = {
  name: 'reference',
  isa: 'typescript',
  threads: 1,
  matmul,
  matmulBf16,
  linearForward,
  linearForwardBf16,
  linearBackward,
  linearBackwardBf16,
  roundBf16,
  widenBf16,
  embeddingForward,
  embeddingForwardBf16,
  embeddingBackward,
  rmsnormForward,
  rmsnormBackward,
  ropeForward,
  ropeBackward,
  attentionForward,
  attentionBackward,
  attentionDecode,
  attentionDecodeBf16,
  chooseToken,
  chooseTokenTruncated,
  swigluForward,
  swigluBackward,
  add,
  copyColumns,
  lossHeadForward,
  lossHeadBackward,
  adamw,
  sumSquares,
  scale,
};

/** The reference kernels behind the handle contract: tensors are host arrays. */
export const referenceBackend: Backend = cpuBackend(referenceKernels);
