// `red demo` (= `npm start`): every Table 2 method on the built-in task with one budget and seed,
// evaluated on the held-out split; prints the table and writes the report. --quick: ≤ 2 minutes.
import type { Command } from 'commander';
import type { DemoOptions } from '../demo/run.ts';
import { fail } from '../util/errors.ts';

interface DemoCliOptions {
  out: string;
  quick: boolean;
  tiny: boolean;
  steps?: string;
  methods?: string;
  seeds: string;
  /** false with --no-cache. */
  cache: string | false;
  backend: string;
  base?: string;
  set: string[];
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'train every Table 2 method (sft, grpo, sft-grpo, mixpolicy, luffy, srft, relift, bread, red-I, red-II, red) on the built-in task from one tiny base model, evaluate each on the held-out split, write results.md/.json and report.html (default ≤ 15 min on 2 cores)',
    )
    .option(
      '--out <dir>',
      'output folder: base/, data/, runs/<method>/seed-<n>/, results.md, results.json, report.html, figures/',
      'runs/demo',
    )
    .option('--quick', 'a much smaller model and budget (≤ 2 minutes)', false)
    .option('--tiny', 'the smallest budget (seconds per method; the pipeline test)', false)
    .option('--steps <n>', "optimiser steps per method (per stage), overriding the budget's")
    .option('--methods <list>', 'comma-separated subset of the methods')
    .option('--seeds <n>', 'seeds per method (42, 43, …): the table shows mean ± s.e. over them', '1')
    .option(
      '--cache <dir>',
      'where the data and the base model are kept between demos (env RED_CACHE)',
      process.env.RED_CACHE ?? '.red-cache',
    )
    .option('--no-cache', 'build the data and the base model inside --out')
    .option('--base <dir>', 'start every method from this model folder instead of the pretrained tiny base')
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .option(
      '--set <key.path=value>',
      'override an option of the shared training config for every run, as red train --set (repeatable; e.g. algorithm.accuracyIncludesOffline=false)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(async (opts: DemoCliOptions) => {
      const { BUDGETS } = await import('../demo/budget.ts');
      const { checkDemoOptions, runDemo } = await import('../demo/run.ts');
      if (opts.quick && opts.tiny) fail('--quick and --tiny are two budgets; give one');
      const backend = opts.backend;
      if (backend !== 'auto' && backend !== 'native' && backend !== 'reference')
        fail(`--backend must be auto, native or reference, got '${backend}'`);
      const base = BUDGETS[opts.tiny ? 'tiny' : opts.quick ? 'quick' : 'default'];
      let steps = base.train.steps;
      if (opts.steps !== undefined) {
        steps = Number(opts.steps);
        if (!Number.isInteger(steps) || steps < 1) fail(`--steps must be a positive integer, got '${opts.steps}'`);
      }
      const methods = opts.methods
        ?.split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      const seeds = Number(opts.seeds);
      if (!Number.isInteger(seeds) || seeds < 1) fail(`--seeds must be a positive integer, got '${opts.seeds}'`);
      const demo: DemoOptions = {
        out: opts.out,
        budget: { ...base, train: { ...base.train, steps } },
        cacheDir: opts.cache === false ? null : opts.cache,
        methods,
        seeds,
        ...(opts.base !== undefined ? { baseModel: opts.base } : {}),
        backend,
        sets: opts.set,
      };
      // Every argument is checked before --out is made: a bad command leaves nothing behind.
      checkDemoOptions(demo);
      // The demo replaces its own base/, data/ and runs in --out: a folder of the user's, or one
      // holding the --base model, is refused.
      const own = await import('../util/ownership.ts');
      own.checkOutFolder(opts.out, { command: 'red demo', kind: 'demo' });
      own.checkOutIsNoInput(opts.out, [{ option: '--base', path: opts.base }], true);
      // One demo per folder (released on exit).
      (await import('../util/lock.ts')).lockFolder(opts.out, 'demo');
      own.markFolder(opts.out, 'demo', 'red demo');
      // Ctrl-C: finished methods are kept and reused by the same command, so say how to resume.
      process.once('SIGINT', () => {
        const again = ['red', ...process.argv.slice(2)].join(' ');
        process.stderr.write(
          `\nInterrupted. Every method that finished is kept in ${opts.out}/runs and reused: run \`${again}\` again to resume (the method that was running starts over).\n`,
        );
        process.exit(130);
      });
      const result = await runDemo(demo);
      process.stdout.write(
        `\n${result.markdown}\nOutputs in ${result.out} (report.html, results.md, results.json, figures/, runs/<method>/seed-<n>/).\n`,
      );
    });
}
