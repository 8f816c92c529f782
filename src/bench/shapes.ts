// The model shapes the benchmarks measure (a ~20M Qwen2 and the Qwen2.5-0.5B shape) and a quick
// way to fill one with random weights: speed does not depend on the values.
import type { Backend } from '../engine/backend.ts';
import { parseConfig, type ModelConfig } from '../model/config.ts';
import { Qwen2Model } from '../model/qwen2.ts';

export interface Shape {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
}

export const SHAPE_20M: Shape = {
  name: '20M',
  hidden: 512,
  layers: 8,
  heads: 8,
  kvHeads: 2,
  intermediate: 1408,
  vocab: 8192,
};
export const SHAPE_05B: Shape = {
  name: 'qwen2.5-0.5b',
  hidden: 896,
  layers: 24,
  heads: 14,
  kvHeads: 2,
  intermediate: 4864,
  vocab: 151936,
};

export function configOf(s: Shape): ModelConfig {
  return parseConfig(
    {
      model_type: 'qwen2',
      hidden_size: s.hidden,
      num_hidden_layers: s.layers,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kvHeads,
      intermediate_size: s.intermediate,
      vocab_size: s.vocab,
      rms_norm_eps: 1e-6,
      rope_theta: 1e6,
      tie_word_embeddings: true,
      max_position_embeddings: 32768,
    },
    `bench ${s.name}`,
  );
}

/**
 * Random weights: Qwen2Model.init for small models; for large ones a cheap xorshift fill
 * (500M Box-Muller draws would dominate the bench).
 */
export function randomModel(config: ModelConfig, backend: Backend): Qwen2Model {
  const m = new Qwen2Model(config, backend);
  if (m.layout.total < 50e6) return Qwen2Model.init(config, 0, { backend });
  const state = { x: 0x9e3779b9 };
  // One tensor at a time into its view (no host copy of the whole model).
  const host = new Float32Array(m.layout.specs.reduce((n, spec) => Math.max(n, spec.size), 0));
  for (const spec of m.layout.specs) {
    const p = host.subarray(0, spec.size);
    fillRandom(spec.name, p, state);
    backend.upload(backend.view(m.params, spec.offset, spec.size), p);
  }
  return m;
}

/** Parameter `name`'s random values: norms 1, the rest xorshift32 in ±0.02 (the stream goes on in `state`). */
export function fillRandom(name: string, p: Float32Array, state: { x: number }): void {
  if (name.endsWith('norm.weight')) return void p.fill(1);
  let x = state.x;
  for (let i = 0; i < p.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5; // xorshift32
    p[i] = ((x >>> 0) / 4294967296 - 0.5) * 0.04;
  }
  state.x = x;
}
