// `rollout.engine: remote`: the trainer's generate() and weight sync over rollout/remote.ts.
// After each optimiser step the servers get the policy one of two ways (rollout.weightSync):
// disk: the engine writes it as a Hugging Face folder under rollout.syncDir (saveForSampler; BF16
// safetensors by default, rollout.syncDtype) and every server loads it; nccl: the PyTorch engine's
// rank 0 broadcasts every tensor to the servers' workers (rollout/weight-transfer.ts).
import { createServer } from 'node:net';
import path from 'node:path';
import type { TokenDecoder } from '../model/tokenizer.ts';
import { RemoteRollouts } from '../rollout/remote.ts';
import { NcclWeightSync, type TensorSpec } from '../rollout/weight-transfer.ts';
import { fail } from '../util/errors.ts';
import type { TrainConfig } from './config.ts';
import type { TrainingEngine } from './engine.ts';
import { weightBroadcaster } from './engines/index.ts';
import { asRolloutSamples, type TrainerEnv } from './env.ts';

type SyncWeights = NonNullable<TrainerEnv['syncWeights']>;

export async function remoteRollouts(
  config: TrainConfig,
  engine: TrainingEngine,
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
    syncWeights:
      r.weightSync === 'nccl'
        ? await ncclWeightSync(config, engine, client)
        : async (version) => {
            const t0 = performance.now();
            await engine.saveForSampler(dir, r.syncDtype); // replaced atomically: a server never reads a half-written folder
            await client.syncWeights(dir, version);
            return (performance.now() - t0) / 1000;
          },
  };
}

/** Torch's names of rollout.syncDtype, as the servers' update calls take them. */
const TORCH_DTYPE = { bf16: 'bfloat16', fp32: 'float32' } as const;

/**
 * rollout.weightSync nccl: every parameter under its Hugging Face name, in the engine's order and
 * rollout.syncDtype. The group forms at the first sync (the servers join while rank 0 does);
 * pausing and resuming the servers is NcclWeightSync's.
 */
async function ncclWeightSync(
  config: TrainConfig,
  engine: TrainingEngine,
  client: RemoteRollouts,
): Promise<SyncWeights> {
  const r = config.rollout;
  const broadcaster = weightBroadcaster(engine);
  if (broadcaster === null)
    return fail(
      `rollout.weightSync: nccl broadcasts from the PyTorch engine; set engine.kind: torch (it is ${engine.kind})`,
    );
  const sync = new NcclWeightSync(
    {
      servers: r.servers,
      protocol: r.api === 'sglang' ? 'sglang' : 'vllm', // the OpenAI API's servers with NCCL routes are vLLM's
      masterAddress: r.nccl.address,
      masterPort: r.nccl.port === 0 ? await freePort() : r.nccl.port,
      backend: broadcaster.transferBackend,
      timeoutS: r.requestTimeoutS,
    },
    broadcaster,
  );
  const tensors: TensorSpec[] = engine.info.tensors.map((t) => ({
    name: t.name,
    dtype: TORCH_DTYPE[r.syncDtype],
    shape: t.shape,
  }));
  let joined = false;
  return async (version) => {
    const t0 = performance.now();
    if (!joined) await sync.init();
    joined = true;
    await sync.sync(tensors, version);
    client.expectedVersion = version; // samples from older weights are refused, as after a disk sync
    return (performance.now() - t0) / 1000;
  };
}

/** A port free on every interface of this host now (the group's store listens there next). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}
