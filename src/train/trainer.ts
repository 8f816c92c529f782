// The training loop of `red train`: stages (sft-grpo runs two), steps, the lr schedule,
// checkpoints with exact resume, NaN handling, metrics and progress. A step's groups come from
// groups.ts (rollouts, verification, filtering) and its update from update.ts; every component
// comes in through TrainerEnv (env.ts; fakes in tests), and what a step does is read from the
// algorithm options, never from a method's name.
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
import {
  CheckpointManager,
  readF32Tensors,
  readStateJson,
  TRAINER_STATE_FILE,
  writeF32Tensors,
  writeMasterWeights,
  writeStateJson,
} from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { mixSeed, StepTimer, type OptimizerState, type TrainerEnv, type TrainerOptimizer } from './env.ts';
import { GroupCollector, groupsPerStep, type StepGroup } from './groups.ts';
import { MetricsWriter, type Metrics, type Progress } from './metrics.ts';
import { learningRate } from './schedule.ts';
import { policyUpdate } from './update.ts';

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
   * 2: the flat parameter layout with q/k/v weights before their biases (the fused projections);
   * a version-1 state's optimiser moments are in the older order and cannot be read back.
   */
  version: 2;
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
  /** Which optimiser files the folder holds. */
  optimizers: string[];
}

const MAX_CONSECUTIVE_SKIPS = 3;

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
      version: 2,
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
    let resumeFrom: string | null = null;
    if (this.s.resume) {
      const latest = this.checkpoints.latest();
      if (latest) resumeFrom = latest.dir;
      else this.s.progress.log(`no checkpoint in ${this.checkpoints.root}; starting from the beginning`);
    }
    if (resumeFrom) this.loadCheckpoint(resumeFrom);
    // Remote rollouts: the servers start from exactly these parameters, whatever they loaded.
    if (this.env.syncWeights) await this.env.syncWeights(String(this.state.step));
    this.metrics = new MetricsWriter(
      path.join(this.s.outDir, 'metrics.jsonl'),
      resumeFrom ? this.state.step : undefined,
      this.s.config.log.tensorboard,
    );
    const firstStage = this.state.stage;
    for (let k = firstStage; k < this.s.stages.length; k++) {
      this.stage = this.openStage(k, k === firstStage && resumeFrom !== null ? resumeFrom : null);
      this.stage.offlineDropped = await this.stage.groups.loadOfflinePool();
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
        this.state.entropyRegulator = initialEntropyState();
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
    const stage: Stage = {
      index: k,
      options,
      lr,
      totalSteps,
      data,
      optimizer: this.env.createOptimizer(),
      sftOptimizer: options.sftInterleave.enabled ? this.env.createOptimizer() : null,
      hardQuestions,
      // this.state is only replaced by loadCheckpoint, which runs before any stage opens.
      groups: new GroupCollector(this.env, cfg, { options, data, hardQuestions }, this.state),
      offlineDropped: 0,
    };
    if (fromCheckpoint && this.state.optimizers.length > 0) {
      stage.optimizer.load(readOptimizer(path.join(fromCheckpoint, 'optimizer.safetensors')));
      if (stage.sftOptimizer)
        stage.sftOptimizer.load(readOptimizer(path.join(fromCheckpoint, 'sft_optimizer.safetensors')));
    }
    return stage;
  }

  // ---------------------------------------------------------------- one step

  private async trainStep(): Promise<Metrics> {
    const t0 = performance.now();
    const timer = new StepTimer();
    const st = this.stage;
    const cfg = this.s.config;
    const step = this.state.step + 1;
    const lr = learningRate(this.state.stageStep + 1, {
      lr: st.lr,
      warmupSteps: cfg.schedule.warmupSteps,
      minLrRatio: cfg.schedule.minLrRatio,
      totalSteps: st.totalSteps,
    });
    const m: Metrics = { step, stage: st.index, lr };

    const { groups, metrics: collectMetrics } = await this.collect(step, timer, m);
    Object.assign(m, collectMetrics);
    const cursorBeforePrefetch = await this.prefetch(step);
    const updated = groups.length > 0 && (await this.policyStep(groups, lr, timer, m));
    // ReLIFT: one SFT step on the buffered questions' traces, with its own optimiser.
    if (st.hardQuestions && st.sftOptimizer && st.hardQuestions.ready()) await this.reliftStep(step, timer, m);
    if (!updated && groups.length > 0) this.onSkippedStep(step);
    else if (groups.length > 0) this.state.consecutiveSkips = 0;

    this.state.step = step;
    this.state.stageStep++;
    // A prefetched batch is redrawn after a resume: the saved cursor is the one before it.
    this.state.dataCursor = cursorBeforePrefetch ?? st.data.cursor();
    this.state.hardQuestions = st.hardQuestions?.toJSON() ?? null;
    // The next step's rollouts come from the new parameters, labelled with this step. A prefetched
    // batch (rollout.async) must finish on the old ones first: a sync that overtook its requests
    // would have the servers generate it on-policy while it is logged (and corrected) as one step off.
    if (this.env.syncWeights) {
      await this.prefetched?.result.catch(() => {}); // a failure surfaces when the next step reads it
      m['timing_s/weight_sync'] = await this.env.syncWeights(String(step));
      m['rollout/weight_version'] = step;
    }
    this.addStepTotals(m, (performance.now() - t0) / 1000, timer);
    return m;
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
      this.env,
      cfg,
      {
        members: groups.flatMap((g) => g.members),
        lr,
        optimizer: st.optimizer,
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
      this.env,
      this.s.config,
      {
        members,
        lr: o.sftInterleave.lr ?? st.lr,
        optimizer: st.sftOptimizer!,
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

  /** The step's groups: prefetched during the previous step (rollout.async), or collected now. */
  private async collect(
    step: number,
    timer: StepTimer,
    m: Metrics,
  ): Promise<Awaited<ReturnType<GroupCollector['collect']>>> {
    const p = this.prefetched;
    this.prefetched = null;
    if (!p || p.step !== step) return this.stage.groups.collect(step, timer);
    const result = await p.result;
    timer.s.rollout += p.timer.s.rollout;
    timer.s.reward += p.timer.s.reward;
    // Versions are step numbers: these rollouts came from the weights after step p.version.
    m['rollout/version_lag'] = step - 1 - p.version;
    return result;
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

  private async saveCheckpoint(): Promise<void> {
    const st = this.stage;
    // At a stage transition the next stage starts with fresh moments: none are written.
    const atStageStart = this.state.stage !== st.index;
    const dir = await this.checkpoints.save(this.state.step, (tmp) => {
      const dtype = this.s.config.checkpoint.saveDtype;
      this.env.model.save(tmp, dtype);
      if (dtype === 'bf16') writeMasterWeights(tmp, this.env.model.readParams());
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
    if ((raw.version as number | undefined) === 1)
      fail(
        `${dir}: written by an older red train whose parameter order differs, so its optimizer state cannot be resumed; start a new run from its weights (model.path: ${dir})`,
      );
    if (
      raw.version !== 2 ||
      typeof raw.step !== 'number' ||
      typeof raw.stage !== 'number' ||
      raw.dataCursor === undefined
    ) {
      fail(`${path.join(dir, TRAINER_STATE_FILE)}: not a training state written by this version of red train`);
    }
    if (raw.stage >= this.s.stages.length)
      fail(`${dir}: stage ${raw.stage} does not exist in method "${this.s.config.method}"`);
    this.state = raw as TrainerState;
    this.state.entropyRegulator = parseEntropyState(
      raw.entropyRegulator,
      `${path.join(dir, TRAINER_STATE_FILE)}: entropyRegulator`,
    );
    const loaded = this.env.loadWeights(dir);
    if (loaded.length !== this.env.model.params.length) {
      fail(
        `${dir}: the checkpoint has ${loaded.length} parameters, the model ${this.env.model.params.length}; it belongs to another model`,
      );
    }
    this.env.model.writeWeights(loaded);
    this.s.progress.log(`resuming from ${dir} (step ${raw.step})`);
  }
}

function writeOptimizer(file: string, s: OptimizerState): void {
  writeF32Tensors(file, { m: s.m, v: s.v, step: new Float32Array([s.step]) });
}

function readOptimizer(file: string): OptimizerState {
  const t = readF32Tensors(file);
  if (!t.m || !t.v || !t.step) fail(`${file}: expected tensors m, v and step`);
  return { m: t.m, v: t.v, step: t.step[0] };
}
