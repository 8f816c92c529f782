// KV-cache decoding against Hugging Face's own logits: two fixture sequences of different
// lengths are prefilled (packed, into arbitrary slots) for a few tokens and then decoded one
// token per step; every step's logits must match transformers' full-sequence logits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { availableBackends, skippedBackends } from '../../src/engine/index.ts';
import type { Backend } from '../../src/engine/backend.ts';
import { loadConfig, type ModelConfig } from '../../src/model/config.ts';
import { modelViews, paramLayout, type ModelViews } from '../../src/model/params.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { tensorOf } from '../helpers/tensors.ts';
import { KvDecoder } from '../../src/model/decode.ts';
import { packSequences } from '../../src/model/batch.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { Rng } from '../../src/util/rng.ts';
import { maxAbsDiff } from '../helpers/close.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';

/** The fixture's weights read straight from model.safetensors into the flat layout. */
function loadFixture(
  name: string,
  backend: Backend,
): { config: ModelConfig; views: ModelViews; golden: SafetensorsFile } {
  const dir = fixturePath(name);
  const config = loadConfig(path.join(dir, 'config.json'));
  const layout = paramLayout(config);
  const flat = new Float32Array(layout.total);
  const st = new SafetensorsFile(path.join(dir, 'model.safetensors'));
  for (const s of layout.specs) st.readInto(s.name, flat.subarray(s.offset, s.offset + s.size));
  st.close();
  return {
    config,
    views: modelViews(backend, config, layout, tensorOf(backend, flat)),
    golden: new SafetensorsFile(path.join(dir, 'golden.safetensors')),
  };
}

const TOL = 1e-4;

function checkAgainstGolden(backend: Backend, name: string): void {
  const { config, views, golden } = loadFixture(name, backend);
  const V = config.vocabSize;
  const row = (a: Float32Array, r: number): Float32Array => a.subarray(r * V, (r + 1) * V); // (V) logits of row r
  const ids = golden.readInt('input_ids'); // (2, 24)
  const hf = golden.readFloat('logits'); // (2, 24, V)
  const lens = [24, 17];
  const S = 24;
  // sequence 0 lives in slot 3, sequence 1 in slot 1; prompts of 10 and 5 tokens
  const slotOf = [3, 1],
    promptLen = [10, 5];
  const dec = new KvDecoder(backend, config, views, 4, 32);
  const packed = Int32Array.from([...ids.subarray(0, promptLen[0]), ...ids.subarray(S, S + promptLen[1])]);
  const cu = Int32Array.from([0, promptLen[0], promptLen[0] + promptLen[1]]);
  let worst = 0;
  const logits = backend.download(dec.prefill(packed, cu, Int32Array.from(slotOf), 2));
  for (let b = 0; b < 2; b++) worst = Math.max(worst, maxAbsDiff(row(logits, b), row(hf, b * S + promptLen[b] - 1)));
  // decode: feed token at position pos, compare with HF logits at pos
  const pos = [...promptLen];
  for (;;) {
    const active = [0, 1].filter((b) => pos[b] < lens[b]);
    if (active.length === 0) break;
    const stepIds = Int32Array.from(active.map((b) => ids[b * S + pos[b]]));
    const out = backend.download(
      dec.step(
        stepIds,
        Int32Array.from(active.map((b) => slotOf[b])),
        Int32Array.from(active.map((b) => pos[b])),
        active.length,
      ),
    );
    active.forEach((b, i) => {
      worst = Math.max(worst, maxAbsDiff(row(out, i), row(hf, b * S + pos[b])));
      pos[b]++;
    });
  }
  console.log(
    `${name} on ${backend.name}: max |logit − HF| over prefill and ${lens[0] - promptLen[0]} decode steps = ${worst.toExponential(2)}`,
  );
  assert.ok(worst < TOL, `${name}/${backend.name}: KV-cache logits differ from transformers by ${worst}`);

  // A slot copied from another (samples sharing a prompt) continues identically, also through
  // a saved prefix restored into a third slot.
  const d2 = new KvDecoder(backend, config, views, 3, 32);
  d2.prefill(ids.subarray(0, 6), Int32Array.from([0, 6]), Int32Array.from([0]), 1);
  d2.cache.copySlot(0, 2, 6);
  const saved = d2.cache.savePrefix(0, 6);
  d2.cache.restorePrefix(saved, 1);
  const out = backend.download(
    d2.step(Int32Array.from([ids[6], ids[6], ids[6]]), Int32Array.from([2, 0, 1]), Int32Array.from([6, 6, 6]), 3),
  );
  for (let i = 0; i < 3; i++) {
    const d = maxAbsDiff(row(out, i), row(hf, 6));
    assert.ok(d < TOL, `${name}/${backend.name}: copied slot row ${i} differs by ${d}`);
  }
  golden.close();
}

for (const backend of availableBackends()) {
  for (const name of ['qwen2-tiny-tied', 'qwen2-tiny-untied']) {
    test(`KV-cache decoding reproduces transformers' logits: ${name} on ${backend.name}`, () =>
      checkAgainstGolden(backend, name));
  }
}
/**
 * A wider GQA shape (8 query heads on 2 kv heads, head dim 32) and five sequences of uneven
 * lengths, prefilled in two packed passes into scattered slots, then decoded with sequences
 * dropping out as they end: every step's logits equal the full training forward's logits.
 */
function checkAgainstFullForward(backend: Backend): void {
  const config = parseConfig(
    tinyQwen2Config({
      hidden_size: 256,
      num_hidden_layers: 2,
      num_attention_heads: 8,
      num_key_value_heads: 2,
      intermediate_size: 320,
      vocab_size: 500,
      tie_word_embeddings: false,
    }),
  );
  const model = Qwen2Model.init(config, 1, { backend });
  // larger weights than the 0.02 init, so attention is far from uniform
  model.writeWeights(model.readParams().map((x) => x * 4));
  const rng = new Rng(5);
  const lens = [3, 40, 17, 9, 26],
    prompt = [2, 11, 5, 1, 8],
    slotOf = [6, 0, 3, 5, 1];
  const seqs = lens.map((n) => Array.from({ length: n }, () => rng.int(500)));
  const full = model.logits(packSequences(seqs));
  const V = 500;
  const row = (a: Float32Array, r: number): Float32Array => a.subarray(r * V, (r + 1) * V); // (V) logits of row r
  const rowOf = (b: number, t: number) => lens.slice(0, b).reduce((a, x) => a + x, 0) + t;
  const dec = new KvDecoder(backend, config, model.w, 7, 48);
  let worst = 0;
  for (const group of [
    [0, 1, 2],
    [3, 4],
  ]) {
    const ids = Int32Array.from(group.flatMap((b) => seqs[b].slice(0, prompt[b])));
    const cu = Int32Array.from([0, ...group.map((_, i) => group.slice(0, i + 1).reduce((a, b) => a + prompt[b], 0))]);
    const logits = backend.download(dec.prefill(ids, cu, Int32Array.from(group.map((b) => slotOf[b])), group.length));
    group.forEach((b, i) => {
      worst = Math.max(worst, maxAbsDiff(row(logits, i), row(full, rowOf(b, prompt[b] - 1))));
    });
  }
  const pos = [...prompt];
  for (;;) {
    const active = [0, 1, 2, 3, 4].filter((b) => pos[b] < lens[b]);
    if (active.length === 0) break;
    const out = backend.download(
      dec.step(
        Int32Array.from(active.map((b) => seqs[b][pos[b]])),
        Int32Array.from(active.map((b) => slotOf[b])),
        Int32Array.from(active.map((b) => pos[b])),
        active.length,
      ),
    );
    active.forEach((b, i) => {
      worst = Math.max(worst, maxAbsDiff(row(out, i), row(full, rowOf(b, pos[b]))));
      pos[b]++;
    });
  }
  // float32 sums in another order (native): atol + rtol·max|logit|, logits here reach ~20
  let scale = 0;
  for (const x of full) scale = Math.max(scale, Math.abs(x));
  const tol = 1e-4 + 3e-5 * scale;
  console.log(
    `GQA 8/2, HD 32 on ${backend.name}: max |KV-cache logit − full forward| = ${worst.toExponential(2)} (tol ${tol.toExponential(2)}, max |logit| ${scale.toFixed(1)})`,
  );
  assert.ok(worst < tol, `KV-cache logits differ from the full forward by ${worst}`);
}

for (const backend of availableBackends()) {
  test(`KV-cache decoding equals the full forward, uneven sequences in scattered slots: ${backend.name}`, () =>
    checkAgainstFullForward(backend));
}

if (skippedBackends().length > 0) test(`skipped backends: ${skippedBackends().join(', ')}`, { skip: true }, () => {});
