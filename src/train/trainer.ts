// The training loop of `red train`: one optimiser step per rollout batch — draw prompts, roll
// out G per prompt, verify, filter groups (refilling), one forward for π_old and the entropies
// (RED I), the algorithm's loss, backward, clip, AdamW, lr schedule — plus checkpoints, exact
// resume, metrics and progress. Every component comes in through TrainerEnv (fakes in tests), and
// what a step does is read from the algorithm options, never from a method's name.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import path from 'node:path';
import type { TrainingExample } from '../data/dataset.ts';
import { EpochIterator, type EpochCursor } from '../data/dataset.ts';
import type { PackedBatch } from '../model/batch.ts';
import {
  EntropyRegulator, filterGroups, HardQuestionBuffer, isHardGroup, memberEntropyMeans, needsAnotherDraw,
  nllLoss, objectives, prefixSearchAsync, prefixTokens, shapeRewards, type AlgorithmOptions, type LossContext, type LossResult, type TokenBatch,
} from '../rl/index.ts';
import { fail } from '../util/errors.ts';
import { CheckpointManager, readF32Tensors, readStateJson, TRAINER_STATE_FILE, writeF32Tensors, writeStateJson } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { MetricsWriter, type Metrics, type Progress } from './metrics.ts';
import { gatherTokens, packMembers, scatterTokens, type Member, type PackedMembers } from './pack.ts';
import { learningRate } from './schedule.ts';

/** The trainable policy (Qwen2Model satisfies it). */
export interface TrainerModel {
  readonly params: Float32Array;
  readonly grads: Float32Array;
  /** Per packed token log π(target) and entropy; keeps activations for backward. */
  forward(batch: PackedBatch): { logprob: Float32Array; entropy: Float32Array };
  /** Accumulates d/dθ Σ_t (coefLogprob_t·logprob_t + coefEntropy_t·entropy_t) of the last forward. */
  backward(coefLogprob: Float32Array, coefEntropy: Float32Array): void;
  zeroGrad(): void;
  /** Writes a Hugging Face model folder (config, weights, tokenizer files). */
  save(dir: string): void;
}

export interface OptimizerState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** AdamW over the model's flat buffers (src/train/optimizer.ts satisfies it). */
export interface TrainerOptimizer {
  update(lr: number): void;
  state(): OptimizerState;
  load(state: OptimizerState): void;
}

export interface RolloutRequest {
  n: number;
  seed: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  stopStrings: string[];
}

export interface RolloutSample {
  /** Response ids (the EOS token included when the sampler stopped on it). */
  ids: readonly number[];
  text: string;
  finishReason: 'stop' | 'length';
}

/** Everything the loop computes with, built from the config by run.ts (or faked in tests). */
export interface TrainerEnv {
  model: TrainerModel;
  /** Frozen reference policy; present only when the KL coefficient is above 0. */
  refModel: { forward(batch: PackedBatch): { logprob: Float32Array } } | null;
  /** A fresh AdamW over model.params/grads with the optim settings. */
  createOptimizer(): TrainerOptimizer;
  /** Clips model.grads to a global norm; returns the norm before clipping. */
  clipGradNorm(maxNorm: number): number;
  /** Samples `n` responses for each prompt (ids include the chat template). */
  generate(prompts: number[][], request: RolloutRequest): Promise<RolloutSample[][]>;
  /** acc ∈ {0,1} of each response against its gold answer, in order. */
  verify(items: { gold: string; text: string }[]): Promise<number[]>;
  /** The prompt's token ids through the chat template (cached by the env). */
  promptIds(example: TrainingExample): number[];
  /** Text of response ids (BREAD verifies the teacher prefix together with its continuation). */
  decode(ids: readonly number[]): string;
  /** The teacher trace's token ids, untruncated, without EOS. */
  traceIds(example: TrainingExample): number[];
  /** Appended to a trace that was not truncated. */
  eosId: number;
  examples: TrainingExample[];
  /** The flat parameters saved in a checkpoint folder (to resume). */
  loadWeights(dir: string): Float32Array;
  /** Malformed rows skipped while loading (data.onBadRow: skip). */
  skippedRows: number;
}

/** What the loop reads from the resolved config. */
export interface TrainerSettings {
  config: TrainConfig;
  /** The stages to run in order (one for single-stage methods; sft-grpo has two). */
  stages: AlgorithmOptions[];
  outDir: string;
  /** Stop after this global step (and checkpoint), without changing the schedule. */
  maxSteps?: number;
  resume: boolean;
  progress: Progress;
}

/** The JSON part of a checkpoint's training state (trainer_state.json). */
export interface TrainerState {
  version: 1;
  /** Global optimiser steps done (checkpoint step-N holds the state after step N). */
  step: number;
  stage: number;
  /** Steps done within the stage (the lr schedule's position). */
  stageStep: number;
  /** Data order: the epoch iterator's cursor within the stage. Sampling seeds are a function of
   *  (seed, step, draw), so this cursor and the step are the whole RNG state. */
  dataCursor: EpochCursor;
  rng: { seed: number; scheme: 'mix(seed, step, draw)' };
  entropyRegulator: ReturnType<EntropyRegulator['toJSON']>;
  hardQuestions: ReturnType<HardQuestionBuffer['toJSON']> | null;
  skippedSteps: number;
  consecutiveSkips: number;
  skippedPrompts: number;
  /** Which optimiser files the folder holds. */
  optimizers: string[];
}

/** The resolved config the trainer runs (config.ts + the algorithm options). */
export type { TrainConfig } from './config.ts';

/** Derives a 32-bit seed from integers (splitmix32 rounds), so seeds are pure functions of the step. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = (h ^ (p >>> 0)) >>> 0;
    h = (h + 0x9e3779b9) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

const MAX_CONSECUTIVE_SKIPS = 3;

interface StepGroup {
  example: TrainingExample;
  members: Member[];
}

class Timer {
  readonly s: Record<'rollout' | 'reward' | 'logprob' | 'update', number> = { rollout: 0, reward: 0, logprob: 0, update: 0 };
  async time<T>(key: keyof Timer['s'], f: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.s[key] += (performance.now() - t0) / 1000;
    }
  }
}

/** The stage being run: its options, schedule, data order and optimiser(s). */
interface Stage {
  index: number;
  options: AlgorithmOptions;
  lr: number;
  totalSteps: number;
  data: EpochIterator<TrainingExample>;
  optimizer: TrainerOptimizer;
  /** ReLIFT's own optimiser for its interleaved SFT steps. */
  sftOptimizer: TrainerOptimizer | null;
  regulator: EntropyRegulator;
  hardQuestions: HardQuestionBuffer | null;
}

export class Trainer {
  private state: TrainerState;
  private stage!: Stage;
  private stopRequested = false;
  private readonly checkpoints: CheckpointManager;
  private readonly byId: Map<string, TrainingExample>;
  private metrics!: MetricsWriter;

  constructor(private readonly env: TrainerEnv, private readonly s: TrainerSettings) {
    this.checkpoints = new CheckpointManager(path.join(s.outDir, 'checkpoints'), s.config.checkpoint.keep);
    this.byId = new Map(env.examples.map((e) => [e.id, e]));
    this.state = {
      version: 1, step: 0, stage: 0, stageStep: 0, dataCursor: { epoch: 0, index: 0 },
      rng: { seed: s.config.seed, scheme: 'mix(seed, step, draw)' },
      entropyRegulator: { prevRl: null, prevSft: null, steps: 0 }, hardQuestions: null,
      skippedSteps: 0, consecutiveSkips: 0, skippedPrompts: 0, optimizers: [],
    };
  }

  /** Ask the loop to stop after the current step (Ctrl-C); it checkpoints and returns. */
  requestStop(): void {
    this.stopRequested = true;
  }

  get step(): number {
    return this.state.step;
  }

  /** Runs every stage to its end (or to maxSteps / a stop request); returns the last step done. */
  async run(): Promise<number> {
    let resumeFrom: string | null = null;
    if (this.s.resume) {
      const latest = this.checkpoints.latest();
      if (latest) resumeFrom = latest.dir;
      else this.s.progress.log(`no checkpoint in ${this.checkpoints.root}; starting from the beginning`);
    }
    if (resumeFrom) this.loadCheckpoint(resumeFrom);
    this.metrics = new MetricsWriter(path.join(this.s.outDir, 'metrics.jsonl'), resumeFrom ? this.state.step : undefined);
    const firstStage = this.state.stage;
    for (let k = firstStage; k < this.s.stages.length; k++) {
      this.stage = this.openStage(k, k === firstStage && resumeFrom !== null ? resumeFrom : null);
      this.s.progress.start(this.stage.totalSteps, this.state.stageStep + 1);
      let saved = this.state.step;
      while (this.state.stageStep < this.stage.totalSteps) {
        if (this.stopRequested || (this.s.maxSteps !== undefined && this.state.step >= this.s.maxSteps)) break;
        const m = await this.trainStep();
        this.metrics.write(m);
        this.s.progress.update(this.state.stageStep, m);
        // A skipped step changed nothing worth a checkpoint of its own.
        if (this.state.step % this.s.config.checkpoint.every === 0 && this.state.consecutiveSkips === 0) {
          await this.saveCheckpoint();
          saved = this.state.step;
        }
        // Let signal handlers (Ctrl-C) run between steps.
        await yieldToEventLoop();
      }
      const finishedStage = this.state.stageStep >= this.stage.totalSteps;
      if (finishedStage && k + 1 < this.s.stages.length) {
        // The next stage starts from this stage's weights with a fresh optimiser and schedule.
        this.state.stage = k + 1;
        this.state.stageStep = 0;
        this.state.dataCursor = { epoch: 0, index: 0 };
        this.state.entropyRegulator = { prevRl: null, prevSft: null, steps: 0 };
        this.state.hardQuestions = null;
      }
      const enteredNextStage = this.state.stage !== k;
      if (saved !== this.state.step || enteredNextStage) await this.saveCheckpoint();
      this.s.progress.stop();
      if (!finishedStage) break;
    }
    return this.state.step;
  }

  /** Sets up stage k; `fromCheckpoint` restores its optimiser(s) and the ReLIFT buffer. */
  private openStage(k: number, fromCheckpoint: string | null): Stage {
    const options = this.s.stages[k];
    const cfg = this.s.config;
    // A stage without rollouts is supervised (objective nll): its lr, epochs and batch come from
    // the sft group; RL stages from optim, data and rollout. algorithm.lr overrides either.
    const supervised = !options.onlineRollouts;
    const lr = options.lr ?? (supervised ? cfg.sft.lr : cfg.optim.lr);
    const epochs = supervised ? cfg.sft.epochs : cfg.data.epochs;
    const perStep = this.groupsPerStep(options);
    const totalSteps = cfg.schedule.totalSteps ?? Math.max(1, Math.ceil((epochs * this.env.examples.length) / perStep));
    const needsTrace = options.offlineMember || !options.onlineRollouts || options.sftInterleave.enabled || options.prefixSearch.enabled;
    if (needsTrace) {
      const missing = this.env.examples.find((e) => e.trace === undefined);
      if (missing) fail(`${cfg.data.train}: ${missing.id} has no teacher trace, which this method needs (map one with data.fields)`);
    }
    const stage: Stage = {
      index: k, options, lr, totalSteps,
      data: new EpochIterator(this.env.examples, mixSeed(cfg.seed, k), this.state.dataCursor),
      optimizer: this.env.createOptimizer(),
      sftOptimizer: options.sftInterleave.enabled ? this.env.createOptimizer() : null,
      regulator: new EntropyRegulator(options.entropyRegulation, cfg.rollout.groupSize, this.state.entropyRegulator),
      hardQuestions: options.sftInterleave.enabled
        ? (this.state.hardQuestions ? HardQuestionBuffer.fromJSON(this.state.hardQuestions, 'trainer_state.json hardQuestions') : new HardQuestionBuffer(options.sftInterleave.bufferSize))
        : null,
    };
    if (fromCheckpoint && this.state.optimizers.length > 0) {
      stage.optimizer.load(readOptimizer(path.join(fromCheckpoint, 'optimizer.safetensors')));
      if (stage.sftOptimizer) stage.sftOptimizer.load(readOptimizer(path.join(fromCheckpoint, 'sft_optimizer.safetensors')));
    }
    return stage;
  }

  // ---------------------------------------------------------------- one step

  private async trainStep(): Promise<Metrics> {
    const t0 = performance.now();
    const timer = new Timer();
    const st = this.stage;
    const o = st.options;
    const cfg = this.s.config;
    const step = this.state.step + 1;
    const lr = learningRate(this.state.stageStep + 1, { lr: st.lr, warmupSteps: cfg.schedule.warmupSteps, minLrRatio: cfg.schedule.minLrRatio, totalSteps: st.totalSteps });
    const m: Metrics = { step, stage: st.index, lr };

    const { groups, metrics: collectMetrics } = await this.collectGroups(step, timer);
    Object.assign(m, collectMetrics);
    let updated = false;
    if (groups.length > 0) {
      const members = groups.flatMap((g) => g.members);
      const result = await this.update(members, lr, timer, st.optimizer, (b) => objectives[o.objective](b.batch, o, b.ctx), o, true);
      Object.assign(m, result.metrics);
      updated = result.ok;
      m['tokens/step'] = result.tokens;
    }
    // ReLIFT: one SFT step on the buffered questions' traces, with its own optimiser.
    if (st.hardQuestions && st.sftOptimizer && st.hardQuestions.ready()) {
      const ids = st.hardQuestions.drain();
      const members = ids.map((id, g) => this.offlineMember(this.byId.get(id)!, g));
      const r = await this.update(members, o.sftInterleave.lr ?? st.lr, timer, st.sftOptimizer,
        (b) => nllLoss({ logprobs: b.batch.logprobs, tokens: b.batch.offsets[b.batch.offsets.length - 1], entropies: b.batch.entropies }, o.sftInterleave.entropyCoef), o, false);
      for (const [k, v] of Object.entries(r.metrics)) m[`relift/${k}`] = v;
      m['relift/sft_steps'] = 1;
    }
    if (!updated && groups.length > 0) this.onSkippedStep(step);
    else if (groups.length > 0) this.state.consecutiveSkips = 0;

    this.state.step = step;
    this.state.stageStep++;
    this.state.dataCursor = st.data.cursor();
    this.state.entropyRegulator = st.regulator.toJSON();
    this.state.hardQuestions = st.hardQuestions?.toJSON() ?? null;

    const total = (performance.now() - t0) / 1000;
    for (const [k, v] of Object.entries(timer.s)) m[`timing_s/${k}`] = v;
    m['timing_s/step'] = total;
    m['timing_s/overhead'] = Math.max(0, total - timer.s.rollout - timer.s.logprob - timer.s.update);
    m['throughput/tokens_per_s'] = (m['tokens/step'] ?? 0) / total;
    m['steps/skipped'] = this.state.skippedSteps;
    m['data/skipped_rows'] = this.env.skippedRows;
    m['data/skipped_prompts'] = this.state.skippedPrompts;
    if (o.sftInterleave.enabled) m['relift/buffer_size'] = st.hardQuestions?.size ?? 0;
    return m;
  }

  private onSkippedStep(step: number): void {
    this.state.skippedSteps++;
    this.state.consecutiveSkips++;
    this.s.progress.log(`step ${step}: NaN or Inf in the loss or gradients; the step was skipped (${this.state.consecutiveSkips} in a row)`);
    if (this.state.consecutiveSkips >= MAX_CONSECUTIVE_SKIPS) {
      fail(`training diverged: ${MAX_CONSECUTIVE_SKIPS} steps in a row (up to step ${step}) had NaN or Inf in the loss or gradients; ` +
        `the last good state is the newest checkpoint in ${this.checkpoints.root} (try a lower optim.lr)`);
    }
  }

  private groupsPerStep(o: AlgorithmOptions): number {
    return o.onlineRollouts ? this.s.config.rollout.promptsPerStep : this.s.config.sft.batchSize;
  }

  /** Draws the next prompt whose chat prompt fits data.maxPromptTokens. */
  private nextExample(): TrainingExample {
    const limit = this.s.config.data.maxPromptTokens;
    for (let tries = 0; tries < this.env.examples.length; tries++) {
      const e = this.stage.data.next();
      if (this.env.promptIds(e).length <= limit) return e;
      this.state.skippedPrompts++;
    }
    return fail(`${this.s.config.data.train}: no prompt fits data.maxPromptTokens = ${limit}`);
  }

  /**
   * The teacher trace as a member: truncated to the response limit, EOS appended when it was not.
   * Like a rollout, the response including its EOS never exceeds the limit, so a trace of exactly
   * the limit counts as truncated.
   */
  private offlineMember(example: TrainingExample, group: number): Member {
    const promptIds = this.env.promptIds(example);
    const trace = this.env.traceIds(example);
    const limit = this.s.config.rollout.maxTokens;
    const clipped = trace.length >= limit;
    const responseIds = clipped ? trace.slice(0, limit) : [...trace, this.env.eosId];
    return { group, promptIds, responseIds, isOffline: true, accuracy: 1, reward: 1, clipped };
  }

  private rolloutRequest(n: number, seed: number): RolloutRequest {
    const r = this.s.config.rollout;
    return { n, seed, temperature: r.temperature, topP: r.topP, topK: r.topK, maxTokens: r.maxTokens, stopStrings: r.stopStrings };
  }

  /**
   * Draws prompts, rolls out, verifies and filters groups until the step has promptsPerStep groups
   * or groupFilter.maxFillAttempts draws were made (RED-SPEC "Group filtering").
   */
  private async collectGroups(step: number, timer: Timer): Promise<{ groups: StepGroup[]; metrics: Metrics }> {
    const st = this.stage;
    const o = st.options;
    const cfg = this.s.config;
    const G = cfg.rollout.groupSize;
    const wanted = this.groupsPerStep(o);
    const kept: StepGroup[] = [];
    let draws = 0;
    let drawnGroups = 0;
    let droppedGroups = 0;
    const online = { n: 0, acc: 0, reward: 0, len: 0, clipped: 0 };
    let bread = 0;
    do {
      const examples = Array.from({ length: wanted - kept.length }, () => this.nextExample());
      let samples: RolloutSample[][] = examples.map(() => []);
      let accs: number[][] = examples.map(() => []);
      if (o.onlineRollouts) {
        const prompts = examples.map((e) => this.env.promptIds(e));
        samples = await timer.time('rollout', () => this.env.generate(prompts, this.rolloutRequest(G, mixSeed(cfg.seed, step, draws))));
        accs = await timer.time('reward', () => this.verifyGroups(examples, samples));
      }
      const groups: StepGroup[] = [];
      for (let i = 0; i < examples.length; i++) {
        const e = examples[i];
        const promptIds = this.env.promptIds(e);
        let members: Member[] = samples[i].map((s, j) => ({
          group: 0, promptIds, responseIds: s.ids, isOffline: false, accuracy: accs[i][j], reward: accs[i][j], clipped: s.finishReason === 'length',
        }));
        if (o.onlineRollouts && isHardGroup(accs[i])) {
          st.hardQuestions?.add(e.id);
          if (o.prefixSearch.enabled) {
            const branched = await this.branchFromPrefix(e, step, draws, i, timer);
            if (branched) { members = branched; bread++; }
          }
        }
        if (o.offlineMember || !o.onlineRollouts) members.push(this.offlineMember(e, 0));
        for (const mem of members) {
          if (mem.isOffline) continue;
          online.n++; online.acc += mem.accuracy; online.len += mem.responseIds.length; online.clipped += mem.clipped ? 1 : 0;
        }
        groups.push({ example: e, members });
      }
      // Rewards R_i = acc_i + shaping; then filtering on the accuracies of all members.
      const flat = groups.flatMap((g, gi) => g.members.map((mem) => ({ mem, gi })));
      const rewards = shapeRewards({
        accuracies: flat.map((f) => f.mem.accuracy), lengths: flat.map((f) => f.mem.responseIds.length), isOffline: flat.map((f) => f.mem.isOffline),
      }, o.overlong, cfg.rollout.maxTokens);
      flat.forEach((f, i) => { f.mem.reward = rewards[i]; if (!f.mem.isOffline) online.reward += rewards[i]; });
      const { keep } = filterGroups(flat.map((f) => f.mem.accuracy), flat.map((f) => f.gi), o.groupFilter.enabled);
      for (let g = 0; g < groups.length; g++) if (keep[g]) kept.push(groups[g]); else droppedGroups++;
      drawnGroups += groups.length;
      draws++;
    } while (needsAnotherDraw(kept.length, wanted, draws, o.groupFilter.maxFillAttempts));
    kept.forEach((g, gi) => g.members.forEach((mem) => (mem.group = gi)));
    const metrics: Metrics = {
      'groups/kept': kept.length,
      'groups/dropped_frac': drawnGroups ? droppedGroups / drawnGroups : 0,
      'groups/draws': draws,
    };
    if (online.n > 0) {
      metrics['reward/mean'] = online.reward / online.n;
      metrics['acc/mean'] = online.acc / online.n;
      metrics['completions/mean_length'] = online.len / online.n;
      metrics['completions/clipped_frac'] = online.clipped / online.n;
    }
    if (o.prefixSearch.enabled) metrics['bread/branched_groups'] = bread;
    return { groups: kept, metrics };
  }

  private async verifyGroups(examples: TrainingExample[], samples: RolloutSample[][]): Promise<number[][]> {
    const items = examples.flatMap((e, i) => samples[i].map((s) => ({ gold: e.answer, text: s.text })));
    const flat = await this.env.verify(items);
    let k = 0;
    return samples.map((row) => row.map(() => flat[k++]));
  }

  /**
   * BREAD: the shortest teacher prefix (in segments) whose continuations succeed within the
   * band; returns G continuations from it, the prefix folded into the prompt so that no loss
   * falls on it. Null when the trace is empty.
   */
  private async branchFromPrefix(e: TrainingExample, step: number, draw: number, index: number, timer: Timer): Promise<Member[] | null> {
    const o = this.stage.options;
    const cfg = this.s.config;
    const G = cfg.rollout.groupSize;
    const prompt = this.env.promptIds(e);
    const trace = this.env.traceIds(e).slice(0, cfg.rollout.maxTokens);
    if (trace.length === 0) return null;
    const tried = new Map<number, Member[]>();
    const choice = await prefixSearchAsync(async (k) => {
      const n = prefixTokens(k, trace.length, o.prefixSearch.segments);
      const p = [...prompt, ...trace.slice(0, n)];
      const room = Math.max(1, cfg.rollout.maxTokens - n);
      const req = { ...this.rolloutRequest(G, mixSeed(cfg.seed, step, draw, 1 + index, k)), maxTokens: room };
      const [samples] = await timer.time('rollout', () => this.env.generate([p], req));
      // The answer may sit in the teacher's prefix: the whole response is prefix + continuation.
      const accs = await timer.time('reward', () => this.env.verify(samples.map((s) => ({ gold: e.answer, text: this.env.decode([...trace.slice(0, n), ...s.ids]) }))));
      tried.set(k, samples.map((s, j) => ({ group: 0, promptIds: p, responseIds: s.ids, isOffline: false, accuracy: accs[j], reward: accs[j], clipped: s.finishReason === 'length' })));
      return accs.reduce((a, b) => a + b, 0) / accs.length;
    }, o.prefixSearch);
    return tried.get(choice.segments) ?? null;
  }

  /**
   * Forward (π_old and entropies; also the current policy while the batch has not been updated),
   * the loss's per-token gradients, backward through the model, clipping and AdamW — repeated
   * optim.updatesPerBatch times. With a token budget the members are split into micro-batches
   * whose gradients accumulate; the loss is always computed over the whole batch.
   * Returns ok = false when the loss or gradient was not finite (nothing was applied).
   */
  private async update(
    members: Member[], lr: number, timer: Timer, optimizer: TrainerOptimizer,
    lossFn: (b: { batch: TokenBatch; ctx: LossContext }) => LossResult,
    o: AlgorithmOptions,
    /** Whether this is the step's main update, whose entropies feed RED (I) (ReLIFT's SFT step is not). */
    regulate: boolean,
  ): Promise<{ ok: boolean; metrics: Metrics; tokens: number }> {
    const cfg = this.s.config;
    const env = this.env;
    const packed = packMembers(members, cfg.optim.microBatchTokens);
    const T = packed.responseTokens;
    const oldLogprobs = new Float32Array(T);
    const entropies = new Float32Array(T);
    const single = packed.micro.length === 1;
    // Pass 1: π_old and entropies of the pre-update policy (feeds RED I and the ratios).
    await timer.time('logprob', () => {
      for (const mb of packed.micro) {
        const out = env.model.forward(mb.batch);
        gatherTokens(oldLogprobs, out.logprob, mb, packed.offsets);
        gatherTokens(entropies, out.entropy, mb, packed.offsets);
      }
    });
    let refLogprobs: Float32Array | undefined;
    if (o.klCoef > 0 && env.refModel) {
      refLogprobs = new Float32Array(T);
      await timer.time('logprob', () => {
        for (const mb of packed.micro) gatherTokens(refLogprobs!, env.refModel!.forward(mb.batch).logprob, mb, packed.offsets);
      });
    }
    const base: Omit<TokenBatch, 'logprobs'> = {
      offsets: packed.offsets,
      groupOf: members.map((x) => x.group),
      isOffline: members.map((x) => x.isOffline),
      rewards: members.map((x) => x.reward),
      accuracies: members.map((x) => x.accuracy),
      oldLogprobs,
      refLogprobs,
    };
    const metrics: Metrics = {};
    let w = 1;
    if (regulate) {
      const H = memberEntropyMeans({ ...base, logprobs: oldLogprobs, entropies });
      const reg = this.stage.regulator.step(H.rl, H.sft);
      Object.assign(metrics, reg.metrics);
      w = reg.w;
    }
    const ctx = { offlineWeight: w, maxResponseTokens: cfg.rollout.maxTokens };
    let ok = true;
    let activationsFresh = single;
    // Several updates per batch: a NaN in a later one must undo the earlier ones too, so the step
    // leaves no trace. (One update needs no copy: nothing is applied before the check.)
    const before = cfg.optim.updatesPerBatch > 1 ? { params: env.model.params.slice(), opt: copyState(optimizer.state()) } : null;
    for (let u = 0; u < cfg.optim.updatesPerBatch; u++) {
      // Current policy: equal to π_old before the first update; recomputed after it.
      let logprobs = oldLogprobs;
      let current = entropies;
      if (u > 0) {
        logprobs = new Float32Array(T);
        current = new Float32Array(T);
        await timer.time('logprob', () => {
          for (const mb of packed.micro) {
            const out = env.model.forward(mb.batch);
            gatherTokens(logprobs, out.logprob, mb, packed.offsets);
            gatherTokens(current, out.entropy, mb, packed.offsets);
          }
        });
        activationsFresh = single;
      }
      const loss = lossFn({ batch: { ...base, logprobs, entropies: current }, ctx });
      const lossOk = Number.isFinite(loss.loss);
      let gradNorm = NaN;
      if (lossOk) {
        await timer.time('update', () => {
          env.model.zeroGrad();
          for (const mb of packed.micro) {
            if (!(activationsFresh && mb === packed.micro[0])) env.model.forward(mb.batch);
            env.model.backward(scatterTokens(loss.dLogprobs, mb, packed.offsets), scatterTokens(loss.dEntropies, mb, packed.offsets));
          }
          gradNorm = env.clipGradNorm(cfg.optim.maxGradNorm > 0 ? cfg.optim.maxGradNorm : Infinity);
        });
      }
      activationsFresh = false;
      for (const [k, v] of Object.entries(loss.metrics)) metrics[k] = v;
      metrics['loss/total'] = loss.loss;
      metrics['grad/norm'] = gradNorm;
      if (!lossOk || !Number.isFinite(gradNorm)) {
        // Nothing from a bad step reaches the parameters or the optimiser moments.
        env.model.zeroGrad();
        if (before && u > 0) {
          env.model.params.set(before.params);
          optimizer.load(before.opt);
        }
        ok = false;
        break;
      }
      await timer.time('update', () => optimizer.update(lr));
    }
    if (regulate) {
      metrics['loss/policy'] ??= 0;
      metrics['loss/offline'] ??= 0;
      metrics['clip/frac'] ??= 0; // objectives without a clip clip nothing
    }
    return { ok, metrics, tokens: packed.totalTokens };
  }

  // ---------------------------------------------------------------- checkpoints

  private async saveCheckpoint(): Promise<void> {
    const st = this.stage;
    // At a stage transition the next stage starts with fresh moments: none are written.
    const atStageStart = this.state.stage !== st.index;
    const dir = await this.checkpoints.save(this.state.step, (tmp) => {
      this.env.model.save(tmp);
      const optimizers: string[] = [];
      if (!atStageStart) {
        writeOptimizer(path.join(tmp, 'optimizer.safetensors'), st.optimizer.state());
        optimizers.push('optimizer.safetensors');
        if (st.sftOptimizer) {
          writeOptimizer(path.join(tmp, 'sft_optimizer.safetensors'), st.sftOptimizer.state());
          optimizers.push('sft_optimizer.safetensors');
        }
      }
      this.state.optimizers = optimizers;
      writeStateJson(path.join(tmp, TRAINER_STATE_FILE), this.state);
    });
    this.s.progress.log(`checkpoint ${dir}`);
  }

  private loadCheckpoint(dir: string): void {
    const raw = readStateJson(path.join(dir, TRAINER_STATE_FILE)) as Partial<TrainerState>;
    if (raw.version !== 1 || typeof raw.step !== 'number' || typeof raw.stage !== 'number' || raw.dataCursor === undefined) {
      fail(`${path.join(dir, TRAINER_STATE_FILE)}: not a training state written by this version of red train`);
    }
    if (raw.stage >= this.s.stages.length) fail(`${dir}: stage ${raw.stage} does not exist in method "${this.s.config.method}"`);
    this.state = raw as TrainerState;
    const loaded = this.env.loadWeights(dir);
    if (loaded.length !== this.env.model.params.length) {
      fail(`${dir}: the checkpoint has ${loaded.length} parameters, the model ${this.env.model.params.length}; it belongs to another model`);
    }
    this.env.model.params.set(loaded);
    this.s.progress.log(`resuming from ${dir} (step ${raw.step})`);
  }
}

function copyState(s: OptimizerState): OptimizerState {
  return { step: s.step, m: s.m.slice(), v: s.v.slice() };
}

function writeOptimizer(file: string, s: OptimizerState): void {
  writeF32Tensors(file, { m: s.m, v: s.v, step: new Float32Array([s.step]) });
}

function readOptimizer(file: string): OptimizerState {
  const t = readF32Tensors(file);
  if (!t.m || !t.v || !t.step) fail(`${file}: expected tensors m, v and step`);
  return { m: t.m, v: t.v, step: t.step[0] };
}
