// `red bench eval`: evaluation throughput (problems/s, samples/s, tokens/s) of `red eval`'s code
// path on the built-in task's held-out split, with a random model of the tiny task model's shape,
// beside the sampler's own decode rate measured in the same run: the gap is what loading,
// prompting, verifying and saving progress cost on top of generation.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchOptions } from './options.ts';
import { builtinRows } from '../data/task/builtin.ts';
import { builtinTokenizerFiles } from '../data/task/tokenizer.ts';
import { getBackend, type BackendPreference } from '../engine/index.ts';
import { parseConfig } from '../model/config.ts';
import { Qwen2Model } from '../model/qwen2.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { newGenerateStats } from '../rollout/sampler.ts';
import { fail } from '../util/errors.ts';
import { makeTempDir } from '../util/exit.ts';
import { loadBenchmark, resolveBenchmark } from '../eval/benchmarks.ts';
import { mathVerifier, samplerGenerator } from '../eval/generator.ts';
import { samplingFor } from '../eval/protocol.ts';
import { runEval } from '../eval/run.ts';

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'eval', ...fields }));
}

export async function run(opts: BenchOptions): Promise<void> {
  const pref = (opts.backend ?? 'auto') as BackendPreference;
  if (pref !== 'auto' && pref !== 'native' && pref !== 'reference')
    fail(`--backend must be auto, native or reference, got '${opts.backend}'`);
  const backend = getBackend(pref);
  const rows = builtinRows('test', opts.quick ? 24 : undefined, 0); // default: the whole held-out split
  const problems = rows.length;
  const n = 4;
  const maxTokens = opts.quick ? 32 : 128;
  const scratch = makeTempDir('red-bench-eval-');
  const dir = scratch.path;
  try {
    const file = path.join(dir, 'heldout.jsonl');
    writeFileSync(
      file,
      rows.map((r) => JSON.stringify({ problem: r.problem, answer: r.answer, level: r.level })).join('\n') + '\n',
    );
    const tokenizer = new Tokenizer({ ...builtinTokenizerFiles(), generationConfig: {}, source: 'built-in tokenizer' });
    // The built-in task's tiny model shape (hidden 128, 3 layers), random weights: a random model
    // rarely stops early, so this is the slow end of the range.
    const config = parseConfig(
      {
        model_type: 'qwen2',
        hidden_size: 128,
        intermediate_size: 352,
        num_hidden_layers: 3,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        vocab_size: tokenizer.vocabSize,
        max_position_embeddings: 2048,
        rope_theta: 10000,
        rms_norm_eps: 1e-6,
        tie_word_embeddings: true,
      },
      'bench tiny model',
    );
    const model = Qwen2Model.init(config, 0, { backend });
    const spec = resolveBenchmark(`heldout=${file}`, undefined, n);
    const jobs = [
      { spec, file, problems: await loadBenchmark(spec, undefined), sampling: samplingFor(spec, { maxTokens }) },
    ];
    const stats = newGenerateStats();
    const results = await runEval({
      outDir: path.join(dir, 'out'),
      model: 'random-tiny',
      jobs,
      generate: samplerGenerator({ model, tokenizer, stats }),
      verifier: mathVerifier,
      prompt: 'qwen-boxed',
      seed: 0,
      chunkSamples: 1024,
    });
    const t = results.throughput;
    if (!t) fail('bench eval: nothing was generated');
    const base = {
      backend: backend.name,
      problems,
      n,
      max_tokens: maxTokens,
      mean_len: +results.benchmarks[0].len.toFixed(1),
    };
    emit({ ...base, name: 'problems_per_s', value: +t.problemsPerS.toFixed(3), wall_s: +t.wallS.toFixed(2) });
    emit({ ...base, name: 'samples_per_s', value: +t.samplesPerS.toFixed(2) });
    emit({ ...base, name: 'tokens_per_s', value: +t.tokensPerS.toFixed(1) });
    // The peer: generation alone (prefill + decode time inside generate()).
    const genS = stats.prefillSeconds + stats.decodeSeconds;
    emit({
      ...base,
      name: 'sampler_tokens_per_s',
      value: +(t.tokens / genS).toFixed(1),
      generate_s: +genS.toFixed(2),
      eval_overhead_frac: +(1 - genS / t.wallS).toFixed(3),
    });
  } finally {
    await mathVerifier.close?.();
    scratch.remove();
  }
}
