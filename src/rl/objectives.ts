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
  nll: (b, options, ctx) => {
    const M = b.offsets.length - 1;
    const [first, end] = ctx.members ?? [0, M];
    return nllLoss(
      {
        logprobs: b.logprobs,
        tokens: b.offsets[M],
        mask: b.mask,
        entropies: b.entropies,
        range: [b.offsets[first], b.offsets[end]],
      },
      options.entropyCoef,
    );
  },
  // RED-SPEC "Objective": GRPO, MixPolicy, LUFFY, RED.
  'group-policy': policyLoss,
  // RED-SPEC `srft`.
  srft: srftLoss,
};
