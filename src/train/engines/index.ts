// Makes the run's training engine from EngineSettings: the one switch over engine.kind.
import { fail } from '../../util/errors.ts';
import type { GenerationModel } from '../../rollout/sampler.ts';
import type { EngineSettings, TrainingEngine } from '../engine.ts';
import { createNativeEngine, NativeEngine } from './native.ts';

export async function createTrainingEngine(settings: EngineSettings): Promise<TrainingEngine> {
  switch (settings.kind) {
    case 'native':
      return createNativeEngine(settings);
    case 'torch':
      return fail('engine.kind: torch is not available in this build of red yet; use engine.kind: native');
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
