// `red report RUN_DIR... --out DIR`: the demo's report (table, training curves, token view) from
// any run folders, read from their config.yaml, metrics.jsonl and eval results.
import type { Command } from 'commander';
import type { BuildReportOptions } from '../report/build.ts';
import { fail } from '../util/errors.ts';

interface ReportCliOptions {
  out: string;
  base?: string;
  baseEval?: string;
  title?: string;
  traceFile?: string;
  tokenDiff: string;
  backend: string;
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description(
      'build report.html, results.md/.json and figures/*.svg|png from run folders (red train outputs; eval results in RUN/eval/results.json or RUN/results.json)',
    )
    .argument('<runs...>', 'run folders')
    .requiredOption('--out <dir>', 'output folder')
    .option('--base <dir>', 'base model folder or Hub id (Figure 5\'s "before"; default: the runs\' model.path)')
    .option('--base-eval <dir>', 'red eval folder of the base model (a "base" row in the table)')
    .option('--title <text>', 'page title')
    .option('--trace-file <jsonl>', 'take the teacher trace of Figure 5 from this file (problem/answer/distill)')
    .option('--token-diff <mode>', 'auto (small models only), off, force', 'auto')
    .option('--backend <name>', 'auto, native or reference', 'auto')
    .action(async (runs: string[], opts: ReportCliOptions) => {
      const mode = opts.tokenDiff;
      if (mode !== 'auto' && mode !== 'off' && mode !== 'force')
        fail(`--token-diff must be auto, off or force, got '${mode}'`);
      const backend = opts.backend;
      if (backend !== 'auto' && backend !== 'native' && backend !== 'reference')
        fail(`--backend must be auto, native or reference, got '${backend}'`);
      const { buildReport, readReportInputs } = await import('../report/build.ts');
      const { resolveModelPath } = await import('../hub/snapshot.ts');
      const baseDir = opts.base ? await resolveModelPath(opts.base, '--base') : '';
      const options: BuildReportOptions = {
        runDirs: runs,
        out: opts.out,
        ...(opts.base || opts.baseEval
          ? { base: { dir: baseDir, ...(opts.baseEval ? { evalDir: opts.baseEval } : {}) } }
          : {}),
        ...(opts.title ? { title: opts.title } : {}),
        ...(opts.traceFile ? { traceFile: opts.traceFile } : {}),
        tokenDiff: mode,
        backend,
      };
      // Every run folder and input is read before --out is made: a bad command leaves nothing.
      const inputs = readReportInputs(options);
      // --out is a new folder or a report's (a demo's holds one too), and none of the inputs: the
      // report's results.json must not replace the one `red eval` wrote into a run folder.
      const own = await import('../util/ownership.ts');
      own.checkOutFolder(opts.out, { command: 'red report', kind: 'report', alsoInto: ['demo'] });
      own.checkOutIsNoInput(opts.out, [
        ...runs.map((r) => ({ option: 'run folder', path: r })),
        { option: '--base', path: baseDir },
        { option: '--base-eval', path: opts.baseEval },
        { option: '--trace-file', path: opts.traceFile },
      ]);
      // One writer per report folder (a demo writing its report there holds it too).
      (await import('../util/lock.ts')).lockFolder(opts.out, 'report');
      own.markFolder(opts.out, 'report', 'red report');
      const r = await buildReport(options, inputs);
      process.stdout.write(r.markdown);
      process.stderr.write(
        `wrote ${r.html}, results.md, results.json and ${r.figures.length} figures in ${opts.out}/figures${r.tokenDiffSkipped ? ` (token view: ${r.tokenDiffSkipped})` : ''}\n`,
      );
    });
}
