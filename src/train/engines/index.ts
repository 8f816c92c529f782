// Makes the run's training engine from EngineSettings: the one switch over engine.kind.
import type { GenerationModel } from '../../rollout/sampler.ts';
import type { TensorBroadcaster, TransferBackend } from '../../rollout/weight-transfer.ts';
import type { EngineSettings, TrainingEngine } from '../engine.ts';
import { createNativeEngine, NativeEngine } from './native.ts';
import { createTorchEngine, TorchEngine } from './torch.ts';

export async function createTrainingEngine(settings: EngineSettings): Promise<TrainingEngine> {
  switch (settings.kind) {
    case 'native':
      return createNativeEngine(settings);
    case 'torch':
      return createTorchEngine(settings);
    default:
      return settings.kind satisfies never;
  }
}

/**
 * The policy as the in-process sampler takes it (rollout.engine local), or null when the engine's
 * weights live elsewhere (torch: a Python process).
 */
export function localSampler(engine: TrainingEngine): GenerationModel | null {
  return engine instanceof NativeEngine ? engine.generationModel : null;
}

/** An engine that sends its own weights to inference servers (rollout.weightSync nccl) as rank 0 of their group. */
export interface WeightBroadcaster extends TensorBroadcaster {
  readonly transferBackend: TransferBackend;
}

/** The engine as a weight broadcaster, or null where it cannot be one (native: no process group to join). */
export function weightBroadcaster(engine: TrainingEngine): WeightBroadcaster | null {
  return engine instanceof TorchEngine ? engine : null;
}
