// The demo's evaluation of one model on the built-in held-out split through `red eval`'s own
// machinery (runEval: qwen-boxed prompt, math verifier, per-level Acc and LEN), at the budget's
// size: avg@k over the first N problems. Results land in OUT/results.json like `red eval`'s.
import { rmSync } from 'node:fs';
import { DEFAULT_CUSTOM_FIELDS, loadBenchmark, resolveBenchmark } from '../eval/benchmarks.ts';
import { mathVerifier, samplerGenerator } from '../eval/generator.ts';
import type { EvalResults } from '../eval/results.ts';
import { runEval } from '../eval/run.ts';
import { getBackend, type BackendPreference } from '../engine/index.ts';
import { Qwen2Model } from '../model/qwen2.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import type { DemoBudget } from './budget.ts';

/** The benchmark name of the built-in held-out split in results (`eval/heldout/acc`). */
export const HELDOUT = 'heldout';

export interface HeldOutEval {
  model: string;
  testFile: string;
  /** Replaced: a demo re-run evaluates afresh. */
  out: string;
  budget: DemoBudget;
  /** Seeds the samples (each seed of a method is evaluated with its own). */
  seed: number;
  backend?: BackendPreference;
}

export async function evaluateHeldOut(o: HeldOutEval): Promise<EvalResults> {
  const e = o.budget.eval;
  const spec = resolveBenchmark(`${HELDOUT}=${o.testFile}`, DEFAULT_CUSTOM_FIELDS, e.samples);
  const problems = await loadBenchmark(spec, undefined, e.problems);
  const model = await Qwen2Model.load(o.model, { backend: getBackend(o.backend ?? 'auto') });
  const tokenizer = loadTokenizer(o.model, model.config.vocabSize);
  rmSync(o.out, { recursive: true, force: true });
  return runEval({
    outDir: o.out,
    model: o.model,
    jobs: [
      {
        spec,
        file: o.testFile,
        problems,
        sampling: { n: e.samples, temperature: e.temperature, topP: 1, maxTokens: e.maxTokens },
      },
    ],
    generate: samplerGenerator({ model, tokenizer }),
    verifier: mathVerifier,
    prompt: 'qwen-boxed',
    seed: o.seed,
    chunkSamples: 4096,
  });
}
