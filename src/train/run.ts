// `red train` end to end: reads and validates the config (YAML + --set), writes DIR/config.yaml,
// builds the real components (the training engine, tokenizer, rollouts, verifier) into the
// Trainer's environment and runs every stage; Ctrl-C checkpoints after the current step.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describeSkipped, loadDataset, promptMessages, type TrainingExample } from '../data/dataset.ts';
import { hubRefOf } from '../hub/id.ts';
import { resolveDataFile, resolveModelPath } from '../hub/snapshot.ts';
import { loadConfig } from '../model/config.ts';
import { loadTokenizer, type Tokenizer } from '../model/tokenizer.ts';
import { closeVerifier, verify, warmVerifier } from '../reward/index.ts';
import { resolveStages } from '../rl/options.ts';
import { fail, systemErrorReason } from '../util/errors.ts';
import { writeFileAtomic } from '../util/fs.ts';
import { lockFolder } from '../util/lock.ts';
import {
  applySets,
  configToYaml,
  engineSettings,
  readYamlConfig,
  resolvePathKeys,
  resolveTrainConfig,
  type TrainConfig,
} from './config.ts';
import type { TrainingEngine } from './engine.ts';
import { createTrainingEngine } from './engines/index.ts';
import { createProgress, type Progress } from './metrics.ts';
import { checkTrainBounds } from './bounds.ts';
import { checkRunFolder, prepareRunFolder } from './runfolder.ts';
import { remoteRollouts } from './remote.ts';
import { engineRollouts, localRollouts } from './rollouts.ts';
import { Trainer, type TrainerEnv } from './trainer.ts';

export interface TrainCommand {
  /** YAML config; optional with resume (then DIR/config.yaml). */
  config?: string;
  out: string;
  method?: string;
  sets: string[];
  maxSteps?: number;
  resume: boolean;
  /** Without resume: empty a folder holding another run. With resume: accept a changed method or model. */
  force?: boolean;
}

/** Markers that end an assistant turn, in the order they are preferred as the trace's EOS. */
const END_OF_TURN = ['<|im_end|>', '<|endoftext|>'];

/** The config as the command line gives it: the file, then --method, then each --set. */
export function loadCommandConfig(cmd: TrainCommand): TrainConfig {
  const file = cmd.config ?? (cmd.resume ? path.join(cmd.out, 'config.yaml') : undefined);
  if (!file) fail('--config is required (or --resume with an output folder that holds config.yaml)');
  if (!existsSync(file)) fail(`${file}: config file not found`);
  const raw = readYamlConfig(file);
  if (cmd.method !== undefined) raw.method = cmd.method;
  applySets(raw, cmd.sets);
  // --set paths are relative to the working directory; config.yaml records them absolute.
  resolvePathKeys(raw, process.cwd());
  const sources = [file, cmd.method !== undefined ? '--method' : '', cmd.sets.length > 0 ? '--set' : ''].filter(
    (s) => s !== '',
  );
  const config = resolveTrainConfig(raw, sources.join(' + '));
  checkInputs(config, sources.join(' + '));
  return config;
}

/** The files the config names exist or are Hub ids (all missing ones listed at once, before anything loads). */
function checkInputs(config: TrainConfig, source: string): void {
  const problems: string[] = [];
  const folders: [string, string | undefined][] = [
    ['model.path', config.model.path],
    ['model.referencePath', config.model.referencePath],
  ];
  for (const [key, dir] of folders) {
    if (dir !== undefined && !existsSync(path.join(dir, 'config.json')) && (existsSync(dir) || !hubRefOf(dir, 'model')))
      problems.push(`${key}: ${dir} is not a model folder (no config.json)`);
  }
  if (!existsSync(config.data.train) && !hubRefOf(config.data.train, 'dataset'))
    problems.push(`data.train: ${config.data.train} not found`);
  const firstSteps = builtinFirstSteps(config, source);
  if (firstSteps) fail(firstSteps);
  if (problems.length > 0) fail(`invalid configuration (${source}):\n  ${problems.join('\n  ')}`);
}

/**
 * A config from examples/builtin/ on a fresh checkout names the built-in data and base model
 * before they exist: one line with the commands that make them (they are not Hub ids).
 */
function builtinFirstSteps(config: TrainConfig, source: string): string | null {
  if (!source.split(' + ')[0].split(path.sep).join('/').includes('examples/builtin/')) return null;
  const cli = path.relative(process.cwd(), process.argv[1] ?? '').startsWith('bin') ? 'node bin/red.js' : 'red';
  const steps: string[] = [];
  const shown = (p: string) =>
    path.relative(process.cwd(), p).startsWith('..') ? p : path.relative(process.cwd(), p) || '.';
  // A Hub id is fetched, never written: no step proposes `--out org/name`.
  if (!existsSync(config.data.train) && !hubRefOf(config.data.train, 'dataset'))
    steps.push(`${cli} data builtin --out ${shown(path.dirname(config.data.train))}`);
  if (!existsSync(path.join(config.model.path, 'config.json')) && !hubRefOf(config.model.path, 'model'))
    steps.push(`${cli} pretrain --out ${shown(config.model.path)}`);
  if (steps.length === 0) return null;
  return `${source}: the built-in task's inputs do not exist yet; make them first: ${steps.join(' && ')}`;
}

/** The config with Hub ids (model.path, model.referencePath, data.train) replaced by cached local paths. */
async function resolveHubInputs(config: TrainConfig): Promise<TrainConfig> {
  const model = { ...config.model, path: await resolveModelPath(config.model.path, 'model.path') };
  if (config.model.referencePath !== undefined)
    model.referencePath = await resolveModelPath(config.model.referencePath, 'model.referencePath');
  return { ...config, model, data: { ...config.data, train: await resolveDataFile(config.data.train, 'data.train') } };
}

/** Runs `red train`; returns the last step done. */
export async function runTrain(cmd: TrainCommand, progress?: Progress): Promise<number> {
  const config = loadCommandConfig(cmd);
  const stages = resolveStages(config.algorithm);
  const lock = lockFolder(cmd.out, 'train');
  // The weight-sync folder servers read from has one writer too (inside --out the run's lock covers it).
  const syncDir = config.rollout.engine === 'remote' ? config.rollout.syncDir : undefined;
  const syncLock = syncDir !== undefined ? lockFolder(syncDir, 'train (weight sync)') : null;
  try {
    const folder = checkRunFolder({ out: cmd.out, resume: cmd.resume, force: cmd.force ?? false }, config);
    // Model, tokenizer and data are loaded (and checked) before the folder changes: an input that
    // fails to load writes no config.yaml and leaves a run that --force would replace in place.
    const resolved = await resolveHubInputs(config);
    checkTrainBounds(resolved, stages); // sizes against the model and the machine, before anything is allocated
    const env = await buildEnv(
      resolved,
      stages.some((s) => s.klCoef > 0),
      cmd.out,
    );
    try {
      prepareRunFolder(cmd.out, folder);
      if (folder.changes.length > 0)
        process.stderr.write(
          `red train: resuming with settings changed since ${cmd.out} was started: ${folder.changes.join('; ')}\n`,
        );
      try {
        writeFileAtomic(path.join(cmd.out, 'config.yaml'), configToYaml(config));
      } catch (err) {
        fail(`cannot write to the output folder ${cmd.out}: ${systemErrorReason(err) ?? (err as Error).message}`);
      }
      return await trainInFolder(cmd, config, stages, env, progress);
    } finally {
      await env.engine.close();
    }
  } finally {
    syncLock?.release();
    lock.release();
  }
}

async function trainInFolder(
  cmd: TrainCommand,
  config: TrainConfig,
  stages: ReturnType<typeof resolveStages>,
  env: TrainerEnv,
  progress?: Progress,
): Promise<number> {
  const p = progress ?? createProgress(config.log.progress);
  const trainer = new Trainer(env, {
    config,
    stages,
    outDir: cmd.out,
    maxSteps: cmd.maxSteps,
    resume: cmd.resume,
    progress: p,
  });
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      p.stop();
      process.stderr.write('\nsecond Ctrl-C: exiting without a checkpoint of the current step\n');
      process.exit(130);
    }
    p.log('Ctrl-C: finishing the current step, then writing a checkpoint (Ctrl-C again to quit now)');
    trainer.requestStop();
  };
  process.on('SIGINT', onSigint);
  try {
    // Start the CAS workers now so their start-up is not billed to the first step's reward time.
    if (stages.some((s) => s.onlineRollouts)) await warmVerifier();
    const last = await trainer.run();
    p.stop();
    const resumeHint = interrupts > 0 ? `; to continue: red train --out ${cmd.out} --resume` : '';
    process.stderr.write(`red train: stopped at step ${last}; outputs in ${cmd.out}${resumeHint}\n`);
    if (interrupts > 0) process.exitCode = 130; // interrupted, as eval and demo report it (128 + SIGINT)
    return last;
  } finally {
    process.off('SIGINT', onSigint);
    p.stop();
    await closeVerifier();
  }
}

/** The real components behind the Trainer (the caller closes env.engine). */
export async function buildEnv(config: TrainConfig, needsReference: boolean, outDir = '.'): Promise<TrainerEnv> {
  const data = await loadDataset(config.data.train, {
    fields: config.data.fields,
    onBadRow: config.data.onBadRow,
    maxRowBytes: config.data.maxRowBytes,
  });
  if (data.skipped > 0)
    process.stderr.write(
      `warning: ${config.data.train}: skipped ${data.skipped} row(s) (${describeSkipped(data.skippedBy)}); counted in data/skipped_rows\n`,
    );
  const tokenizer = loadChatTokenizer(config);
  const stopIds = stopTokenIds(tokenizer);
  const eosId = END_OF_TURN.map((t) => tokenizer.tokenToId(t)).find((id) => id !== undefined) ?? tokenizer.eosIds[0];
  if (eosId === undefined)
    fail(`${config.model.path}: the tokenizer has no end-of-turn or EOS token to end the teacher traces with`);
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const engine = await createTrainingEngine(engineSettings(config, needsReference, log));
  try {
    return {
      engine,
      ...(await rolloutsOf(config, engine, tokenizer, stopIds, outDir)),
      verify: (items) => Promise.all(items.map(async (x) => ((await verify(x.gold, x.text)).equal ? 1 : 0))),
      ...tokenCaches(config, tokenizer, data.examples.length),
      decode: (ids) => tokenizer.decode(ids),
      eosId,
      examples: data.examples,
      skippedRows: data.skipped,
    };
  } catch (err) {
    await engine.close();
    throw err;
  }
}

/** rollout.engine's generate() (and, remote, the weight sync). */
async function rolloutsOf(
  config: TrainConfig,
  engine: TrainingEngine,
  tokenizer: Tokenizer,
  stopIds: number[],
  outDir: string,
): Promise<Pick<TrainerEnv, 'generate' | 'syncWeights'>> {
  const where = config.rollout.engine;
  switch (where) {
    case 'local':
      return localRollouts(engine, tokenizer, stopIds);
    case 'engine':
      return engineRollouts(engine, tokenizer, stopIds);
    case 'remote': {
      const syncDir = config.rollout.syncDir ?? path.join(outDir, 'rollout-weights');
      return remoteRollouts(config, engine, tokenizer, stopIds, syncDir, (l) => process.stderr.write(`${l}\n`));
    }
    default:
      return where satisfies never;
  }
}

/** The policy's tokenizer, which must have a chat template (prompts are built with it). */
function loadChatTokenizer(config: TrainConfig): Tokenizer {
  const vocabSize = loadConfig(path.join(config.model.path, 'config.json')).vocabSize;
  const tokenizer = loadTokenizer(config.model.path, vocabSize);
  if (!tokenizer.hasChatTemplate)
    fail(
      `model.path: ${config.model.path}: tokenizer_config.json has no chat_template, which red train needs to build prompts; use a chat (instruct) model, or add its chat_template`,
    );
  return tokenizer;
}

/**
 * Prompt ids through the chat template and trace ids, cached: prompts always (short, reused every
 * epoch), traces only for small sets (a 46k × 8k-token cache would not fit in memory).
 */
function tokenCaches(
  config: TrainConfig,
  tokenizer: Tokenizer,
  examples: number,
): Pick<TrainerEnv, 'promptIds' | 'traceIds'> {
  const promptCache = new Map<string, number[]>();
  const traceCache = examples <= 20_000 ? new Map<string, number[]>() : null;
  return {
    promptIds: (e: TrainingExample): number[] => {
      let ids = promptCache.get(e.id);
      if (!ids) {
        ids = tokenizer.encode(tokenizer.applyChatTemplate(promptMessages(e), true));
        promptCache.set(e.id, ids);
      }
      return ids;
    },
    traceIds: (e: TrainingExample): number[] => {
      if (e.trace === undefined) fail(`${config.data.train}: ${e.id} has no teacher trace`);
      const hit = traceCache?.get(e.id);
      if (hit) return hit;
      const ids = tokenizer.encode(e.trace);
      traceCache?.set(e.id, ids);
      return ids;
    },
  };
}

/** Rollouts end on the tokenizer's EOS ids and on the chat end-of-turn markers. */
function stopTokenIds(tokenizer: Tokenizer): number[] {
  const ids = new Set(tokenizer.eosIds);
  for (const t of END_OF_TURN) {
    const id = tokenizer.tokenToId(t);
    if (id !== undefined) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}
