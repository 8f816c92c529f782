// `red pretrain`: trains the tiny base model of the built-in task from scratch (short solutions
// plus a small share of teacher traces, easy-skewed curriculum) and saves it as a Hugging Face model folder with its tokenizer.
import type { Command } from 'commander';
import { BF16_BACKWARDS, DEFAULT_BF16_BACKWARD, parseBf16Backward, parsePrecision } from '../engine/precision.ts';
import type { PretrainOptions, PretrainStep } from '../train/pretrain.ts';
import { fail } from '../util/errors.ts';

interface PretrainCliOptions {
  out: string;
  seed?: string;
  steps?: string;
  batchSize?: string;
  lr?: string;
  quick: boolean;
  evalPerLevel?: string;
  backend?: string;
  precision?: string;
  bf16Backward?: string;
  saveDtype?: string;
  force: boolean;
}

function parseNumber(name: string, value: string | undefined, integer: boolean): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < 0)
    fail(`--${name} must be a non-negative ${integer ? 'integer' : 'number'}, got '${value}'`);
  return n;
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description(
      'pretrain the tiny Qwen2 base model of the built-in task (partial ability: easy problems sometimes, hard ones rarely)',
    )
    .requiredOption('--out <dir>', 'output model folder (config.json, model.safetensors, tokenizer files)')
    .option('--seed <n>', 'seed of initialisation, data order and evaluation (default 0)')
    .option('--steps <n>', 'optimiser steps (default 3600; --quick 20)')
    .option('--batch-size <n>', 'sequences per step (default 16)')
    .option('--lr <x>', 'peak learning rate (default 5e-3)')
    .option('--eval-per-level <n>', 'held-out problems per level sampled at the end (0 = skip)')
    .option('--quick', 'a much smaller model and a short run (smoke test)', false)
    .option('--backend <name>', 'auto, native or reference (default auto)')
    .option('--precision <name>', 'fp32, or bf16: mixed precision (fp32 master weights, bf16 GEMMs) (default fp32)')
    .option(
      '--bf16-backward <mode>',
      `with --precision bf16, how backward feeds its bf16 GEMMs: ${BF16_BACKWARDS.join(' or ')} (round: dout and inputs rounded to bf16; split: bf16 hi+lo pairs, fp32-accurate, slower) (default ${DEFAULT_BF16_BACKWARD})`,
    )
    .option('--save-dtype <dtype>', 'dtype of the saved model.safetensors: fp32 or bf16 (default fp32)')
    .option(
      '--force',
      'replace the model an earlier red pretrain wrote in --out (never a folder red did not write)',
      false,
    )
    .action(async (opts: PretrainCliOptions) => {
      const { pretrain, validatePretrainOptions, PRETRAIN_DEFAULTS, PRETRAIN_QUICK } =
        await import('../train/pretrain.ts');
      const { getBackend } = await import('../engine/index.ts');
      const backend = (['auto', 'native', 'reference'] as const).find((b) => b === opts.backend);
      if (opts.backend !== undefined && backend === undefined)
        fail(`--backend must be auto, native or reference, got '${opts.backend}'`);
      getBackend(backend); // --backend native without the addon fails here, before anything is written
      const base = { ...PRETRAIN_DEFAULTS, ...(opts.quick ? PRETRAIN_QUICK : {}) };
      const set = <T>(v: T | undefined, fallback: T): T => (v === undefined ? fallback : v);
      const steps = set(parseNumber('steps', opts.steps, true), base.steps);
      const every = Math.max(1, Math.round(steps / 20));
      const started = performance.now();
      const options = {
        ...base,
        out: opts.out,
        seed: set(parseNumber('seed', opts.seed, true), base.seed),
        steps,
        batchSize: set(parseNumber('batch-size', opts.batchSize, true), base.batchSize),
        lr: set(parseNumber('lr', opts.lr, false), base.lr),
        evalPerLevel: set(parseNumber('eval-per-level', opts.evalPerLevel, true), base.evalPerLevel),
        backend,
        precision: parsePrecision(opts.precision, '--precision'),
        bf16Backward: parseBf16Backward(opts.bf16Backward, '--bf16-backward'),
        saveDtype: parsePrecision(opts.saveDtype, '--save-dtype'),
        onStep: (s: PretrainStep) => {
          if (s.step % every === 0 || s.step === 1 || s.step === steps) {
            const elapsed = (performance.now() - started) / 1000;
            console.log(
              `step ${s.step}/${steps}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}  grad/norm ${s.gradNorm.toFixed(3)}  ${(s.tokens / s.seconds).toFixed(0)} tok/s  ${elapsed.toFixed(1)}s`,
            );
          }
        },
      };
      // Every argument is checked before --out is made (taking the lock makes it): a bad command leaves nothing.
      validatePretrainOptions(options);
      await checkPretrainRun(options, opts.force);
      // One writer per model folder; the lock leaves with the old folder when save() replaces it.
      (await import('../util/lock.ts')).lockFolder(opts.out, 'pretrain');
      const result = await pretrain(options);
      console.log(
        `saved ${result.dir} (${result.parameters} parameters, ${result.seconds.toFixed(1)}s, ${result.tokensPerSecond.toFixed(0)} tok/s)`,
      );
      if (result.levels.length > 0) {
        console.log('level  problems  sampled acc (T=1)  greedy acc');
        for (const l of result.levels)
          console.log(
            `${String(l.level).padStart(5)}  ${String(l.problems).padStart(8)}  ${l.sampledAcc.toFixed(3).padStart(17)}  ${l.greedyAcc.toFixed(3).padStart(10)}`,
          );
      }
    });
}

/**
 * What pretrain may replace and allocate: --out is new, empty, or a model an earlier red pretrain
 * wrote and --force is given (the save replaces the whole folder, so one holding anything red did
 * not write is refused even then); the step's memory fits; a learning rate above 1 is said.
 */
async function checkPretrainRun(o: PretrainOptions, force: boolean): Promise<void> {
  const { checkOutFolder, listEntries, unownedEntries } = await import('../util/ownership.ts');
  const state = checkOutFolder(o.out, { command: 'red pretrain', kind: 'model', force });
  if (state.entries.length > 0 && !force)
    fail(`--out ${o.out} already holds a model red pretrained; add --force to replace it, or choose another --out`);
  const foreign = state.entries.length > 0 ? unownedEntries(o.out, 'model') : [];
  if (foreign.length > 0)
    fail(
      `--out ${o.out} also holds ${listEntries(foreign)}, which red did not write; --force replaces the whole folder: move them out first, or choose another --out`,
    );
  const { parseConfig } = await import('../model/config.ts');
  const { tinyConfigJson } = await import('../data/task/model.ts');
  const { BUILTIN_VOCAB_SIZE } = await import('../data/task/tokenizer.ts');
  const { activationBytesPerToken, parameterCount } = await import('../model/footprint.ts');
  const { checkMemoryFits, formatCount } = await import('../util/memory.ts');
  const config = parseConfig(tinyConfigJson(o.model, BUILTIN_VOCAB_SIZE), 'tiny model config');
  const N = parameterCount(config);
  // Every sequence of a batch is a chat prompt and a response: a few tokens at the very least.
  const tokens = 2 * o.batchSize;
  checkMemoryFits('this pretraining', [
    { what: `weights, gradients and AdamW moments of ${formatCount(N)} parameters`, bytes: 16 * N },
    {
      what: `activations of ${tokens} tokens per step`,
      bytes: tokens * activationBytesPerToken(config, false),
      sizedBy: '--batch-size',
    },
  ]);
  if (o.lr > 1)
    process.stderr.write(
      `warning: --lr ${o.lr} is above 1: each AdamW step moves every weight by about lr, so the weights blow up at the first step (the default is 5e-3)\n`,
    );
}
