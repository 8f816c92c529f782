// `rollout.engine: remote`: the trainer's generate() and weight sync over rollout/remote.ts.
// After each optimiser step the engine writes the policy as a Hugging Face folder under
// rollout.syncDir (saveForSampler; BF16 safetensors by default, rollout.syncDtype) and every server loads it.
import path from 'node:path';
import type { TokenDecoder } from '../model/tokenizer.ts';
import { RemoteRollouts } from '../rollout/remote.ts';
import type { TrainConfig } from './config.ts';
import type { TrainingEngine } from './engine.ts';
import { asRolloutSamples, type TrainerEnv } from './env.ts';

export async function remoteRollouts(
  config: TrainConfig,
  engine: Pick<TrainingEngine, 'saveForSampler'>,
  tokenizer: TokenDecoder,
  stopIds: number[],
  syncDir: string,
  log: (line: string) => void,
): Promise<Pick<TrainerEnv, 'generate' | 'syncWeights'>> {
  const r = config.rollout;
  const client = new RemoteRollouts({
    servers: r.servers,
    api: r.api,
    maxAttempts: r.maxAttempts,
    timeoutS: r.requestTimeoutS,
    log,
  });
  await client.checkHealth();
  await client.checkLogprobs({ temperature: r.temperature, topP: r.topP, topK: r.topK });
  const dir = path.resolve(syncDir, 'policy');
  return {
    generate: async (prompts, req) => {
      const samples = await client.generate(prompts, { ...req, stopTokenIds: stopIds });
      return asRolloutSamples(samples, (ids) => tokenizer.decode(ids));
    },
    syncWeights: async (version) => {
      const t0 = performance.now();
      await engine.saveForSampler(dir, r.syncDtype); // replaced atomically: a server never reads a half-written folder
      await client.syncWeights(dir, version);
      return (performance.now() - t0) / 1000;
    },
  };
}
