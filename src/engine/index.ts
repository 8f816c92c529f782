// Picks the compute backend: the native addon when it is built, else the TypeScript reference
// (with one warning per process). The env var RED_BACKEND overrides the caller's preference.
// Kernel tests reach the host kernel tables underneath (availableKernels).
import type { Backend } from './backend.ts';
import type { HostKernels } from './kernels.ts';
import { loadNativeBackend, loadNativeKernels } from './native.ts';
import { referenceBackend, referenceKernels } from './reference.ts';
import { fail } from '../util/errors.ts';

export type BackendPreference = 'auto' | 'native' | 'reference';

let nativeCache: Backend | null | undefined;
let warned = false;

function native(): Backend | null {
  if (nativeCache === undefined) nativeCache = loadNativeBackend();
  return nativeCache;
}

function parsePreference(value: string, source: string): BackendPreference {
  if (value === 'auto' || value === 'native' || value === 'reference') return value;
  fail(`${source} must be one of auto, native, reference; got "${value}"`);
}

/** The backend to compute on; `RED_BACKEND` (auto|native|reference) takes precedence over `pref`. */
export function getBackend(pref: BackendPreference = 'auto'): Backend {
  const env = process.env.RED_BACKEND;
  const choice = env ? parsePreference(env, 'RED_BACKEND') : parsePreference(pref, 'backend');
  switch (choice) {
    case 'reference':
      return referenceBackend;
    case 'native': {
      const b = native();
      if (!b)
        fail('the native engine is not built (run `npm install` with a C++ compiler, or use --backend reference)');
      return b;
    }
    case 'auto': {
      const b = native();
      if (b) return b;
      if (!warned) {
        warned = true;
        process.stderr.write('warning: native engine not built; running on the slow TypeScript reference backend\n');
      }
      return referenceBackend;
    }
    default:
      return choice satisfies never;
  }
}

/** Every backend usable on this machine (reference always, native when built), for tests. */
export function availableBackends(): Backend[] {
  const b = native();
  return b ? [referenceBackend, b] : [referenceBackend];
}

/** The host kernel tables behind availableBackends(), in the same order (kernel tests). */
export function availableKernels(): HostKernels[] {
  const k = loadNativeKernels();
  return k ? [referenceKernels, k] : [referenceKernels];
}

/** Names of the backends that are not available here, so tests can say what they skipped. */
export function skippedBackends(): string[] {
  return native() ? [] : ['native (not built)'];
}
