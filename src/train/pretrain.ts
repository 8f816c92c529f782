// Pretrains the tiny Qwen2-architecture base model of the built-in task from scratch: causal LM
// loss on the response tokens of chat-formatted prompts + lines of f's table, direct answers of
// levels 1–2 and a share of teacher traces of levels 1–2 only; packed sequences, AdamW with
// warm-up and cosine decay. The base then knows f's table, answers one step often and two steps
// sometimes, and longer chains almost never: it has never written a chain of more than two steps
// (the capability the teacher's traces of the hard levels bring); the trace format itself is not
// alien to SFT and RL. The model trains on the native engine through the training-engine contract,
// each step the trainer's own update (update.ts: the same forward, loss, forwardBackward and optimStep).
import path from 'node:path';
import { DEFAULT_BF16_BACKWARD, type Bf16Backward, type Precision } from '../engine/precision.ts';
import { EpochIterator } from '../data/dataset.ts';
import { generateProblems, LEVELS, type Level, type Problem } from '../data/task/problems.ts';
import { PromptEncoder, pretrainDocuments } from '../data/task/documents.ts';
import { QUICK_MODEL, TINY_MODEL, tinyConfigJson, type TinyModelShape } from '../data/task/model.ts';
import { BUILTIN_IDS, builtinTokenizerFiles, writeBuiltinTokenizer } from '../data/task/tokenizer.ts';
import { parseConfig, type ModelConfig } from '../model/config.ts';
import { writeModelDir } from '../model/io.ts';
import { initialParams, paramLayout } from '../model/params.ts';
import { Tokenizer } from '../model/tokenizer.ts';
import { lastBoxed } from '../reward/extract.ts';
import { nllLoss } from '../rl/sft.ts';
import { generate, type GenerationModel } from '../rollout/sampler.ts';
import { fail } from '../util/errors.ts';
import { makeTempDir } from '../util/exit.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { markFolder } from '../util/ownership.ts';
import { ADAMW_DEFAULTS, oneDeviceSettings, type EngineSettings, type TrainingEngine } from './engine.ts';
import { createNativeEngine, type NativeEngine } from './engines/native.ts';
import { StepTimer } from './env.ts';
import type { Member } from './pack.ts';
import { learningRate } from './schedule.ts';
import { policyUpdate, type UpdateSettings } from './update.ts';

export interface PretrainOptions {
  /** Output model folder (replaced atomically). */
  out: string;
  /** Seeds the initialisation, the problem stream and the evaluation samples (default 0). */
  seed: number;
  /** Optimiser steps. */
  steps: number;
  /** Sequences (prompt + short solution) per step. */
  batchSize: number;
  /** Peak learning rate; warm-up `warmupSteps`, then cosine to 0.1·lr. */
  lr: number;
  /** Linear warm-up steps, capped at a tenth of `steps` so short runs still decay. */
  warmupSteps: number;
  weightDecay: number;
  /** Global gradient-norm clip. */
  gradClip: number;
  /**
   * Relative frequency of levels 1..5 among the direct answers: levels 1–2 only by default, so the
   * model has never seen a hard problem answered.
   */
  levelWeights: [number, number, number, number, number];
  /** Training problems (repeats allowed) in the pool the epochs cycle over. */
  poolSize: number;
  /**
   * Share of the pool's sequences that are teacher-style traces instead of short solutions, for
   * problems drawn from their own seeded stream (not the short pool's); in [0, 1).
   */
  traceShare: number;
  /**
   * Relative frequency of levels 1..5 among those traces: the easy levels only by default, so
   * the base knows the chain on one or two steps but has never written a longer one.
   */
  traceLevelWeights: [number, number, number, number, number];
  /** Share of the pool's documents that are lines of f's table (the facts every chain is made of); in [0, 1). */
  tableShare: number;
  model: TinyModelShape;
  /** Held-out problems per level sampled after training (0 = skip the evaluation). */
  evalPerLevel: number;
  /** Samples per evaluation problem at temperature 1 (the RL rollout setting). */
  evalSamples: number;
  /** The native engine's compute backend (default auto: the addon when built). */
  backend?: EngineSettings['backend'];
  /** bf16: mixed precision (GEMMs on a bf16 copy of the fp32 master weights); default fp32. */
  precision?: Precision;
  /** With precision bf16, how backward feeds its bf16 GEMMs (precision.ts); default DEFAULT_BF16_BACKWARD. */
  bf16Backward?: Bf16Backward;
  /** The dtype of the saved model.safetensors; default fp32. */
  saveDtype?: Precision;
  /** Called after every step. */
  onStep?: (info: PretrainStep) => void;
}

export const PRETRAIN_DEFAULTS: Omit<PretrainOptions, 'out' | 'onStep' | 'backend'> = {
  seed: 0,
  // 3600 steps: the model knows ~95% of f's table and answers level 1 ~60% of the time (T = 1),
  // level 2 ~30%, levels 3–5 0–4%.
  steps: 3600,
  batchSize: 16,
  lr: 5e-3,
  warmupSteps: 20,
  weightDecay: 0.01,
  gradClip: 1.0,
  levelWeights: [2, 1, 0, 0, 0],
  poolSize: 4000,
  // 30% of sequences are traces of levels 1–2 (chains of 1–2 steps): the base knows the format
  // and the step, and has never written a chain of 3–5; 25% are lines of f's table.
  traceShare: 0.3,
  traceLevelWeights: [1, 1, 0, 0, 0],
  tableShare: 0.25,
  model: TINY_MODEL,
  evalPerLevel: 20,
  evalSamples: 4,
};

/** --quick: the small model and a short run, for smoke tests (seconds even on the reference backend). */
export const PRETRAIN_QUICK: Partial<PretrainOptions> = {
  steps: 20,
  batchSize: 8,
  model: QUICK_MODEL,
  poolSize: 400,
  evalPerLevel: 4,
  evalSamples: 2,
};

export interface PretrainStep {
  step: number;
  /** Mean response-token NLL of the step's batch, before the update. */
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
}

export interface LevelAccuracy {
  level: Level;
  problems: number;
  /** Fraction of samples (temperature 1) whose last \boxed{} equals the gold answer. */
  sampledAcc: number;
  /** Fraction of problems solved by greedy decoding. */
  greedyAcc: number;
}

export interface PretrainResult {
  dir: string;
  parameters: number;
  losses: number[];
  seconds: number;
  tokensPerSecond: number;
  levels: LevelAccuracy[];
}

/** One training document as a member: the chat prompt, and the solution + <|im_end|> it is trained on. */
function toMember(tok: Tokenizer, prompts: PromptEncoder, promptText: string, responseText: string): Member {
  return {
    group: 0,
    promptIds: prompts.encode(promptText),
    responseIds: [...tok.encode(responseText), BUILTIN_IDS.imEnd],
    isOffline: true,
    accuracy: 1,
    reward: 1,
    clipped: false,
  };
}

/**
 * Checks every option (one line naming each problem) and returns the held-out problems per level,
 * drawn here because a level with too few of them is itself a bad option.
 */
export function validatePretrainOptions(o: PretrainOptions): Problem[][] {
  const problems: string[] = [];
  const posInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) problems.push(`${name} must be a positive integer, got ${v}`);
  };
  posInt('steps', o.steps);
  posInt('batchSize', o.batchSize);
  posInt('poolSize', o.poolSize);
  posInt('evalSamples', o.evalSamples);
  if (!Number.isInteger(o.evalPerLevel) || o.evalPerLevel < 0)
    problems.push(`evalPerLevel must be a non-negative integer, got ${o.evalPerLevel}`);
  if (!Number.isInteger(o.seed) || o.seed < 0) problems.push(`seed must be a non-negative integer, got ${o.seed}`);
  if (!(o.traceShare >= 0 && o.traceShare < 1)) problems.push(`traceShare must be in [0, 1), got ${o.traceShare}`);
  if (!(o.tableShare >= 0 && o.traceShare + o.tableShare < 1))
    problems.push(`tableShare must be ≥ 0 with traceShare + tableShare < 1, got ${o.tableShare}`);
  if (!(o.lr > 0)) problems.push(`lr must be > 0, got ${o.lr}`);
  for (const k of ['hidden', 'layers', 'heads', 'kvHeads', 'intermediate'] as const) posInt(`model.${k}`, o.model[k]);
  if (o.model.hidden % o.model.heads !== 0)
    problems.push(`model.hidden (${o.model.hidden}) must be a multiple of model.heads (${o.model.heads})`);
  if (o.model.heads % o.model.kvHeads !== 0) problems.push(`model.heads must be a multiple of model.kvHeads`);
  if (problems.length > 0) fail(`pretrain options: ${problems.join('; ')}`);
  return o.evalPerLevel > 0 ? evalProblems(o) : []; // fails when a level has fewer held-out problems
}

export async function pretrain(options: Partial<PretrainOptions> & { out: string }): Promise<PretrainResult> {
  const o: PretrainOptions = { ...PRETRAIN_DEFAULTS, ...options };
  const heldOut = validatePretrainOptions(o); // drawn before training
  const started = performance.now();
  const tok = new Tokenizer({ ...builtinTokenizerFiles(), generationConfig: {}, source: 'built-in tokenizer' });
  const config = parseConfig(tinyConfigJson(o.model, tok.vocabSize), 'tiny model config');
  // The initial model is a folder the engine loads; its tokenizer files and pretrain.json travel
  // with saveForSampler into the output folder, whose atomic rename then shows it complete or not at all.
  const staging = makeTempDir('red-pretrain-');
  let trained: { engine: NativeEngine; losses: number[]; tokensPerSecond: number };
  try {
    writeInitialModel(staging.path, config, o.seed);
    const engine = await createNativeEngine(
      oneDeviceSettings('native', staging.path, {
        precision: o.precision ?? 'fp32',
        backend: o.backend ?? 'auto',
        bf16Backward: o.bf16Backward,
      }),
    );
    trained = { ...(await trainBase(engine, tok, o)), engine };
    writeJsonAtomic(path.join(staging.path, 'pretrain.json'), pretrainRecord(o, trained, []));
    await engine.saveForSampler(o.out, o.saveDtype ?? 'fp32');
    markFolder(o.out, 'model', 'red pretrain'); // the folder is red's: a later --force may replace it
  } finally {
    staging.remove();
  }
  // Evaluated once the model is safely saved; the figures then join its pretrain.json.
  const levels = heldOut.length > 0 ? await evaluateLevels(trained.engine.generationModel, tok, heldOut, o) : [];
  if (levels.length > 0) writeJsonAtomic(path.join(o.out, 'pretrain.json'), pretrainRecord(o, trained, levels));
  return {
    dir: o.out,
    parameters: trained.engine.info.parameters,
    losses: trained.losses,
    seconds: (performance.now() - started) / 1000,
    tokensPerSecond: trained.tokensPerSecond,
    levels,
  };
}

/** The tiny model with its initial weights, the built-in tokenizer and the task's generation config, as a Hugging Face folder. */
function writeInitialModel(dir: string, config: ModelConfig, seed: number): void {
  writeModelDir(dir, {
    config,
    layout: paramLayout(config),
    params: initialParams(config, seed),
    generationConfig: {
      bos_token_id: BUILTIN_IDS.endoftext,
      eos_token_id: [BUILTIN_IDS.imEnd, BUILTIN_IDS.endoftext],
      pad_token_id: BUILTIN_IDS.endoftext,
    },
    sourceDir: null,
  });
  writeBuiltinTokenizer(dir);
}

/**
 * The steps: the mixed pool cycled in seeded (shuffled) epochs, so batches mix traces at about
 * traceShare; each step the sft objective's loss (RED-SPEC `sft`: token-mean NLL over the
 * response tokens) through the trainer's update, AdamW with warm-up and cosine decay.
 */
async function trainBase(
  engine: TrainingEngine,
  tok: Tokenizer,
  o: PretrainOptions,
): Promise<{ losses: number[]; tokensPerSecond: number }> {
  const started = performance.now();
  await engine.createOptimizer('policy', {
    ...ADAMW_DEFAULTS,
    weightDecay: o.weightDecay,
    noDecay: 'norms-and-biases',
  });
  const prompts = new PromptEncoder(tok);
  const data = new EpochIterator(
    pretrainDocuments(o).map((d) => toMember(tok, prompts, d.prompt, d.response)),
    o.seed,
  );
  const settings: UpdateSettings = {
    microBatchTokens: 0,
    updatesPerBatch: 1,
    maxGradNorm: o.gradClip,
    maxResponseTokens: 0,
  };
  const warmup = Math.min(o.warmupSteps, Math.ceil(o.steps / 10));
  const losses: number[] = [];
  let tokens = 0;
  for (let step = 1; step <= o.steps; step++) {
    const t0 = performance.now();
    const lr = learningRate(step, { lr: o.lr, warmupSteps: warmup, minLrRatio: 0.1, totalSteps: o.steps });
    const r = await policyUpdate(
      engine,
      settings,
      {
        members: data.take(o.batchSize),
        lr,
        optimizer: 'policy',
        loss: (b) => nllLoss({ logprobs: b.logprobs, tokens: b.offsets[b.offsets.length - 1] }),
        klCoef: 0,
        regulator: null,
      },
      new StepTimer(),
    );
    const loss = r.metrics['loss/total'];
    losses.push(loss);
    tokens += r.tokens;
    const seconds = (performance.now() - t0) / 1000;
    o.onStep?.({ step, loss, lr, gradNorm: r.metrics['grad/norm'], tokens: r.tokens, seconds });
  }
  return { losses, tokensPerSecond: tokens / ((performance.now() - started) / 1000) };
}

/** pretrain.json: what was trained, how, and (once evaluated) how well. */
function pretrainRecord(
  o: PretrainOptions,
  trained: { engine: NativeEngine; losses: number[] },
  levels: LevelAccuracy[],
) {
  return {
    note: 'red pretrain: tiny base model of the built-in task (short solutions + a traceShare of teacher traces)',
    options: {
      ...o,
      onStep: undefined,
      backend: trained.engine.backendName,
      precision: o.precision ?? 'fp32',
      bf16Backward: o.bf16Backward ?? DEFAULT_BF16_BACKWARD,
    },
    parameters: trained.engine.info.parameters,
    final_loss: trained.losses.at(-1),
    losses: trained.losses,
    levels,
  };
}

/** `evalPerLevel` held-out problems of each level (fails when a level has fewer). */
function evalProblems(o: Pick<PretrainOptions, 'seed' | 'evalPerLevel'>): Problem[][] {
  return LEVELS.map((level) => {
    const weights: [number, number, number, number, number] = [0, 0, 0, 0, 0];
    weights[level - 1] = 1;
    return generateProblems({
      seed: o.seed + 1000 * level,
      count: o.evalPerLevel,
      split: 'test',
      levelWeights: weights,
    });
  });
}

/** Per-level accuracy on held-out problems (one list per level): sampled at temperature 1 and greedy. */
export async function evaluateLevels(
  model: GenerationModel,
  tok: Tokenizer,
  heldOut: Problem[][],
  o: Pick<PretrainOptions, 'seed' | 'evalSamples'>,
): Promise<LevelAccuracy[]> {
  const out: LevelAccuracy[] = [];
  for (const [i, problems] of heldOut.entries()) {
    const level = LEVELS[i];
    const promptEncoder = new PromptEncoder(tok);
    const prompts = problems.map((p) => promptEncoder.encode(p.text));
    // 256 = the demo's response limit: a trace-style answer must have room to reach its box.
    const common = { maxTokens: 256, eosIds: [BUILTIN_IDS.imEnd, BUILTIN_IDS.endoftext], tokenizer: tok, seed: o.seed };
    const sampled = await generate(model, prompts, { ...common, n: o.evalSamples, temperature: 1 });
    const greedy = await generate(model, prompts, { ...common, n: 1, temperature: 0 });
    let right = 0;
    let greedyRight = 0;
    problems.forEach((p, i) => {
      for (const s of sampled[i]) if (lastBoxed(s.text ?? '') === p.answer) right++;
      if (lastBoxed(greedy[i][0].text ?? '') === p.answer) greedyRight++;
    });
    out.push({
      level,
      problems: problems.length,
      sampledAcc: right / (problems.length * o.evalSamples),
      greedyAcc: greedyRight / problems.length,
    });
  }
  return out;
}
