// The losses the trainer can call, keyed by options.objective (verl core_algos style: a typed
// registry, so a missing entry is a type error and the trainer never branches on a method's name).
import type { TokenBatch } from './batch.ts';
import type { AlgorithmOptions, ObjectiveName } from './options.ts';
import { policyLoss, type LossContext, type LossResult } from './policy-loss.ts';
import { nllLoss } from './sft.ts';
import { srftLoss } from './srft.ts';

export type ObjectiveFn = (b: TokenBatch, options: AlgorithmOptions, ctx: LossContext) => LossResult;

export const objectives: Record<ObjectiveName, ObjectiveFn> = {
  // RED-SPEC `sft`: token-mean NLL over every member's counted tokens (rewards are not read).
  nll: (b, options) => nllLoss(
    { logprobs: b.logprobs, tokens: b.offsets[b.offsets.length - 1], mask: b.mask, entropies: b.entropies },
    options.entropyCoef,
  ),
  // RED-SPEC "Objective": GRPO, MixPolicy, LUFFY, RED.
  'group-policy': policyLoss,
  // RED-SPEC `srft`.
  srft: srftLoss,
};
