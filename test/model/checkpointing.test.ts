// Activation checkpointing keeps each layer's input only and recomputes the layer in backward:
// the gradients must be the very same numbers as without it (fp32 and mixed precision, both
// backends), over several steps with batches of different sizes (the buffers are reallocated).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends } from '../../src/engine/index.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { packSequences } from '../../src/model/batch.ts';
import { Rng } from '../../src/util/rng.ts';

const config = parseConfig(
  {
    model_type: 'qwen2',
    hidden_size: 48,
    num_hidden_layers: 3,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 80,
    vocab_size: 97,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
    max_position_embeddings: 256,
  },
  'checkpointing test',
);

for (const backend of availableBackends()) {
  for (const precision of ['fp32', 'bf16'] as const) {
    test(`[${backend.name}] ${precision}: checkpointed gradients equal the stored-activation ones exactly`, () => {
      const plain = Qwen2Model.init(config, 3, { backend });
      const ckpt = new Qwen2Model(config, backend, plain.readParams());
      ckpt.setActivationCheckpointing(true);
      for (const m of [plain, ckpt]) m.setComputePrecision(precision);
      const rng = new Rng(5);
      for (const lengths of [[9, 30, 4], [60, 17], [5]]) {
        const batch = packSequences(lengths.map((n) => Array.from({ length: n }, () => rng.int(config.vocabSize))));
        const T = batch.ids.length;
        const cl = Float32Array.from({ length: T }, () => rng.normal()),
          ce = Float32Array.from({ length: T }, () => rng.normal() * 0.1);
        const got: Float32Array[] = [];
        for (const m of [plain, ckpt]) {
          m.zeroGrad();
          const { logprob } = m.forward(batch);
          m.backward(cl, ce);
          got.push(m.readGrads(), logprob);
        }
        assert.deepEqual(got[3], got[1], `logprobs, lengths ${lengths}`);
        assert.deepEqual(got[2], got[0], `gradients, lengths ${lengths}`);
        assert.ok(got[0].some((x) => x !== 0));
      }
      assert.ok(
        ckpt.activationBytes < plain.activationBytes / 2,
        `activations ${ckpt.activationBytes} vs ${plain.activationBytes} bytes`,
      );
    });
  }
}
