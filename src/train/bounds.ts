// The sizes of a run checked against the model and the machine before anything is allocated:
// one line, and no run, when the memory it needs at the least exceeds what the machine has
// (rollout.groupSize 1e9 used to grow silently past 4 GB; rollout.maxTokens 1e9 to die on
// "Invalid typed array length"); a warning when the response limit reaches the model's
// max_position_embeddings (positions it never saw in training) or a learning rate is above 1.
import path from 'node:path';
import type { AlgorithmOptions } from '../rl/options.ts';
import { loadConfig, type ModelConfig } from '../model/config.ts';
import { activationBytesPerToken, BYTES_PER_SAMPLE, kvCacheBytes, parameterCount } from '../model/footprint.ts';
import { checkMemoryFits, formatCount, type MemoryPart } from '../util/memory.ts';
import type { TrainConfig } from './config.ts';

/** KV-cache slots of the local sampler (its default maxBatch): decoding is continuous beyond them. */
const SAMPLER_SLOTS = 64;

/** Checks `config` (model.path already a local folder) for the run's `stages`; writes its warnings to `warn`. */
export function checkTrainBounds(
  config: TrainConfig,
  stages: readonly AlgorithmOptions[],
  warn: (line: string) => void = (l) => process.stderr.write(`warning: ${l}\n`),
): void {
  const model = loadConfig(path.join(config.model.path, 'config.json'));
  checkMemoryFits('this run', trainMemory(config, model, stages));
  const sft = stages.some((s) => !s.onlineRollouts);
  const rl = stages.some((s) => s.onlineRollouts);
  // The prompt limit is a filter most prompts stay far below: only a response limit that leaves
  // no position for any prompt is flagged, where responses are sampled (SFT reads traces as they are).
  if (rl && config.rollout.maxTokens >= model.maxPositionEmbeddings)
    warn(
      `rollout.maxTokens ${config.rollout.maxTokens} is not below model.path's max_position_embeddings ${model.maxPositionEmbeddings} (config.json): long responses run into positions the model was not trained on; lower rollout.maxTokens, or use a model whose config.json allows more`,
    );
  if (rl && config.optim.lr > 1)
    warn(
      `optim.lr ${config.optim.lr} is above 1: each AdamW step moves every weight by about lr, so the weights blow up at the first step (the paper's rate is 2e-6)`,
    );
  if (sft && config.sft.lr > 1)
    warn(
      `sft.lr ${config.sft.lr} is above 1: each AdamW step moves every weight by about lr, so the weights blow up at the first step (the default is 5e-5)`,
    );
}

/** What the run allocates at the least: parameters and optimiser state, the sampler, one update's activations. */
function trainMemory(config: TrainConfig, model: ModelConfig, stages: readonly AlgorithmOptions[]): MemoryPart[] {
  const N = parameterCount(model);
  const { groupSize: G, promptsPerStep: P, maxTokens } = config.rollout;
  const rl = stages.some((s) => s.onlineRollouts);
  const rollouts = rl ? P * G : 0;
  const slots = Math.min(SAMPLER_SLOTS, rollouts);
  // fp32 weights, gradients, AdamW m and v; a frozen reference for the KL term; a bf16 copy for mixed precision.
  // On engine.kind torch they live in the engine's ranks (GPU memory), not in this process.
  const inProcess = config.engine.kind === 'native';
  const stateBytes = inProcess
    ? N * (16 + (stages.some((s) => s.klCoef > 0) ? 4 : 0) + (config.engine.precision === 'bf16' ? 2 : 0))
    : 0;
  // One update holds every sequence of a batch (or of a micro-batch), each of ≥ 1 prompt and ≥ 1 response token.
  const sequences = Math.max(rollouts, stages.some((s) => !s.onlineRollouts) ? config.sft.batchSize : 0);
  const tokens =
    config.optim.microBatchTokens > 0 ? Math.min(2 * sequences, config.optim.microBatchTokens) : 2 * sequences;
  const local = config.rollout.engine === 'local';
  return [
    { what: `weights, gradients and AdamW moments of ${formatCount(N)} parameters`, bytes: stateBytes },
    {
      what: `the rollout KV cache of ${slots} sequences × ${maxTokens + 1} positions`,
      bytes: local ? kvCacheBytes(model, slots, maxTokens + 1) : 0,
      sizedBy: 'rollout.maxTokens',
    },
    {
      what: `${P} prompts × ${G} rollouts per step`,
      bytes: rollouts * BYTES_PER_SAMPLE,
      sizedBy: 'rollout.groupSize or rollout.promptsPerStep',
    },
    {
      what: `activations of ${tokens} tokens per update`,
      bytes: inProcess ? tokens * activationBytesPerToken(model, config.engine.activationCheckpointing) : 0,
      sizedBy:
        sequences === rollouts
          ? 'rollout.groupSize or rollout.promptsPerStep'
          : 'sft.batchSize (or set optim.microBatchTokens)',
    },
  ];
}
