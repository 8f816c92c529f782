// The sizes of a `red demo` run: how big the base model is and how long it pretrains, how many
// steps every method trains (one budget for all of them, so the table compares like with like)
// and how much of the held-out split each trained model is evaluated on.
import { TINY_MODEL, type TinyModelShape } from '../data/task/model.ts';
import { PRETRAIN_DEFAULTS } from '../train/pretrain.ts';
import { PRESET_NAMES } from '../rl/options.ts';

export const BUDGET_NAMES = ['default', 'quick', 'tiny'] as const;
export type BudgetName = (typeof BUDGET_NAMES)[number];

export interface DemoBudget {
  name: BudgetName;
  /** Seed of the data, the base model and every run (the paper's recipe uses 42 for training). */
  seed: number;
  /** Rows of the built-in task's train and held-out splits (default: all, 360 and 120). */
  data: { train?: number; test?: number };
  /** The base model's pretraining (its own seed: the default budget's base is exactly `red pretrain`'s). */
  pretrain: { seed: number; steps: number; batchSize: number; poolSize: number; model: TinyModelShape };
  train: {
    /** Optimiser steps of every stage (sft-grpo has two stages of this many). */
    steps: number;
    promptsPerStep: number;
    /** G online rollouts per prompt. */
    groupSize: number;
    /** Response limit of rollouts and offline traces. */
    maxTokens: number;
    rlLr: number;
    sftLr: number;
  };
  eval: {
    /** First N problems of the held-out split (levels are balanced along the file). */
    problems: number;
    /** k of avg@k. */
    samples: number;
    temperature: number;
    maxTokens: number;
  };
}

/**
 * default: ≤ 15 min on a 2-core laptop CPU (native backend). The base model is `red pretrain`'s
 * default one; G, prompts per step and learning rates are examples/builtin/base.yaml's; the step
 * count and the evaluation size are what fits eleven methods (twelve evaluations) in the budget.
 */
const DEFAULT_BUDGET: DemoBudget = {
  name: 'default',
  seed: 42,
  data: {},
  pretrain: {
    seed: PRETRAIN_DEFAULTS.seed,
    steps: PRETRAIN_DEFAULTS.steps,
    batchSize: PRETRAIN_DEFAULTS.batchSize,
    poolSize: PRETRAIN_DEFAULTS.poolSize,
    model: TINY_MODEL,
  },
  train: { steps: 150, promptsPerStep: 8, groupSize: 4, maxTokens: 256, rlLr: 1e-4, sftLr: 1e-3 },
  // ≥ 100 problems × 16 samples: pass@k for k = 1…16 (Recall vs Extend) from the same samples.
  eval: { problems: 100, samples: 16, temperature: 0.6, maxTokens: 256 },
};

/**
 * quick: ≤ 2 min; the same model shape pretrained a quarter as long (~35 s), three steps per
 * method and a small evaluation: the pipeline and the report, not a meaningful comparison.
 */
const QUICK_BUDGET: DemoBudget = {
  name: 'quick',
  seed: 42,
  data: {},
  pretrain: {
    seed: PRETRAIN_DEFAULTS.seed,
    steps: 300,
    batchSize: PRETRAIN_DEFAULTS.batchSize,
    poolSize: PRETRAIN_DEFAULTS.poolSize,
    model: TINY_MODEL,
  },
  // Responses up to 256 tokens: a teacher trace cut shorter has no answer and would be dropped.
  train: { steps: 3, promptsPerStep: 4, groupSize: 4, maxTokens: 256, rlLr: 1e-4, sftLr: 1e-3 },
  eval: { problems: 20, samples: 4, temperature: 0.6, maxTokens: 256 },
};

/** tiny: the pipeline's test; one step each, seconds per method. */
const TINY_BUDGET: DemoBudget = {
  name: 'tiny',
  seed: 42,
  data: { train: 40, test: 20 },
  pretrain: {
    seed: 42,
    steps: 4,
    batchSize: 4,
    poolSize: 40,
    model: { hidden: 16, layers: 1, heads: 2, kvHeads: 1, intermediate: 32 },
  },
  train: { steps: 1, promptsPerStep: 2, groupSize: 2, maxTokens: 256, rlLr: 1e-3, sftLr: 1e-3 },
  eval: { problems: 5, samples: 2, temperature: 0.6, maxTokens: 24 },
};

export const BUDGETS: Record<BudgetName, DemoBudget> = {
  default: DEFAULT_BUDGET,
  quick: QUICK_BUDGET,
  tiny: TINY_BUDGET,
};

/** The methods of RED-SPEC's Table 2 in the order the demo trains and tabulates them. */
export const DEMO_METHODS = PRESET_NAMES;
