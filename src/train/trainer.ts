// The training loop of `red train`: stages (sft-grpo runs two), steps, the lr schedule,
// checkpoints with exact resume, NaN handling, metrics and progress. A step's groups come from
// groups.ts (rollouts, verification, filtering) and its update from update.ts; every component
// comes in through TrainerEnv (env.ts; fakes in tests), the policy's compute through its training
// engine only, and what a step does is read from the algorithm options, never from a method's name.
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import path from 'node:path';
import type { TrainingExample } from '../data/dataset.ts';
import { EpochIterator, type EpochCursor } from '../data/dataset.ts';
import {
  HardQuestionBuffer,
  entropyRegulatorSettings,
  initialEntropyState,
  nllLoss,
  objectives,
  parseEntropyState,
  type AlgorithmOptions,
  type EntropyRegulatorState,
} from '../rl/index.ts';
import { fail } from '../util/errors.ts';
import { CheckpointManager, readStateJson, TRAINER_STATE_FILE, writeStateJson } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import type { AdamWSettings } from './engine.ts';
import { mixSeed, StepTimer, type TrainerEnv } from './env.ts';
import { GroupCollector, groupsPerStep, type StepGroup } from './groups.ts';
import { MetricsWriter, type Metrics, type Progress } from './metrics.ts';
import { learningRate } from './schedule.ts';
import { policyUpdate, updateSettings } from './update.ts';

export * from './env.ts';

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
  /**
   * 3: the engine's state files (master.safetensors, optimizer-NAME.safetensors per tensor under
   * Hugging Face names). 2: flat state arrays in the native layout (read by the native engine).
   * 1: an older flat order, whose moments cannot be read back.
   */
  version: 3;
  /** Global optimiser steps done (checkpoint step-N holds the state after step N). */
  step: number;
  stage: number;
  /** Steps done within the stage (the lr schedule's position). */
  stageStep: number;
  /** Data order: the epoch iterator's cursor within the stage. Sampling seeds are a function of
   *  (seed, step, draw), so this cursor and the step are the whole RNG state. */
  dataCursor: EpochCursor;
  rng: { seed: number; scheme: 'mix(seed, step, draw)' };
  entropyRegulator: EntropyRegulatorState;
  hardQuestions: ReturnType<HardQuestionBuffer['toJSON']> | null;
  skippedSteps: number;
  consecutiveSkips: number;
  skippedPrompts: number;
  /** The engine's optimisers (by name) whose state the folder holds. */
  optimizers: string[];
}

/** The engine's optimisers: every stage's `policy`, and ReLIFT's own for its interleaved SFT steps. */
const POLICY = 'policy';
const SFT = 'sft';

const MAX_CONSECUTIVE_SKIPS = 3;

/** The stage being run: its options, schedule, data order and ReLIFT buffer. */
interface Stage {
  index: number;
  options: AlgorithmOptions;
  lr: number;
  totalSteps: number;
  data: EpochIterator<TrainingExample>;
  hardQuestions: HardQuestionBuffer | null;
  groups: GroupCollector;
  /** Examples whose teacher trace did not verify (left out of the offline pool). */
  offlineDropped: number;
}

export class Trainer {
  private state: TrainerState;
  private stage!: Stage;
  private stopRequested = false;
  private readonly checkpoints: CheckpointManager;
  private readonly byId: Map<string, TrainingExample>;
  private metrics!: MetricsWriter;
  /** rollout.async: the next step's groups, being collected while this step trains. */
  private prefetched: {
    step: number;
    result: ReturnType<GroupCollector['collect']>;
    timer: StepTimer;
    version: number;
  } | null = null;

  constructor(
    private readonly env: TrainerEnv,
    private readonly s: TrainerSettings,
  ) {
    this.checkpoints = new CheckpointManager(path.join(s.outDir, 'checkpoints'), s.config.checkpoint.keep);
    this.byId = new Map(env.examples.map((e) => [e.id, e]));
    this.state = {
      version: 3,
      step: 0,
      stage: 0,
      stageStep: 0,
      dataCursor: { epoch: 0, index: 0 },
      rng: { seed: s.config.seed, scheme: 'mix(seed, step, draw)' },
      entropyRegulator: initialEntropyState(),
      hardQuestions: null,
      skippedSteps: 0,
      consecutiveSkips: 0,
      skippedPrompts: 0,
      optimizers: [],
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
    const resumeFrom = this.resumePoint();
    if (resumeFrom) this.readTrainerState(resumeFrom);
    this.metrics = new MetricsWriter(
      path.join(this.s.outDir, 'metrics.jsonl'),
      resumeFrom ? this.state.step : undefined,
      this.s.config.log.tensorboard,
    );
    const firstStage = this.state.stage;
    for (let k = firstStage; k < this.s.stages.length; k++) {
      this.stage = await this.openStage(k, k === firstStage ? resumeFrom : null);
      // Remote rollouts: the servers start from exactly these parameters, whatever they loaded.
      if (k === firstStage && this.env.syncWeights) await this.env.syncWeights(String(this.state.step));
      this.stage.offlineDropped = await this.stage.groups.loadOfflinePool();
      const finishedStage = await this.runStage();
      this.s.progress.stop();
      if (!finishedStage) break;
    }
    return this.state.step;
  }

  /** The newest checkpoint to resume from (--resume), or null. */
  private resumePoint(): string | null {
    if (!this.s.resume) return null;
    const latest = this.checkpoints.latest();
    if (!latest) this.s.progress.log(`no checkpoint in ${this.checkpoints.root}; starting from the beginning`);
    return latest?.dir ?? null;
  }

  /**
   * Steps the open stage until it ends (or maxSteps / a stop request), checkpointing every
   * checkpoint.every steps and once at the end; returns whether the stage finished.
   */
  private async runStage(): Promise<boolean> {
    const k = this.stage.index;
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
    if (finishedStage && k + 1 < this.s.stages.length) await this.enterStage(k + 1);
    if (saved !== this.state.step || this.state.stage !== k) await this.saveCheckpoint();
    return finishedStage;
  }

  /**
   * Stage k starts from the previous stage's weights with fresh optimisers, schedule and data
   * order; the checkpoint written now holds those fresh optimisers.
   */
  private async enterStage(k: number): Promise<void> {
    this.state.stage = k;
    this.state.stageStep = 0;
    this.state.dataCursor = { epoch: 0, index: 0 };
    this.state.entropyRegulator = initialEntropyState();
    this.state.hardQuestions = null;
    await this.createOptimizers(this.s.stages[k]);
  }

  /** The optimisers stage `options` trains with, created fresh in the engine; returns their names. */
  private async createOptimizers(options: AlgorithmOptions): Promise<string[]> {
    const o = this.s.config.optim;
    const adamw: AdamWSettings = {
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      weightDecay: o.weightDecay,
      noDecay: 'none',
    };
    const names = options.sftInterleave.enabled ? [POLICY, SFT] : [POLICY];
    for (const name of names) await this.env.engine.createOptimizer(name, adamw);
    return names;
  }

  /** Sets up stage k with fresh optimisers; `fromCheckpoint` restores the engine's state and the ReLIFT buffer. */
  private async openStage(k: number, fromCheckpoint: string | null): Promise<Stage> {
    const options = this.s.stages[k];
    const cfg = this.s.config;
    // A stage without rollouts is supervised (objective nll): its lr, epochs and batch come from
    // the sft group; RL stages from optim, data and rollout. One name per rate: sft.lr or optim.lr,
    // and algorithm.lrScale multiplies it (luffy: 0.5, RED-SPEC's 1e-6 vs 2e-6).
    const supervised = !options.onlineRollouts;
    const lr = (supervised ? cfg.sft.lr : cfg.optim.lr) * options.lrScale;
    const epochs = supervised ? cfg.sft.epochs : cfg.data.epochs;
    const perStep = groupsPerStep(cfg, options);
    const totalSteps = cfg.schedule.totalSteps ?? Math.max(1, Math.ceil((epochs * this.env.examples.length) / perStep));
    const needsTrace =
      options.offlineMember || !options.onlineRollouts || options.sftInterleave.enabled || options.prefixSearch.enabled;
    if (needsTrace) {
      const missing = this.env.examples.find((e) => e.trace === undefined);
      if (missing)
        fail(
          `${cfg.data.train}: ${missing.id} has no teacher trace, which this method needs (map one with data.fields)`,
        );
    }
    const data = new EpochIterator(this.env.examples, mixSeed(cfg.seed, k), this.state.dataCursor);
    const hardQuestions = options.sftInterleave.enabled
      ? this.state.hardQuestions
        ? HardQuestionBuffer.fromJSON(this.state.hardQuestions, 'trainer_state.json hardQuestions')
        : new HardQuestionBuffer(options.sftInterleave.bufferSize)
      : null;
    await this.createOptimizers(options);
    if (fromCheckpoint) {
      await this.env.engine.loadState(fromCheckpoint);
      this.s.progress.log(`resuming from ${fromCheckpoint} (step ${this.state.step})`);
    }
    return {
      index: k,
      options,
      lr,
      totalSteps,
      data,
      hardQuestions,
      // this.state is only replaced by readTrainerState, which runs before any stage opens.
      groups: new GroupCollector(this.env, cfg, { options, data, hardQuestions }, this.state),
      offlineDropped: 0,
    };
  }

  // ---------------------------------------------------------------- one step

  private async trainStep(): Promise<Metrics> {
    const t0 = performance.now();
    const timer = new StepTimer();
    const step = this.state.step + 1;
    const lr = this.stepLearningRate();
    const m: Metrics = { step, stage: this.stage.index, lr };
    const groups = await this.collect(step, timer, m);
    const cursorBeforePrefetch = await this.prefetch(step);
    await this.update(step, groups, lr, timer, m);
    this.advance(step, cursorBeforePrefetch);
    await this.syncRolloutWeights(step, m);
    this.addStepTotals(m, (performance.now() - t0) / 1000, timer);
    return m;
  }

  /** The schedule's learning rate for the stage's next step. */
  private stepLearningRate(): number {
    const cfg = this.s.config;
    return learningRate(this.state.stageStep + 1, {
      lr: this.stage.lr,
      warmupSteps: cfg.schedule.warmupSteps,
      minLrRatio: cfg.schedule.minLrRatio,
      totalSteps: this.stage.totalSteps,
    });
  }

  /** The method's update on the groups, then ReLIFT's SFT step when its buffer is full; counts a skipped step. */
  private async update(step: number, groups: StepGroup[], lr: number, timer: StepTimer, m: Metrics): Promise<void> {
    const st = this.stage;
    const updated = groups.length > 0 && (await this.policyStep(groups, lr, timer, m));
    // ReLIFT: one SFT step on the buffered questions' traces, with its own optimiser.
    if (st.hardQuestions?.ready()) await this.reliftStep(step, timer, m);
    if (!updated && groups.length > 0) this.onSkippedStep(step);
    else if (groups.length > 0) this.state.consecutiveSkips = 0;
  }

  /** The step is done: the counters, the data cursor and ReLIFT's buffer move to it. */
  private advance(step: number, cursorBeforePrefetch: EpochCursor | null): void {
    this.state.step = step;
    this.state.stageStep++;
    // A prefetched batch is redrawn after a resume: the saved cursor is the one before it.
    this.state.dataCursor = cursorBeforePrefetch ?? this.stage.data.cursor();
    this.state.hardQuestions = this.stage.hardQuestions?.toJSON() ?? null;
  }

  /**
   * Remote rollouts: the next step's come from the new parameters, labelled with this step. A
   * prefetched batch (rollout.async) must finish on the old ones first: a sync that overtook its
   * requests would have the servers generate it on-policy while it is logged (and corrected) as one step off.
   */
  private async syncRolloutWeights(step: number, m: Metrics): Promise<void> {
    if (!this.env.syncWeights) return;
    await this.prefetched?.result.catch(() => {}); // a failure surfaces when the next step reads it
    m['timing_s/weight_sync'] = await this.env.syncWeights(String(step));
    m['rollout/weight_version'] = step;
  }

  /** The method's update on the step's groups; true when it was applied (no NaN or Inf). */
  private async policyStep(groups: StepGroup[], lr: number, timer: StepTimer, m: Metrics): Promise<boolean> {
    const st = this.stage;
    const o = st.options;
    const cfg = this.s.config;
    const regulator = {
      state: this.state.entropyRegulator,
      settings: entropyRegulatorSettings(o, cfg.rollout.groupSize),
    };
    const result = await policyUpdate(
      this.env.engine,
      updateSettings(cfg),
      {
        members: groups.flatMap((g) => g.members),
        lr,
        optimizer: POLICY,
        loss: (b, ctx) => objectives[o.objective](b, o, ctx),
        klCoef: o.klCoef,
        regulator,
        rolloutCorrection: o.rolloutCorrection,
      },
      timer,
    );
    Object.assign(m, result.metrics);
    // RED (I)'s memory of the previous entropies moves only with a step that was applied.
    if (result.regulatorNext) this.state.entropyRegulator = result.regulatorNext;
    m['tokens/step'] = result.tokens;
    m['tokens/trained'] = result.responseTokens;
    return result.ok;
  }

  /** ReLIFT's interleaved SFT step on the traces of the buffered hard questions. */
  private async reliftStep(step: number, timer: StepTimer, m: Metrics): Promise<void> {
    const st = this.stage;
    const o = st.options;
    const members = st.hardQuestions!.drain().map((id, g) => st.groups.offlineMember(this.byId.get(id)!, g));
    const r = await policyUpdate(
      this.env.engine,
      updateSettings(this.s.config),
      {
        members,
        lr: o.sftInterleave.lr ?? st.lr,
        optimizer: SFT,
        klCoef: 0,
        regulator: null,
        loss: (b) =>
          nllLoss(
            { logprobs: b.logprobs, tokens: b.offsets[b.offsets.length - 1], entropies: b.entropies },
            o.sftInterleave.entropyCoef,
          ),
      },
      timer,
    );
    for (const [k, v] of Object.entries(r.metrics)) m[`relift/${k}`] = v;
    m['relift/sft_steps'] = r.ok ? 1 : 0;
    m['tokens/trained'] = (m['tokens/trained'] ?? 0) + r.responseTokens;
    if (!r.ok)
      this.s.progress.log(`step ${step}: NaN or Inf in ReLIFT's SFT step; it was skipped (its questions are dropped)`);
  }

  /** Timings, throughput and the run's counters, added to the step's metrics. */
  private addStepTotals(m: Metrics, total: number, timer: StepTimer): void {
    const st = this.stage;
    for (const [k, v] of Object.entries(timer.s)) m[`timing_s/${k}`] = v;
    m['timing_s/step'] = total;
    m['timing_s/overhead'] = Math.max(0, total - timer.s.rollout - timer.s.logprob - timer.s.update);
    m['throughput/tokens_per_s'] = (m['tokens/step'] ?? 0) / total;
    m['steps/skipped'] = this.state.skippedSteps;
    m['data/skipped_rows'] = this.env.skippedRows;
    m['data/skipped_prompts'] = this.state.skippedPrompts;
    m['data/offline_dropped'] = st.offlineDropped;
    if (st.options.sftInterleave.enabled) m['relift/buffer_size'] = st.hardQuestions?.size ?? 0;
  }

  /** The step's groups (their metrics into m): prefetched during the previous step (rollout.async), or collected now. */
  private async collect(step: number, timer: StepTimer, m: Metrics): Promise<StepGroup[]> {
    const p = this.prefetched;
    this.prefetched = null;
    if (!p || p.step !== step) {
      const { groups, metrics } = await this.stage.groups.collect(step, timer);
      Object.assign(m, metrics);
      return groups;
    }
    const { groups, metrics } = await p.result;
    Object.assign(m, metrics);
    timer.s.rollout += p.timer.s.rollout;
    timer.s.reward += p.timer.s.reward;
    // Versions are step numbers: these rollouts came from the weights after step p.version.
    m['rollout/version_lag'] = step - 1 - p.version;
    return groups;
  }

  /**
   * rollout.async: starts collecting step+1's groups now, so the servers generate them while this
   * step trains (one step off-policy; π_old is recomputed here and TIS corrects the rest). Returns
   * the data cursor from before the prefetch, or null when nothing was prefetched.
   */
  private async prefetch(step: number): Promise<EpochCursor | null> {
    const st = this.stage;
    const last =
      this.state.stageStep + 1 >= st.totalSteps || (this.s.maxSteps !== undefined && step >= this.s.maxSteps);
    if (!this.s.config.rollout.async || !st.options.onlineRollouts || last || this.stopRequested) return null;
    const cursor = st.data.cursor();
    const timer = new StepTimer();
    const result = st.groups.collect(step + 1, timer);
    result.catch(() => {}); // awaited next step; a failure surfaces there, not as an unhandled rejection
    this.prefetched = { step: step + 1, result, timer, version: this.state.step };
    await yieldToEventLoop(); // let the requests go out before the update holds the event loop
    return cursor;
  }

  private onSkippedStep(step: number): void {
    this.state.skippedSteps++;
    this.state.consecutiveSkips++;
    this.s.progress.log(
      `step ${step}: NaN or Inf in the loss or gradients; the step was skipped (${this.state.consecutiveSkips} in a row)`,
    );
    if (this.state.consecutiveSkips >= MAX_CONSECUTIVE_SKIPS) {
      fail(
        `training diverged: ${MAX_CONSECUTIVE_SKIPS} steps in a row (up to step ${step}) had NaN or Inf in the loss or gradients; ` +
          `the last good state is the newest checkpoint in ${this.checkpoints.root} (try a lower optim.lr)`,
      );
    }
  }

  // ---------------------------------------------------------------- checkpoints

  /**
   * A checkpoint: the policy as a Hugging Face folder (checkpoint.saveDtype), the engine's state
   * (fp32 masters unless that folder already holds them, and the optimisers) and trainer_state.json.
   */
  private async saveCheckpoint(): Promise<void> {
    const engine = this.env.engine;
    const dir = await this.checkpoints.save(this.state.step, async (tmp) => {
      const dtype = this.s.config.checkpoint.saveDtype;
      await engine.saveForSampler(tmp, dtype);
      await engine.saveState(tmp, { master: dtype !== 'fp32' });
      const options = this.s.stages[this.state.stage];
      this.state.optimizers = options.sftInterleave.enabled ? [POLICY, SFT] : [POLICY];
      writeStateJson(path.join(tmp, TRAINER_STATE_FILE), this.state);
    });
    this.s.progress.log(`checkpoint ${dir}`);
  }

  /** trainer_state.json of a checkpoint; the engine's state is loaded when its stage opens. */
  private readTrainerState(dir: string): void {
    const file = path.join(dir, TRAINER_STATE_FILE);
    const raw = readStateJson(file) as Partial<Omit<TrainerState, 'version'>> & { version?: number };
    if (raw.version === 1)
      fail(
        `${dir}: written by an older red train whose parameter order differs, so its optimizer state cannot be resumed; start a new run from its weights (model.path: ${dir})`,
      );
    if (raw.version === 2 && this.env.engine.kind !== 'native')
      fail(
        `${dir}: a version-2 checkpoint (flat optimizer state in the native engine's layout) resumes on engine.kind: native only; resume it with engine.kind: native, or start a new run from its weights (model.path: ${dir})`,
      );
    if (
      (raw.version !== 2 && raw.version !== 3) ||
      typeof raw.step !== 'number' ||
      typeof raw.stage !== 'number' ||
      raw.dataCursor === undefined
    ) {
      fail(`${file}: not a training state written by this version of red train`);
    }
    if (raw.stage >= this.s.stages.length)
      fail(`${dir}: stage ${raw.stage} does not exist in method "${this.s.config.method}"`);
    this.state = { ...(raw as TrainerState), version: 3 };
    this.state.entropyRegulator = parseEntropyState(raw.entropyRegulator, `${file}: entropyRegulator`);
  }
}
