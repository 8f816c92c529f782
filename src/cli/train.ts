// `red train`: post-train a model with one of the paper's methods (a preset of the algorithm
// options) from a YAML config; --set overrides any field, --max-steps stops early (the schedule is
// unchanged), --resume continues from the newest complete checkpoint.
import type { Command } from 'commander';
import { fail } from '../util/errors.ts';

interface TrainCliOptions {
  config?: string;
  out: string;
  method?: string;
  set: string[];
  maxSteps?: number;
  resume: boolean;
  force: boolean;
  saveDtype?: string;
}

export function registerTrain(program: Command): void {
  program
    .command('train')
    .description(
      'train a model (sft, grpo, sft-grpo, mixpolicy, luffy, srft, relift, bread, red-I, red-II, red); writes DIR/config.yaml, metrics.jsonl and checkpoints/step-N',
    )
    .option('--config <file>', 'YAML config (see examples/); with --resume, defaults to DIR/config.yaml')
    .requiredOption('--out <dir>', 'output folder')
    .option('--method <name>', "the method preset (overrides the config's method)")
    .option(
      '--set <key.path=value>',
      'override one config field, e.g. --set rollout.groupSize=4 (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--max-steps <n>',
      'stop after step N and write a checkpoint (the lr schedule is unchanged)',
      (v: string) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) fail(`--max-steps must be a positive integer, got '${v}'`);
        return n;
      },
    )
    .option(
      '--save-dtype <dtype>',
      "dtype of the checkpoints' model.safetensors: fp32 or bf16 (the fp32 master weights are kept beside it for --resume); sets checkpoint.saveDtype",
    )
    .option('--resume', 'continue from the newest complete checkpoint in DIR', false)
    .option(
      '--force',
      'without --resume: delete the run already in DIR and start over; with --resume: continue even though the method or model changed',
      false,
    )
    .action(async (opts: TrainCliOptions) => {
      const { runTrain } = await import('../train/run.ts');
      await runTrain({
        config: opts.config,
        out: opts.out,
        method: opts.method,
        // A shortcut for the config key, validated with the rest of the config (one error path).
        sets: opts.saveDtype === undefined ? opts.set : [...opts.set, `checkpoint.saveDtype=${opts.saveDtype}`],
        maxSteps: opts.maxSteps,
        resume: opts.resume,
        force: opts.force,
      });
    });
}
