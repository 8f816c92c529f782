// Loads the native addon (build/Release/red_native.node, built by scripts/build-native.mjs from
// native/). The addon exports one function per HostKernels method with the same name and
// arguments, plus isa() and threads(); this file only binds them and puts the handle contract of
// cpu.ts over them. Returns null when the addon is not built.
// The addon picks AVX-512, AVX2+FMA or portable kernels once at load; RED_ISA=avx2|portable
// forces a lower set, OMP_NUM_THREADS the thread count. Every call checks that each buffer holds
// what its sizes imply (and the index arrays' ranges) and throws a RangeError/TypeError otherwise.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { fail } from '../util/errors.ts';
import type { Backend } from './backend.ts';
import { cpuBackend } from './cpu.ts';
import type { HostKernels } from './kernels.ts';

const addonPath = fileURLToPath(new URL('../../build/Release/red_native.node', import.meta.url));

/** What the native addon measures beyond the kernel contract (bench only). */
export interface NativeExtras {
  /**
   * Which bf16 kernels run: "avx512_bf16+amx" (GEMMs on AMX tiles), "avx512_bf16" (vdpbf16ps;
   * RED_AMX=0 or no AMX) or "fp32 fallback" (bf16 widened to fp32).
   */
  bf16Isa: string;
  /**
   * GFLOP/s of a register-only loop on every thread for ~seconds: fp32 FMAs, bf16 dot products
   * (vdpbf16ps) or AMX tile products; null when the CPU has no such unit.
   */
  peak(dtype: 'fp32' | 'bf16' | 'amx', seconds: number): number | null;
}

let kernelsCache: (HostKernels & NativeExtras) | null | undefined;

/** The addon's host kernels, or null when it is not built (loaded once per process). */
export function loadNativeKernels(): (HostKernels & NativeExtras) | null {
  if (kernelsCache === undefined) kernelsCache = bindAddon();
  return kernelsCache;
}

/** The native Backend of handles (cpu.ts over the addon's kernels), or null when it is not built. */
export function loadNativeBackend(): (Backend & NativeExtras) | null {
  const k = loadNativeKernels();
  return k && { ...cpuBackend(k), bf16Isa: k.bf16Isa, peak: k.peak };
}

function bindAddon(): (HostKernels & NativeExtras) | null {
  if (!existsSync(addonPath)) return null;
  const isa = process.env.RED_ISA;
  if (isa && !['avx512', 'avx2', 'portable'].includes(isa))
    fail(`RED_ISA must be avx512, avx2 or portable, got '${isa}'; unset it to use the best kernels this CPU runs`);
  // OpenMP's idle threads spin ~300k pauses (milliseconds) before sleeping by default. On a busy
  // machine that spinning takes the core the other worker needs: a 20M training step measured
  // 15-16 s by default vs 7-8 s with 3000 spins (2 shared cores), which still bridge the
  // microsecond gaps between back-to-back kernels. libgomp reads this when the addon loads it.
  if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) {
    process.env.GOMP_SPINCOUNT = '3000';
  }
  const require = createRequire(import.meta.url);
  const addon = require(addonPath) as Omit<HostKernels, 'name' | 'isa' | 'threads'> &
    Omit<NativeExtras, 'bf16Isa'> & { isa(): string; threads(): number; bf16Isa(): string };
  return {
    ...addon,
    name: 'native',
    isa: addon.isa(),
    threads: addon.threads(),
    bf16Isa: addon.bf16Isa(),
  };
}
