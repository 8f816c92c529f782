// generate() on the fixture models: greedy equals transformers' greedy_output; sampled
// log-probs equal a separate scoring pass (the training forward); seeds reproduce; continuous
// batching with few slots gives exactly the per-sample results of one big batch; EOS, stop
// strings and maxTokens end samples with the right finish reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, skippedBackends } from '../../src/engine/index.ts';
import type { Backend } from '../../src/engine/backend.ts';
import { packSequences } from '../../src/model/batch.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { generate, newGenerateStats, type Sample } from '../../src/rollout/sampler.ts';
import { fixturePath as fixture } from '../helpers/paths.ts';

function golden(name: string): { prompt: number[]; output: number[] } {
  const f = new SafetensorsFile(`${fixture(name)}/golden.safetensors`);
  const r = { prompt: [...f.readInt('greedy_prompt')], output: [...f.readInt('greedy_output')] };
  f.close();
  return r;
}

// Three prompts of different lengths (slices of the fixture's input_ids).
const PROMPTS = [
  [122, 145, 191, 61, 311, 159, 52],
  [350, 117, 185],
  [221, 208, 15, 79, 227, 167, 365, 293, 244, 372, 382],
];

/** A stand-in tokenizer: token id → one letter, so stop strings can be placed by hand. */
const letters = { decode: (ids: readonly number[]) => ids.map((id) => String.fromCharCode(97 + (id % 26))).join('') };

/**
 * Same ids and finish reasons; log-probs bit-equal on the reference backend, within `tol` where
 * the backend's GEMM sums in a different order for different batch sizes (native small-M path).
 */
function sameSamples(a: Sample[][], b: Sample[][], what: string, tol = 0): void {
  assert.equal(a.length, b.length);
  a.forEach((row, i) =>
    row.forEach((s, j) => {
      assert.deepEqual(b[i][j].ids, s.ids, `${what}: prompt ${i} sample ${j} ids`);
      if (tol === 0) assert.deepEqual(b[i][j].logprobs, s.logprobs, `${what}: prompt ${i} sample ${j} logprobs`);
      else
        s.logprobs.forEach((lp, t) =>
          assert.ok(
            Math.abs(b[i][j].logprobs[t] - lp) <= tol,
            `${what}: prompt ${i} sample ${j} logprob ${t}: ${b[i][j].logprobs[t]} vs ${lp}`,
          ),
        );
      assert.equal(b[i][j].finishReason, s.finishReason, `${what}: prompt ${i} sample ${j} finish`);
    }),
  );
}

for (const backend of availableBackends()) {
  const on = (b: Backend) => ({ backend: b });

  for (const name of ['qwen2-tiny-tied', 'qwen2-tiny-untied']) {
    test(`greedy reproduces transformers' greedy_output: ${name} on ${backend.name}`, async () => {
      const model = await Qwen2Model.load(fixture(name), on(backend));
      const g = golden(name);
      const newTokens = g.output.length - g.prompt.length;
      const [[s]] = await generate(model, [g.prompt], { temperature: 0, maxTokens: newTokens, eosIds: [2] });
      assert.deepEqual(s.ids, g.output.slice(g.prompt.length));
      assert.equal(s.finishReason, 'length');
    });
  }

  test(`sampled log-probs equal a scoring pass; seeds reproduce: ${backend.name}`, async () => {
    const model = await Qwen2Model.load(fixture('qwen2-tiny-tied'), on(backend));
    const params = { n: 3, temperature: 1, maxTokens: 12, seed: 7, eosIds: [] };
    const out = await generate(model, PROMPTS, params);
    // score prompt + completion with the training forward; only completion tokens are targets
    const seqs: number[][] = [],
      from: number[] = [];
    out.forEach((row, i) =>
      row.forEach((s) => {
        seqs.push([...PROMPTS[i], ...s.ids]);
        from.push(PROMPTS[i].length);
      }),
    );
    const batch = packSequences(seqs, from);
    const { logprob } = model.forward(batch);
    let worst = 0,
      k = 0;
    out.forEach((row, i) =>
      row.forEach((s) => {
        const start = batch.cuSeqlens[k++] + PROMPTS[i].length - 1;
        s.logprobs.forEach((lp, t) => {
          worst = Math.max(worst, Math.abs(lp - logprob[start + t]));
        });
      }),
    );
    console.log(`sampled vs scored log-prob on ${backend.name}: max diff ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `sampled log-probs differ from the scoring pass by ${worst}`);
    sameSamples(out, await generate(model, PROMPTS, params), 'same seed');
    const other = await generate(model, PROMPTS, { ...params, seed: 8 });
    assert.notDeepEqual(
      other.map((r) => r.map((s) => s.ids)),
      out.map((r) => r.map((s) => s.ids)),
    );
    // samples of one prompt differ from each other (own streams, shared prefill)
    assert.notDeepEqual(out[0][0].ids, out[0][1].ids);
  });

  test(`continuous batching with 2 slots equals one batch of 12 (uneven EOS stops): ${backend.name}`, async () => {
    const model = await Qwen2Model.load(fixture('qwen2-tiny-untied'), on(backend));
    // EOS ids taken from a free run at different depths, so samples end at uneven lengths
    const params = { n: 4, maxTokens: 16, seed: 3, temperature: 0.9, topP: 0.95, topK: 50 };
    const free = await generate(model, PROMPTS, { ...params, eosIds: [] });
    const eosIds = [free[0][0].ids[3], free[1][1].ids[8], free[2][2].ids[1], free[2][3].ids[12]];
    const big = await generate(model, PROMPTS, { ...params, eosIds });
    free.forEach((row, i) =>
      row.forEach((f, j) => {
        const at = f.ids.findIndex((id) => eosIds.includes(id));
        assert.deepEqual(
          big[i][j].ids,
          at >= 0 ? f.ids.slice(0, at + 1) : f.ids,
          `prompt ${i} sample ${j}: cut at the first EOS`,
        );
        assert.equal(big[i][j].finishReason, at >= 0 ? 'stop' : 'length');
      }),
    );
    const lengths = big.flat().map((s) => s.ids.length);
    assert.ok(new Set(lengths).size > 2, `lengths too even to test scheduling: ${lengths}`);
    const order: string[] = [];
    const stats = newGenerateStats();
    const small = await generate(
      model,
      PROMPTS,
      { ...params, eosIds, maxBatch: 2, maxPrefillTokens: 8, stats },
      (i, j) => order.push(`${i}.${j}`),
    );
    sameSamples(big, small, 'maxBatch 2', backend.name === 'reference' ? 0 : 1e-5);
    assert.equal(order.length, 12);
    // each prompt is prefilled once, however many of its samples wait for a slot
    assert.equal(
      stats.prefillTokens,
      PROMPTS.reduce((a, p) => a + p.length, 0),
    );
    assert.equal(
      stats.decodeTokens,
      big.flat().reduce((a, s) => a + s.ids.length - 1, 0),
    );
    // per-prompt seeds: a prompt's samples do not depend on its position in the call
    const a = await generate(model, PROMPTS, { ...params, eosIds, promptSeeds: [11, 12, 13] });
    const b = await generate(model, [PROMPTS[2], PROMPTS[0]], { ...params, eosIds, promptSeeds: [13, 11] });
    sameSamples([a[2], a[0]], b, 'promptSeeds', backend.name === 'reference' ? 0 : 1e-5);
  });

  test(`stop strings end a sample where the string completes; text is cut before it: ${backend.name}`, async () => {
    const model = await Qwen2Model.load(fixture('qwen2-tiny-tied'), on(backend));
    const base = { n: 2, maxTokens: 20, seed: 5, eosIds: [], tokenizer: letters };
    const free = await generate(model, [PROMPTS[1]], base);
    const text = free[0][0].text!;
    assert.equal(text, letters.decode(free[0][0].ids));
    const stop = text.slice(4, 6); // two letters completed by token 5
    const first = text.indexOf(stop); // the first place it appears (≤ 4)
    const stopped = await generate(model, [PROMPTS[1]], { ...base, stopStrings: [stop, 'zzzzzzzz'] });
    const s = stopped[0][0];
    assert.equal(s.finishReason, 'stop');
    assert.deepEqual(s.ids, free[0][0].ids.slice(0, first + stop.length));
    assert.equal(s.text, text.slice(0, first));
    // the other sample follows its own stream and stops at its own first occurrence, or runs to maxTokens
    const t1 = free[0][1].text!,
      at = t1.indexOf(stop);
    assert.deepEqual(stopped[0][1].ids, at >= 0 ? free[0][1].ids.slice(0, at + stop.length) : free[0][1].ids);
    assert.equal(stopped[0][1].finishReason, at >= 0 ? 'stop' : 'length');
    // maxTokens 1: one token, 'length'
    const one = await generate(model, [PROMPTS[1]], { ...base, maxTokens: 1 });
    assert.deepEqual(one[0][0].ids, free[0][0].ids.slice(0, 1));
    assert.equal(one[0][0].finishReason, 'length');
  });
}

test('concurrent generate() calls on one model do not share a KV cache', async () => {
  const model = await Qwen2Model.load(fixture('qwen2-tiny-tied'), { backend: availableBackends()[0] });
  const a = { n: 2, maxTokens: 10, seed: 1, eosIds: [] },
    b = { n: 3, maxTokens: 7, seed: 2, eosIds: [] };
  const alone = [await generate(model, PROMPTS, a), await generate(model, [PROMPTS[2], PROMPTS[1]], b)];
  const together = await Promise.all([generate(model, PROMPTS, a), generate(model, [PROMPTS[2], PROMPTS[1]], b)]);
  sameSamples(alone[0], together[0], 'concurrent a');
  sameSamples(alone[1], together[1], 'concurrent b');
});

test('generate rejects bad input with a clear error', async () => {
  const model = await Qwen2Model.load(fixture('qwen2-tiny-tied'), { backend: availableBackends()[0] });
  await assert.rejects(
    generate(model, [[1, 999]], { maxTokens: 2, eosIds: [] }),
    /prompt 0 has token id 999 outside the vocabulary/,
  );
  await assert.rejects(generate(model, [[]], { maxTokens: 2, eosIds: [] }), /prompt 0 is empty/);
  await assert.rejects(
    generate(model, [[1]], { maxTokens: 2, eosIds: [], stopStrings: ['x'] }),
    /stop strings need a tokenizer/,
  );
});

if (skippedBackends().length > 0) test(`skipped backends: ${skippedBackends().join(', ')}`, { skip: true }, () => {});
