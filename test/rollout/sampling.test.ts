// Token choice against hand-computed softmaxes: greedy, temperature, top-k, top-p, with
// empirical frequencies over many draws and the reported log-probs checked, on every backend
// (the native kernels exponentiate in fp32: their log-probs are checked to 1e-5).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenChooser, sampleRng } from '../../src/rollout/sampling.ts';
import { Rng } from '../../src/util/rng.ts';
import { assertClose } from '../helpers/close.ts';
import { tensorOf } from '../helpers/tensors.ts';
import { availableBackends } from '../../src/engine/index.ts';
import type { Backend } from '../../src/engine/backend.ts';

// probabilities 0.5, 0.3, 0.15, 0.05 as logits (plus an arbitrary shift, softmax ignores it)
const probs = [0.5, 0.3, 0.15, 0.05];
const logits = Float32Array.from(probs.map((q) => Math.log(q) + 3));

function frequencies(
  be: Backend,
  policy: { temperature: number; topP: number; topK: number },
  draws: number,
): { freq: number[]; logprob: Map<number, number> } {
  const chooser = new TokenChooser(4, be);
  const rng = new Rng(1234);
  const counts = [0, 0, 0, 0];
  const logprob = new Map<number, number>();
  for (let i = 0; i < draws; i++) {
    const t = chooser.choose(tensorOf(be, logits), 0, policy, rng);
    counts[t.id]++;
    logprob.set(t.id, t.logprob);
  }
  return { freq: counts.map((c) => c / draws), logprob };
}

for (const be of availableBackends()) {
  const tag = `[${be.name}]`;
  const tol = be.name === 'reference' ? 1e-6 : 1e-5;

  test(`${tag} greedy: the first maximum, log-prob of the T=1 softmax`, () => {
    const chooser = new TokenChooser(5, be);
    const row = Float32Array.from([0, 2, 1, 2, -1]);
    const t = chooser.choose(tensorOf(be, row), 0, { temperature: 0, topP: 1, topK: 0 }, new Rng(0));
    assert.equal(t.id, 1);
    const z = Math.exp(0) + 2 * Math.exp(2) + Math.exp(1) + Math.exp(-1);
    assertClose(t.logprob, 2 - Math.log(z), { atol: tol }, 'greedy logprob');
    // offset into a (B, V) buffer
    const two = Float32Array.from([9, 0, 0, 0, 0, ...row]);
    assert.equal(chooser.choose(tensorOf(be, two), 5, { temperature: 0, topP: 1, topK: 0 }, new Rng(0)).id, 1);
  });

  test(`${tag} temperature 1 and 0.5: frequencies follow softmax(z/T), log-probs exact`, () => {
    const n = 40000;
    const a = frequencies(be, { temperature: 1, topP: 1, topK: 0 }, n);
    probs.forEach((q, i) => {
      assertClose(a.freq[i], q, { atol: 0.01 }, `T=1 freq[${i}]`);
      assertClose(a.logprob.get(i)!, Math.log(q), { atol: tol }, `T=1 logprob[${i}]`);
    });
    // softmax(z/0.5) ∝ q²: 0.25, 0.09, 0.0225, 0.0025 over 0.365
    const sq = [0.25, 0.09, 0.0225, 0.0025],
      s = 0.365;
    const b = frequencies(be, { temperature: 0.5, topP: 1, topK: 0 }, n);
    sq.forEach((q, i) => assertClose(b.freq[i], q / s, { atol: 0.01 }, `T=0.5 freq[${i}]`));
    assertClose(b.logprob.get(0)!, Math.log(0.25 / s), { atol: tol }, 'T=0.5 logprob[0]');
  });

  test(`${tag} top-k 2: only the two most likely, renormalised`, () => {
    const r = frequencies(be, { temperature: 1, topP: 1, topK: 2 }, 20000);
    assertClose(r.freq[0], 0.5 / 0.8, { atol: 0.015 }, 'freq[0]');
    assertClose(r.freq[1], 0.3 / 0.8, { atol: 0.015 }, 'freq[1]');
    assert.equal(r.freq[2] + r.freq[3], 0);
    assertClose(r.logprob.get(1)!, Math.log(0.3 / 0.8), { atol: tol }, 'logprob[1]');
  });

  test(`${tag} top-p 0.75 keeps {0.5, 0.3}; 0.9 keeps three; combined with top-k`, () => {
    const r = frequencies(be, { temperature: 1, topP: 0.75, topK: 0 }, 20000);
    assertClose(r.freq[0], 0.5 / 0.8, { atol: 0.015 }, 'p=.75 freq[0]');
    assert.equal(r.freq[2] + r.freq[3], 0);
    assertClose(r.logprob.get(0)!, Math.log(0.5 / 0.8), { atol: tol }, 'p=.75 logprob[0]');
    const r9 = frequencies(be, { temperature: 1, topP: 0.9, topK: 0 }, 20000);
    assertClose(r9.freq[2], 0.15 / 0.95, { atol: 0.01 }, 'p=.9 freq[2]');
    assert.equal(r9.freq[3], 0);
    // top-k 3 renormalises to 0.5/0.95, 0.3/0.95 (cum 0.842), then top-p 0.8 keeps two
    const rk = frequencies(be, { temperature: 1, topP: 0.8, topK: 3 }, 20000);
    assert.equal(rk.freq[2] + rk.freq[3], 0);
    assertClose(rk.logprob.get(0)!, Math.log(0.5 / 0.8), { atol: tol }, 'k=3,p=.8 logprob[0]');
    // tiny top-p still keeps the most likely token
    const r0 = frequencies(be, { temperature: 1, topP: 0.01, topK: 0 }, 100);
    assert.equal(r0.freq[0], 1);
    assertClose(r0.logprob.get(0)!, 0, { atol: tol }, 'p=.01 logprob');
  });

  test(`${tag} top-k on a large vocabulary keeps exactly the k largest (heap selection vs a sort)`, () => {
    const V = 5000,
      k = 37;
    const rng = new Rng(7);
    const row = new Float32Array(V);
    for (let v = 0; v < V; v++) row[v] = rng.normal() * 3;
    const topk = new Set([...row.keys()].sort((a, b) => row[b] - row[a]).slice(0, k));
    const chooser = new TokenChooser(V, be);
    const seen = new Set<number>();
    for (let i = 0; i < 3000; i++)
      seen.add(chooser.choose(tensorOf(be, row), 0, { temperature: 2, topP: 1, topK: k }, rng).id);
    for (const id of seen) assert.ok(topk.has(id), `id ${id} outside the top ${k}`);
    assert.ok(seen.size > k / 2, `only ${seen.size} distinct ids drawn`);
  });

  test(`${tag} top-p on a large vocabulary keeps the same set as a full sort, with its renormalised log-probs`, () => {
    const V = 6000;
    const rng = new Rng(9);
    const row = new Float32Array(V);
    for (let v = 0; v < V; v++) row[v] = rng.normal() * 2.5;
    const chooser = new TokenChooser(V, be);
    for (const [T, topP] of [
      [1, 0.9],
      [0.6, 0.5],
      [1.3, 0.99],
    ]) {
      // the slow definition: sort by probability, keep the shortest prefix reaching topP
      const z = Array.from(row, (x) => x / T),
        mx = Math.max(...z);
      const e = z.map((x) => Math.exp(x - mx)),
        total = e.reduce((a, b) => a + b, 0);
      const order = [...e.keys()].sort((a, b) => e[b] - e[a]);
      const kept = new Set<number>();
      let acc = 0,
        mass = 0;
      for (const v of order) {
        kept.add(v);
        acc += e[v] / total;
        mass += e[v];
        if (acc >= topP) break;
      }
      for (let i = 0; i < 400; i++) {
        const t = chooser.choose(tensorOf(be, row), 0, { temperature: T, topP, topK: 0 }, rng);
        assert.ok(kept.has(t.id), `T=${T} p=${topP}: id ${t.id} outside the nucleus of ${kept.size}`);
        assertClose(t.logprob, Math.log(e[t.id] / mass), { atol: tol }, `T=${T} p=${topP} logprob`);
      }
    }
  });
}

test('sampleRng: same (seed, prompt, sample) → same stream; any change → another', () => {
  const first = (s: number, p: number, j: number) => sampleRng(s, p, j).nextU32();
  assert.equal(first(1, 2, 3), first(1, 2, 3));
  const seen = new Set([
    first(1, 2, 3),
    first(2, 2, 3),
    first(1, 3, 3),
    first(1, 2, 4),
    first(1, 3, 2),
    first(1, 0, 0),
  ]);
  assert.equal(seen.size, 6);
});
