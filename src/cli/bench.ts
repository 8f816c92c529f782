// `red bench <name>`: benchmarks that print one JSON line per figure, each beside a peer
// measured in the same run (numpy for GEMM, the memory bandwidth for decode, ...).
import type { Command } from 'commander';
import type { BenchOptions } from '../bench/options.ts';
import { fail } from '../util/errors.ts';

type BenchFn = (opts: BenchOptions) => Promise<void>;

// name → lazy loader of the module whose `run` performs the benchmark.
const benches: Record<string, () => Promise<{ run: BenchFn }>> = {
  generate: () => import('../bench/generate.ts'),
  engine: () => import('../bench/engine.ts'),
  verify: () => import('../bench/verify.ts'),
  eval: () => import('../bench/eval.ts'),
  serve: () => import('../bench/serve.ts'),
};

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(`benchmarks, one JSON line per figure (${Object.keys(benches).join(', ') || 'none yet'})`)
    .argument('<name>', 'which benchmark')
    .option('--quick', 'smaller sizes, fewer repeats', false)
    .option('--backend <name>', 'native or reference (default: native when built)')
    .option('--precision <name>', 'fp32 or bf16: the model benches run in it (engine: GEMMs run in both)')
    .option('--engine <kind>', "engine: torch = the PyTorch training engine's step beside the native one")
    .action(async (name: string, opts: BenchOptions) => {
      if (opts.engine !== undefined && (name !== 'engine' || !['native', 'torch'].includes(opts.engine)))
        fail(`--engine takes native or torch, with the engine benchmark only (got ${name} --engine ${opts.engine})`);
      const load = opts.engine === 'torch' ? () => import('../bench/torch-engine.ts') : benches[name];
      if (!load) fail(`unknown benchmark "${name}"; available: ${Object.keys(benches).join(', ')}`);
      const mod = await load();
      await mod.run(opts);
    });
}
