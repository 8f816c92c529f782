// What the PyTorch engine's tests share: whether this machine has a python3 that imports torch
// (else each test skips with the line that says how to get one), the engine settings they use,
// and the transformers golden fixtures as the engine's packed batch and per-token coefficients.
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { oneDeviceSettings, type EngineBatch, type EngineSettings } from '../../src/train/engine.ts';
import { findTorchPython } from '../../src/train/engines/torch-launch.ts';
import { TorchEngine } from '../../src/train/engines/torch.ts';
import { fixturePath } from '../helpers/paths.ts';

export const TORCH_PYTHON = findTorchPython();
export const SKIP_TORCH = TORCH_PYTHON
  ? false
  : 'skipped: no PyTorch (apt-get install -y python3-torch libopenblas0-pthread)';
if (SKIP_TORCH) console.log(SKIP_TORCH);

export const torchSettings = (modelPath: string, over: Partial<EngineSettings> = {}): EngineSettings =>
  oneDeviceSettings('torch', modelPath, over);

export const openTorchEngine = (modelPath: string, over: Partial<EngineSettings> = {}): Promise<TorchEngine> =>
  TorchEngine.create(torchSettings(modelPath, over));

/** One golden fixture: its two sequences (24 and 17 tokens), every token after the first scored. */
export interface GoldenCase {
  dir: string;
  gold: SafetensorsFile;
  sequences: Int32Array[];
  batch: EngineBatch;
  /** (N) the golden log π, entropy and loss coefficients in the engine's per-token order. */
  logprob: Float32Array;
  entropy: Float32Array;
  coefLogprob: Float32Array;
  coefEntropy: Float32Array;
}

export function packBatch(sequences: ArrayLike<number>[]): EngineBatch {
  const cu = new Int32Array(sequences.length + 1);
  sequences.forEach((s, b) => (cu[b + 1] = cu[b] + s.length));
  const ids = new Int32Array(cu[sequences.length]);
  sequences.forEach((s, b) => ids.set(Array.from(s), cu[b]));
  return { ids, cuSeqlens: cu, scoredFrom: new Int32Array(sequences.length).fill(1) };
}

export function goldenCase(kind: 'tied' | 'untied'): GoldenCase {
  const dir = fixturePath(`qwen2-tiny-${kind}`);
  const gold = new SafetensorsFile(`${dir}/golden.safetensors`);
  const ids = gold.readInt('input_ids'),
    mask = gold.readInt('attention_mask'); // (2, 24), right-padded
  const S = 24;
  const sequences = [0, 1].map((b) => {
    const n = mask.subarray(b * S, (b + 1) * S).reduce((a, x) => a + x, 0);
    return ids.slice(b * S, b * S + n);
  });
  // Golden (2, 23) arrays → the engine's order: sequence 0's scored tokens, then sequence 1's.
  const perToken = (name: string, scale = 1): Float32Array => {
    const src = gold.readFloat(name);
    return Float32Array.from(
      sequences.flatMap((s, b) => Array.from({ length: s.length - 1 }, (_, t) => scale * src[b * 23 + t])),
    );
  };
  return {
    dir,
    gold,
    sequences,
    batch: packBatch(sequences),
    logprob: perToken('next_logprob'),
    entropy: perToken('entropy'),
    coefLogprob: perToken('loss_coef_logprob'),
    coefEntropy: perToken('loss_coef_entropy', 0.1), // loss = Σ (cl·log π + 0.1·ce·H)
  };
}
