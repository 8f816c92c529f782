// `red data builtin`: writes the built-in task (train/held-out JSONL in the paper's format and the
// tiny model's tokenizer) to a folder.
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';

function intOption(name: string): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) fail(`--${name} must be a non-negative integer, got '${value}'`);
    return n;
  };
}

const rows = (levels: Record<number, number>) => Object.values(levels).reduce((a, b) => a + b, 0);

export function registerData(program: Command): void {
  const data = program.command('data').description('datasets: write the built-in task');
  data
    .command('builtin')
    .description(
      'write the built-in math task: train.jsonl, test.jsonl (problem, answer, distill, level) and the tiny tokenizer',
    )
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', 'generator seed', intOption('seed'), 0)
    .option('--train <n>', 'training problems (default: all of the train split)', intOption('train'))
    .option(
      '--test <n>',
      'held-out problems, never among the training ones (default: all of the held-out split)',
      intOption('test'),
    )
    .action(async (opts: { out: string; seed: number; train?: number; test?: number }) => {
      const { drawBuiltinDataset, writeBuiltinDataset } = await import('../data/task/builtin.ts');
      // Drawn (and the sizes checked) before --out is made: a bad command leaves nothing behind.
      const drawn = drawBuiltinDataset(opts);
      // Its files replace those of an earlier `red data builtin` only, never a folder of the user's.
      const own = await import('../util/ownership.ts');
      own.checkOutFolder(opts.out, { command: 'red data builtin', kind: 'data' });
      (await import('../util/lock.ts')).lockFolder(opts.out, 'data builtin');
      own.markFolder(opts.out, 'data', 'red data builtin');
      const files = writeBuiltinDataset(opts, drawn);
      console.log(
        `wrote ${files.train} (${rows(files.levels.train)} rows, per level ${JSON.stringify(files.levels.train)})`,
      );
      console.log(
        `wrote ${files.test} (${rows(files.levels.test)} rows, per level ${JSON.stringify(files.levels.test)})`,
      );
      console.log(`wrote ${opts.out}/tokenizer.json and tokenizer_config.json`);
    });
}
