// One step's groups (RED-SPEC "Group filtering"): draws prompts, rolls out G per prompt, verifies,
// adds the teacher trace where the method has an offline member, feeds ReLIFT's buffer and BREAD's
// prefix search on all-fail groups, and refills until the step has its groups or the draws run out.
// Teacher traces are verified like any other member (once per stage, as cut to the response
// limit); one whose answer does not verify leaves the offline pool and is never imitated.
import type { EpochIterator, TrainingExample } from '../data/dataset.ts';
import {
  filterGroups,
  isHardGroup,
  needsAnotherDraw,
  prefixSearchAsync,
  prefixTokens,
  shapeRewards,
  type AlgorithmOptions,
  type HardQuestionBuffer,
} from '../rl/index.ts';
import { fail } from '../util/errors.ts';
import type { TrainConfig } from './config.ts';
import { mixSeed, type RolloutRequest, type RolloutSample, type StepTimer, type TrainerEnv } from './env.ts';
import type { Metrics } from './metrics.ts';
import type { Member } from './pack.ts';

export interface StepGroup {
  example: TrainingExample;
  members: Member[];
}

/** Groups per optimiser step: prompts per rollout batch, or traces per SFT step (no rollouts). */
export function groupsPerStep(config: TrainConfig, o: AlgorithmOptions): number {
  return o.onlineRollouts ? config.rollout.promptsPerStep : config.sft.batchSize;
}

/** What a stage lends the collector: its options, data order and ReLIFT buffer. */
export interface CollectorStage {
  options: AlgorithmOptions;
  data: EpochIterator<TrainingExample>;
  hardQuestions: HardQuestionBuffer | null;
}

export class GroupCollector {
  /** Ids of the examples whose trace (cut to the response limit) verifies; null until loaded. */
  private offlinePool: Set<string> | null = null;

  constructor(
    private readonly env: TrainerEnv,
    private readonly config: TrainConfig,
    private readonly stage: CollectorStage,
    /** Counters kept in the checkpoint (prompts over data.maxPromptTokens). */
    private readonly counters: { skippedPrompts: number },
  ) {}

  /** Whether this stage reads teacher traces (an offline member, SFT, ReLIFT or BREAD). */
  private usesTraces(): boolean {
    const o = this.stage.options;
    return o.offlineMember || !o.onlineRollouts || o.sftInterleave.enabled || o.prefixSearch.enabled;
  }

  /**
   * Verifies every example's teacher trace as the trainer would use it (truncated to
   * rollout.maxTokens) against its gold answer, like a rollout; the ones that verify form the
   * offline pool. Returns how many were dropped (logged as data/offline_dropped). Deterministic,
   * so a resumed run rebuilds the same pool.
   */
  async loadOfflinePool(): Promise<number> {
    if (!this.usesTraces()) return 0;
    const limit = this.config.rollout.maxTokens;
    const withTrace = this.env.examples.filter((e) => e.trace !== undefined);
    const accs = await this.env.verify(
      withTrace.map((e) => ({ gold: e.answer, text: this.env.decode(this.env.traceIds(e).slice(0, limit)) })),
    );
    this.offlinePool = new Set(withTrace.filter((_, i) => accs[i] === 1).map((e) => e.id));
    if (this.offlinePool.size === 0)
      fail(
        `${this.config.data.train}: no teacher trace verifies against its answer within rollout.maxTokens = ${limit}, and this method needs them`,
      );
    return this.env.examples.length - this.offlinePool.size;
  }

  /** Whether e's teacher trace is in the offline pool (verified). */
  hasVerifiedTrace(e: TrainingExample): boolean {
    if (this.offlinePool === null) throw new Error('GroupCollector: loadOfflinePool() must run before the first step');
    return this.offlinePool.has(e.id);
  }

  /**
   * Draws the next prompt whose chat prompt fits data.maxPromptTokens (and, for a stage without
   * rollouts, whose trace is in the offline pool: SFT has nothing else to learn from).
   */
  nextExample(): TrainingExample {
    const limit = this.config.data.maxPromptTokens;
    const needsTrace = !this.stage.options.onlineRollouts;
    for (let tries = 0; tries < this.env.examples.length; tries++) {
      const e = this.stage.data.next();
      if (this.env.promptIds(e).length > limit) this.counters.skippedPrompts++;
      else if (!needsTrace || this.hasVerifiedTrace(e)) return e;
    }
    return fail(
      `${this.config.data.train}: no prompt fits data.maxPromptTokens = ${limit}${needsTrace ? ' with a verified teacher trace' : ''}`,
    );
  }

  /**
   * The teacher trace as a member: truncated to the response limit, EOS appended when it was not.
   * Like a rollout, the response including its EOS never exceeds the limit, so a trace of exactly
   * the limit counts as truncated. Only traces of the offline pool become members, so its
   * accuracy is the verifier's 1.
   */
  offlineMember(example: TrainingExample, group: number): Member {
    const promptIds = this.env.promptIds(example);
    const trace = this.env.traceIds(example);
    const limit = this.config.rollout.maxTokens;
    const clipped = trace.length >= limit;
    const responseIds = clipped ? trace.slice(0, limit) : [...trace, this.env.eosId];
    return { group, promptIds, responseIds, isOffline: true, accuracy: 1, reward: 1, clipped };
  }

  private rolloutRequest(n: number, seed: number): RolloutRequest {
    const r = this.config.rollout;
    return {
      n,
      seed,
      temperature: r.temperature,
      topP: r.topP,
      topK: r.topK,
      maxTokens: r.maxTokens,
      stopStrings: r.stopStrings,
    };
  }

  /**
   * Draws prompts, rolls out, verifies and filters groups until the step has promptsPerStep groups
   * or groupFilter.maxFillAttempts draws were made (RED-SPEC "Group filtering").
   */
  async collect(step: number, timer: StepTimer): Promise<{ groups: StepGroup[]; metrics: Metrics }> {
    const o = this.stage.options;
    const wanted = groupsPerStep(this.config, o);
    const tally = new StepTally();
    const kept: StepGroup[] = [];
    let draw = 0;
    do {
      const examples = Array.from({ length: wanted - kept.length }, () => this.nextExample());
      const groups = await this.drawGroups(examples, { step, draw, timer, tally });
      kept.push(...this.keptGroups(groups, tally));
      draw++;
    } while (needsAnotherDraw(kept.length, wanted, draw, o.groupFilter.maxFillAttempts));
    kept.forEach((g, gi) => g.members.forEach((mem) => (mem.group = gi)));
    return { groups: kept, metrics: tally.metrics(kept.length, draw, o.prefixSearch.enabled) };
  }

  /** The groups of a draw that the filter keeps (the others counted as dropped). */
  private keptGroups(groups: StepGroup[], tally: StepTally): StepGroup[] {
    const flat = groups.flatMap((g, gi) => g.members.map((mem) => ({ mem, gi })));
    const { keep } = filterGroups(
      flat.map((f) => f.mem.accuracy),
      flat.map((f) => f.gi),
      this.stage.options.groupFilter.enabled,
    );
    tally.drawnGroups += groups.length;
    tally.droppedGroups += groups.filter((_, g) => !keep[g]).length;
    return groups.filter((_, g) => keep[g]);
  }

  /**
   * One draw: G rollouts per example (verified), each example's group (groupOf), then every
   * member's shaped reward R_i = acc_i + shaping.
   */
  private async drawGroups(examples: TrainingExample[], d: Draw): Promise<StepGroup[]> {
    const { samples, accs } = await this.rollOut(examples, d);
    const groups: StepGroup[] = [];
    for (let i = 0; i < examples.length; i++) groups.push(await this.groupOf(examples[i], i, samples[i], accs[i], d));
    const all = groups.flatMap((g) => g.members);
    const rewards = this.shapedRewards(all);
    all.forEach((mem, k) => (mem.reward = rewards[k]));
    // reward/mean: the rollouts' own shaped rewards (by the same formula).
    d.tally.addRewards(this.shapedRewards(samples.flatMap((row, i) => this.asMembers(row, accs[i]))));
    return groups;
  }

  /** G samples per example and their accuracies (none in a stage without rollouts). */
  private async rollOut(
    examples: TrainingExample[],
    d: Draw,
  ): Promise<{ samples: RolloutSample[][]; accs: number[][] }> {
    if (!this.stage.options.onlineRollouts) return { samples: examples.map(() => []), accs: examples.map(() => []) };
    const G = this.config.rollout.groupSize;
    const prompts = examples.map((e) => this.env.promptIds(e));
    const request = this.rolloutRequest(G, mixSeed(this.config.seed, d.step, d.draw));
    const samples = await d.timer.time('rollout', () => this.env.generate(prompts, request));
    d.tally.generated += prompts.length * G;
    const accs = await d.timer.time('reward', () => this.verifyGroups(examples, samples));
    return { samples, accs };
  }

  /**
   * Example i's group: its rollouts as members; on an all-fail group ReLIFT's buffer takes the
   * question and BREAD branches from a teacher prefix; the verified teacher trace joins where the
   * method has an offline member.
   */
  private async groupOf(
    e: TrainingExample,
    i: number,
    samples: RolloutSample[],
    accs: number[],
    d: Draw,
  ): Promise<StepGroup> {
    const o = this.stage.options;
    const promptIds = this.env.promptIds(e);
    let members: Member[] = samples.map((s, j) => ({
      group: 0,
      promptIds,
      responseIds: s.ids,
      isOffline: false,
      accuracy: accs[j],
      reward: accs[j],
      clipped: s.finishReason === 'length',
      rolloutLogprobs: s.logprobs,
    }));
    // The rollout statistics describe the policy on its own (before BREAD's branching).
    d.tally.addRollouts(members);
    const verifiedTrace = this.usesTraces() && this.hasVerifiedTrace(e);
    if (o.onlineRollouts && isHardGroup(accs) && verifiedTrace) {
      this.stage.hardQuestions?.add(e.id);
      if (o.prefixSearch.enabled) {
        const branched = await this.branchFromPrefix(e, d.step, d.draw, i, d.timer);
        d.tally.generated += branched.generated;
        if (branched.members) {
          members = branched.members;
          d.tally.branched++;
        }
      }
    }
    if ((o.offlineMember || !o.onlineRollouts) && verifiedTrace) members.push(this.offlineMember(e, 0));
    return { example: e, members };
  }

  private shapedRewards(members: Pick<Member, 'accuracy' | 'responseIds' | 'isOffline'>[]): Float64Array {
    return shapeRewards(
      {
        accuracies: members.map((m) => m.accuracy),
        lengths: members.map((m) => m.responseIds.length),
        isOffline: members.map((m) => m.isOffline),
      },
      this.stage.options.overlong,
      this.config.rollout.maxTokens,
    );
  }

  private asMembers(row: RolloutSample[], accs: number[]): Pick<Member, 'accuracy' | 'responseIds' | 'isOffline'>[] {
    return row.map((s, j) => ({ accuracy: accs[j], responseIds: s.ids, isOffline: false }));
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
   * falls on it (null when the trace is empty), and how many sequences the search sampled.
   */
  private async branchFromPrefix(
    e: TrainingExample,
    step: number,
    draw: number,
    index: number,
    timer: StepTimer,
  ): Promise<{ members: Member[] | null; generated: number }> {
    const o = this.stage.options;
    const cfg = this.config;
    const G = cfg.rollout.groupSize;
    const prompt = this.env.promptIds(e);
    const trace = this.env.traceIds(e).slice(0, cfg.rollout.maxTokens);
    if (trace.length === 0) return { members: null, generated: 0 };
    const tried = new Map<number, Member[]>();
    let sampled = 0;
    const choice = await prefixSearchAsync(async (k) => {
      const n = prefixTokens(k, trace.length, o.prefixSearch.segments);
      const p = [...prompt, ...trace.slice(0, n)];
      const room = Math.max(1, cfg.rollout.maxTokens - n);
      const req = { ...this.rolloutRequest(G, mixSeed(cfg.seed, step, draw, 1 + index, k)), maxTokens: room };
      const [samples] = await timer.time('rollout', () => this.env.generate([p], req));
      // The answer may sit in the teacher's prefix: the whole response is prefix + continuation.
      const accs = await timer.time('reward', () =>
        this.env.verify(
          samples.map((s) => ({ gold: e.answer, text: this.env.decode([...trace.slice(0, n), ...s.ids]) })),
        ),
      );
      sampled += samples.length;
      tried.set(
        k,
        samples.map((s, j) => ({
          group: 0,
          promptIds: p,
          responseIds: s.ids,
          rolloutLogprobs: s.logprobs,
          isOffline: false,
          accuracy: accs[j],
          reward: accs[j],
          clipped: s.finishReason === 'length',
        })),
      );
      return accs.reduce((a, b) => a + b, 0) / accs.length;
    }, o.prefixSearch);
    return { members: tried.get(choice.segments) ?? null, generated: sampled };
  }
}

/** Where a draw stands: the step and draw (they seed its rollouts), its timer and tally. */
interface Draw {
  step: number;
  draw: number;
  timer: StepTimer;
  tally: StepTally;
}

/** What one step's draws add up to: its rollout statistics, group counts and compute. */
class StepTally {
  drawnGroups = 0;
  droppedGroups = 0;
  /** Every sequence sampled this step, BREAD's prefix search included (compute). */
  generated = 0;
  /** Groups BREAD replaced by continuations of a teacher prefix. */
  branched = 0;
  private readonly online = { n: 0, acc: 0, reward: 0, rewardSq: 0, len: 0, clipped: 0 };

  addRollouts(members: Member[]): void {
    for (const m of members) {
      this.online.n++;
      this.online.acc += m.accuracy;
      this.online.len += m.responseIds.length;
      this.online.clipped += m.clipped ? 1 : 0;
    }
  }

  addRewards(rewards: ArrayLike<number>): void {
    for (let i = 0; i < rewards.length; i++) {
      const r = rewards[i];
      this.online.reward += r;
      this.online.rewardSq += r * r;
    }
  }

  metrics(kept: number, draws: number, prefixSearch: boolean): Metrics {
    const { n, acc, reward, rewardSq, len, clipped } = this.online;
    const metrics: Metrics = {
      'groups/kept': kept,
      'groups/dropped_frac': this.drawnGroups ? this.droppedGroups / this.drawnGroups : 0,
      'groups/draws': draws,
      'rollouts/generated': this.generated,
    };
    if (n > 0) {
      metrics['reward/mean'] = reward / n;
      metrics['reward/std'] = Math.sqrt(Math.max(0, rewardSq / n - (reward / n) ** 2)); // population std
      metrics['acc/mean'] = acc / n;
      metrics['completions/mean_length'] = len / n;
      metrics['completions/clipped_frac'] = clipped / n;
    }
    if (prefixSearch) metrics['bread/branched_groups'] = this.branched;
    return metrics;
  }
}
