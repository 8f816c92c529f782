// What the training loop computes with, as interfaces: the training engine (the policy's compute,
// src/train/engine.ts), the rollout sampler, the verifier and the tokenised data (run.ts builds
// them from the real parts; tests use fakes), plus the step's seed derivation and timer.
import type { TrainingExample } from '../data/dataset.ts';
import type { RemoteRequest } from '../rollout/remote.ts';
import type { TrainingEngine } from './engine.ts';

/** What the trainer asks of a rollout engine for each prompt (local or remote: one definition). */
export type RolloutRequest = Omit<RemoteRequest, 'stopTokenIds'>;

export interface RolloutSample {
  /** Response ids (the EOS token included when the sampler stopped on it). */
  ids: readonly number[];
  text: string;
  finishReason: 'stop' | 'length';
  /** The sampler's log-prob of each id (the behaviour policy), when it reports them. */
  logprobs?: readonly number[];
}

/** An engine's samples (local sampler or remote server) as the trainer's; text decoded where the engine gave none. */
export function asRolloutSamples(
  rows: readonly (readonly (Omit<RolloutSample, 'text'> & { text?: string | null })[])[],
  decode: (ids: readonly number[]) => string,
): RolloutSample[][] {
  return rows.map((row) =>
    row.map((s) => ({ ids: s.ids, text: s.text ?? decode(s.ids), finishReason: s.finishReason, logprobs: s.logprobs })),
  );
}

/** Everything the loop computes with, built from the config by run.ts (or faked in tests). */
export interface TrainerEnv {
  /**
   * The policy's compute (and the frozen reference's, when a stage's KL coefficient is above 0):
   * forward/backward, optimisers, checkpoints and weights for the samplers all go through it.
   */
  engine: TrainingEngine;
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
  /** Malformed rows skipped while loading (data.onBadRow: skip). */
  skippedRows: number;
  /**
   * Remote rollouts: makes the servers generate with the current parameters, labelled `version`
   * (writes the policy folder, asks every server to load it); returns the seconds taken.
   */
  syncWeights?: (version: string) => Promise<number>;
}

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

/** Seconds spent per part of a step (timing_s/*). */
export class StepTimer {
  readonly s: Record<'rollout' | 'reward' | 'logprob' | 'update', number> = {
    rollout: 0,
    reward: 0,
    logprob: 0,
    update: 0,
  };
  async time<T>(key: keyof StepTimer['s'], f: () => Promise<T> | T): Promise<T> {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      this.s[key] += (performance.now() - t0) / 1000;
    }
  }
}
