// Model behaviour the golden fixtures do not cover: packing is invisible (packed = each sequence
// alone, forward and gradients), the chunked loss head agrees with full logits across chunk
// boundaries, masked targets contribute nothing, buffers grow and shrink between calls, and
// init follows transformers' recipe.
import type { Tensor } from '../../src/engine/backend.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends } from '../../src/engine/index.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { packSequences } from '../../src/model/batch.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertAllClose } from '../helpers/close.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';

const config = parseConfig(
  tinyQwen2Config({
    vocab_size: 50,
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    tie_word_embeddings: false,
    initializer_range: 0.2,
  }),
);

function randomSeq(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.int(config.vocabSize));
}

for (const backend of availableBackends()) {
  test(`[${backend.name}] packed sequences (3 chunks of the loss head) = the sum of each sequence alone`, () => {
    const model = Qwen2Model.init(config, 1, { backend });
    const rng = new Rng(2);
    const seqs = [randomSeq(rng, 100), randomSeq(rng, 1), randomSeq(rng, 120), randomSeq(rng, 90)]; // 307 tokens, 303 targets
    const coefs = seqs.map((s) => ({
      cl: Float32Array.from(s, () => rng.normal()),
      ce: Float32Array.from(s, () => rng.normal()),
    }));
    const packed = packSequences(seqs);
    const { logprob, entropy } = model.forward(packed);
    model.zeroGrad();
    const cat = (k: 'cl' | 'ce'): Float32Array => Float32Array.from(coefs.flatMap((c) => Array.from(c[k])));
    model.backward(cat('cl'), cat('ce'));
    const packedGrads = model.readGrads();

    model.zeroGrad();
    const lpAlone: number[] = [],
      entAlone: number[] = [];
    seqs.forEach((s, b) => {
      const r = model.forward(packSequences([s]));
      lpAlone.push(...r.logprob);
      entAlone.push(...r.entropy);
      model.backward(coefs[b].cl, coefs[b].ce); // accumulates
    });
    assertAllClose(logprob, lpAlone, { atol: 1e-5 }, `[${backend.name}] packed vs alone: logprob`);
    assertAllClose(entropy, entAlone, { atol: 1e-5 }, `[${backend.name}] packed vs alone: entropy`);
    assertAllClose(packedGrads, model.readGrads(), { atol: 1e-4 }, `[${backend.name}] packed vs alone: grads`);
    // the 1-token sequence has no target
    assert.equal(logprob[100], 0);
    assert.equal(entropy[100], 0);
  });

  test(`[${backend.name}] the chunked loss head equals log-softmax of the full logits`, () => {
    const model = Qwen2Model.init(config, 3, { backend });
    const rng = new Rng(4);
    const seq = randomSeq(rng, 200);
    const batch = packSequences([seq]);
    const { logprob, entropy } = model.forward(batch);
    const logits = model.logits(batch);
    const V = config.vocabSize;
    const wantLogprob: number[] = [],
      wantEntropy: number[] = [];
    for (let t = 0; t + 1 < seq.length; t++) {
      const z = Array.from(logits.subarray(t * V, (t + 1) * V));
      const m = Math.max(...z),
        lse = m + Math.log(z.reduce((s, x) => s + Math.exp(x - m), 0));
      wantLogprob.push(z[seq[t + 1]] - lse);
      wantEntropy.push(-z.reduce((s, x) => s + Math.exp(x - lse) * (x - lse), 0));
    }
    const T = wantLogprob.length;
    assertAllClose(
      logprob.subarray(0, T),
      wantLogprob,
      { atol: 1e-5 },
      `[${backend.name}] chunked head vs full logits: logprob`,
    );
    assertAllClose(
      entropy.subarray(0, T),
      wantEntropy,
      { atol: 1e-5 },
      `[${backend.name}] chunked head vs full logits: entropy`,
    );
  });

  test(`[${backend.name}] masked targets (a prompt) give 0 and their coefficients change nothing; buffers resize`, () => {
    const model = Qwen2Model.init(config, 5, { backend });
    const rng = new Rng(6);
    const seq = randomSeq(rng, 12);
    const masked = packSequences([seq], [5]); // tokens 5.. are scored: targets at t ≥ 4
    assert.deepEqual(Array.from(masked.targets.slice(0, 4)), [-1, -1, -1, -1]);
    assert.equal(masked.targets[4], seq[5]);
    const full = packSequences([seq]);
    const a = model.forward(masked);
    const b = model.forward(full);
    for (let t = 0; t < 4; t++) assert.equal(a.logprob[t], 0);
    assertAllClose(a.logprob.subarray(4), b.logprob.subarray(4), { atol: 1e-6 }, 'masked vs full logprob');

    const cl = Float32Array.from(seq, (_, t) => (t < 4 ? 0 : rng.normal()));
    const ce = Float32Array.from(seq, (_, t) => (t < 4 ? 0 : rng.normal()));
    model.zeroGrad();
    model.forward(full);
    model.backward(cl, ce);
    const want = model.readGrads();
    // the same loss through the masked batch, with garbage coefficients on masked positions;
    // a larger batch in between makes the buffers grow
    model.forward(packSequences([randomSeq(rng, 40), randomSeq(rng, 30)]));
    model.zeroGrad();
    model.forward(masked);
    model.backward(
      cl.map((x, t) => (t < 4 ? 100 : x)),
      ce.map((x, t) => (t < 4 ? -100 : x)),
    );
    assertAllClose(
      model.readGrads(),
      want,
      { atol: 1e-5 },
      'gradient with garbage coefficients on masked targets (must not leak)',
    );
  });
}

test('init: norms 1, biases 0, weights normal(0, initializer_range), reproducible from the seed', () => {
  const a = Qwen2Model.init(config, 7),
    b = Qwen2Model.init(config, 7);
  assert.deepEqual(a.readParams(), b.readParams());
  const be = a.backend;
  assert.ok(
    be.download(a.w.layers[0].inputNorm).every((x) => x === 1) && be.download(a.w.finalNorm).every((x) => x === 1),
  );
  assert.ok(be.download(a.w.layers[1].qkvBias!).every((x) => x === 0));
  const w = be.download(a.w.embed as Tensor<'f32'>);
  let s = 0,
    s2 = 0;
  for (const x of w) {
    s += x;
    s2 += x * x;
  }
  const mean = s / w.length,
    std = Math.sqrt(s2 / w.length - mean * mean);
  assert.ok(Math.abs(mean) < 0.02 && Math.abs(std - 0.2) < 0.02, `embedding mean ${mean} std ${std}`);
  assert.notEqual(a.w.lmHead, a.w.embed);
});
