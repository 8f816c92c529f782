// Where a run's rollouts are generated (rollout.engine): `local`, the in-process sampler over the
// native engine's own weights (the trained parameters themselves, no copy); `engine`, the training
// engine's sample() (the way a machine with PyTorch but no vLLM/SGLang runs RED end to end), stop
// strings applied to its samples afterwards; `remote` is remote.ts.
import type { TokenDecoder } from '../model/tokenizer.ts';
import { promptSeed } from '../rollout/remote.ts';
import { cutBeforeStopString, endsStopString, generate, stopWindow } from '../rollout/sampler.ts';
import { fail } from '../util/errors.ts';
import type { EngineSample, TrainingEngine } from './engine.ts';
import { localSampler } from './engines/index.ts';
import { asRolloutSamples, type RolloutSample, type TrainerEnv } from './env.ts';

export function localRollouts(
  engine: TrainingEngine,
  tokenizer: TokenDecoder,
  stopIds: number[],
): Pick<TrainerEnv, 'generate'> {
  const model =
    localSampler(engine) ??
    fail(`rollout.engine: local needs the policy in this process (engine.kind native); use rollout.engine: engine`);
  return {
    generate: async (prompts, req) => {
      const samples = await generate(model, prompts, {
        n: req.n,
        temperature: req.temperature,
        topP: req.topP,
        topK: req.topK,
        maxTokens: req.maxTokens,
        promptSeeds: prompts.map((_, i) => promptSeed(req.seed, i)),
        eosIds: stopIds,
        stopStrings: req.stopStrings,
        tokenizer,
      });
      return asRolloutSamples(samples, (ids) => tokenizer.decode(ids));
    },
  };
}

/** Sampling on the training engine: sample j of prompt i draws from (promptSeed(seed, i), j), as locally and remotely. */
export function engineRollouts(
  engine: TrainingEngine,
  tokenizer: TokenDecoder,
  stopIds: number[],
): Pick<TrainerEnv, 'generate'> {
  return {
    generate: async (prompts, req) => {
      const rows = await engine.sample(prompts, {
        n: req.n,
        temperature: req.temperature,
        topP: req.topP,
        topK: req.topK,
        maxTokens: req.maxTokens,
        seeds: prompts.map((_, i) => promptSeed(req.seed, i)),
        stopTokenIds: stopIds,
      });
      const stops = req.stopStrings.filter((x) => x.length > 0);
      return rows.map((row) => row.map((s) => stoppedSample(s, stops, tokenizer)));
    },
  };
}

/**
 * A sample cut where a stop string completes, as the local sampler stops: ids up to the token that
 * completed it, text cut before it. A sample's draws depend on its own stream only, so the ids
 * before the cut are those the sampler would have stopped with.
 */
function stoppedSample(s: EngineSample, stops: string[], tokenizer: TokenDecoder): RolloutSample {
  const window = stopWindow(stops);
  for (let k = 1; k <= s.ids.length && stops.length > 0; k++) {
    const ids = s.ids.slice(0, k);
    if (endsStopString(ids, stops, tokenizer, window))
      return {
        ids,
        logprobs: s.logprobs.slice(0, k),
        text: cutBeforeStopString(tokenizer.decode(ids), stops),
        finishReason: 'stop',
      };
  }
  return { ids: s.ids, logprobs: s.logprobs, text: tokenizer.decode(s.ids), finishReason: s.finishReason };
}
