// What crosses between host and backend, counted by a wrapper around each backend's upload and
// download (the only host↔device copies of the contract): loading uploads each weight once, and
// decoding, sampling and a training step move only their per-call ids, positions, offsets,
// targets and coefficients in and their per-token results out, never weights, activations or the
// KV cache. Every expectation is derived from the shapes, so a device backend plugs in unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType } from '../../src/engine/backend.ts';
import { availableBackends } from '../../src/engine/index.ts';
import { packSequences } from '../../src/model/batch.ts';
import { KvDecoder } from '../../src/model/decode.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { generate } from '../../src/rollout/sampler.ts';
import { fixturePath } from '../helpers/paths.ts';

const BYTES: Record<DType, number> = { f32: 4, bf16: 2, i32: 4 };

interface Transfers {
  uploads: number;
  uploadBytes: number;
  downloads: number;
  downloadBytes: number;
}

/** `inner` with its uploads and downloads counted (calls and bytes). */
function counting(inner: Backend): { be: Backend; n: Transfers; reset(): void } {
  const n: Transfers = { uploads: 0, uploadBytes: 0, downloads: 0, downloadBytes: 0 };
  const be: Backend = {
    ...inner,
    upload(dst, src) {
      n.uploads++;
      n.uploadBytes += src.byteLength;
      inner.upload(dst, src);
    },
    download(src, dst) {
      n.downloads++;
      n.downloadBytes += src.length * BYTES[src.dtype];
      return inner.download(src, dst);
    },
  };
  return { be, n, reset: () => Object.assign(n, { uploads: 0, uploadBytes: 0, downloads: 0, downloadBytes: 0 }) };
}

const FIX = fixturePath('qwen2-tiny-untied');

for (const inner of availableBackends()) {
  test(`[${inner.name}] loading uploads the weights once, tensor by tensor (fp32: 4 bytes per parameter, bf16: 2), and downloads nothing`, async () => {
    for (const [precision, bytes] of [
      ['fp32', 4],
      ['bf16', 2],
    ] as const) {
      const c = counting(inner);
      const model = await Qwen2Model.load(FIX, { backend: c.be, precision });
      // One upload per checkpoint tensor into its view: no host copy of the whole model is ever made.
      const uploads = model.layout.specs.length;
      assert.deepEqual(c.n, { uploads, uploadBytes: model.layout.total * bytes, downloads: 0, downloadBytes: 0 });
    }
  });

  for (const precision of ['fp32', 'bf16'] as const) {
    test(`[${inner.name}] ${precision}: prefill and a decode step move only their ids, positions, slots and offsets in; logits stay on the backend`, async () => {
      const c = counting(inner);
      const model = await Qwen2Model.load(FIX, { backend: c.be, precision });
      const V = model.config.vocabSize;
      const dec = new KvDecoder(c.be, model.config, model.w, 4, 32);
      c.reset();
      // Prefill P = 2 prompts, T = 9 tokens: ids (T) + positions (T) + cuSeqlens (P+1) + last rows (P), int32.
      const [T, P] = [9, 2];
      dec.prefill(Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), Int32Array.from([0, 4, 9]), Int32Array.from([0, 2]), P);
      assert.deepEqual(c.n, { uploads: 4, uploadBytes: 4 * (2 * T + 2 * P + 1), downloads: 0, downloadBytes: 0 });
      c.reset();
      // One step of B = 2: ids, positions, slots and the keys per slot (B int32 each); nothing comes back.
      const B = 2;
      const logits = dec.step(Int32Array.from([10, 11]), Int32Array.from([0, 2]), Int32Array.from([4, 5]), B);
      assert.deepEqual(c.n, { uploads: 4, uploadBytes: 4 * 4 * B, downloads: 0, downloadBytes: 0 });
      assert.equal(logits.length, B * V);
      c.reset();
      c.be.download(logits); // what a top-k/top-p sampler would fetch: (B, V) fp32
      assert.deepEqual(c.n, { uploads: 0, uploadBytes: 0, downloads: 1, downloadBytes: 4 * B * V });
    });
  }

  test(`[${inner.name}] generate() without top-k/top-p downloads nothing: each token comes back as chooseToken's host result`, async () => {
    const c = counting(inner);
    const model = await Qwen2Model.load(FIX, { backend: c.be });
    c.reset();
    const out = await generate(
      model,
      [
        [1, 2, 3],
        [4, 5],
      ],
      { n: 2, temperature: 1, maxTokens: 6, eosIds: [], seed: 3 },
    );
    assert.equal(out.flat().length, 4);
    assert.equal(c.n.downloads, 0);
    // Every upload is an int32 index array: ids, positions, slots, lengths, offsets.
    const tokens = out.flat().reduce((a, s) => a + s.ids.length, 0);
    assert.ok(c.n.uploadBytes < 4 * 8 * (tokens + 5), `uploaded ${c.n.uploadBytes} bytes for ${tokens} tokens`);
  });

  test(`[${inner.name}] a training step moves the batch and per-token coefficients in, per-token logprob/entropy out`, async () => {
    const c = counting(inner);
    const model = await Qwen2Model.load(FIX, { backend: c.be });
    const batch = packSequences(
      [
        [1, 2, 3, 4, 5],
        [6, 7, 8],
      ],
      [2, 1],
    );
    const T = batch.ids.length,
      B = 2,
      R = batch.targets.filter((x) => x >= 0).length; // rows with a target: one loss-head chunk
    c.reset();
    model.forward(batch);
    // in: ids, positions (T), cuSeqlens (B+1), the chunk's rows and targets (R); out: logprob, entropy (R)
    assert.deepEqual(c.n, {
      uploads: 5,
      uploadBytes: 4 * (2 * T + B + 1 + 2 * R),
      downloads: 2,
      downloadBytes: 4 * 2 * R,
    });
    c.reset();
    model.zeroGrad();
    model.backward(new Float32Array(T).fill(-1), new Float32Array(T));
    // in: the chunk's rows, targets and both coefficients (R each); gradients stay on the backend
    assert.deepEqual(c.n, { uploads: 4, uploadBytes: 4 * 4 * R, downloads: 0, downloadBytes: 0 });
  });
}
