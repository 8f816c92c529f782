// The PyTorch engine through its real wire (Unix socket + shared memory, rank 0 and the ranks it
// starts) against Hugging Face transformers' golden fixtures: log π, entropy, the surrogate's
// gradients, an AdamW step, a greedy decode; packing, one rank against two, stash / restore, the
// state and sampler files read back by independent readers, and seeded sampling.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { packSequences } from '../../src/model/batch.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import type { AdamWSettings } from '../../src/train/engine.ts';
import type { TorchEngine } from '../../src/train/engines/torch.ts';
import { assertAllClose, closeness } from '../helpers/close.ts';
import { tempDir } from '../helpers/tmp.ts';
import { PYTHON_PACKAGE_DIR } from '../../src/train/engines/torch-launch.ts';
import { SKIP_TORCH, TORCH_PYTHON, goldenCase, openTorchEngine, packBatch, type GoldenCase } from './torch-fixtures.ts';

const GOLDEN_ADAMW: AdamWSettings = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, noDecay: 'none' };
const GREEDY = { n: 1, temperature: 0, topP: 1, topK: 0, seeds: [0], stopTokenIds: [] };

/** Every gradient against the golden one, within 1e-5 of the tensor's largest golden entry. */
function assertGradients(file: string, g: GoldenCase, scale: number, what: string): void {
  const got = new SafetensorsFile(file);
  const names = [...got.entries.keys()].sort();
  const golden = [...g.gold.entries.keys()].filter((n) => n.startsWith('grad.')).map((n) => n.slice(5));
  assert.deepEqual(names, golden.sort(), 'one gradient per parameter, under its Hugging Face name');
  let worst = 0;
  for (const name of names) {
    const want = g.gold.readFloat(`grad.${name}`).map((x) => scale * x);
    const top = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    const r = closeness(got.readFloat(name), want, { atol: 1e-5 * top });
    worst = Math.max(worst, r.maxDiff / top);
    assert.ok(r.worst < 0, `${what}: gradient of ${name} differs by ${r.maxDiff} (largest entry ${top})`);
  }
  console.log(`  ${what}: gradients within ${worst.toExponential(2)} of the largest golden entry`);
  got.close();
}

let oneRankGradients: string | null = null; // the tied fixture's gradients on one rank

for (const kind of ['tied', 'untied'] as const) {
  test(
    `[torch] golden ${kind}: log π, entropy, gradients, AdamW step and greedy decode match transformers`,
    { skip: SKIP_TORCH },
    async () => {
      const g = goldenCase(kind);
      // Untied: the loss head in chunks of 7 rows (6 chunks, the last partial) instead of one, and
      // each layer recomputed in backward (activation checkpointing): the same numbers either way.
      if (kind === 'untied') process.env.RED_ENGINE_HEAD_CHUNK_ELEMENTS = String(7 * 384);
      const e = await openTorchEngine(g.dir, { activationCheckpointing: kind === 'untied' });
      delete process.env.RED_ENGINE_HEAD_CHUNK_ELEMENTS;
      try {
        assert.deepEqual(
          e.info.tensors.map((t) => t.name).sort(),
          [...g.gold.entries.keys()]
            .filter((n) => n.startsWith('grad.'))
            .map((n) => n.slice(5))
            .sort(),
        );
        const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
        assert.deepEqual([b.scoredTokens, b.totalTokens], [23 + 16, 24 + 17]);
        const s = await e.forward(b, 'policy');
        assertAllClose(s.logprob, g.logprob, { atol: 1e-5 }, `${kind} log π`);
        assertAllClose(s.entropy, g.entropy, { atol: 1e-5 }, `${kind} entropy`);

        // Greedy decoding through the engine's KV cache equals transformers' generate().
        const prompt = Array.from(g.gold.readInt('greedy_prompt'));
        const want = Array.from(g.gold.readInt('greedy_output')).slice(prompt.length);
        const [[greedy]] = await e.sample([prompt], { ...GREEDY, maxTokens: want.length });
        assert.deepEqual(greedy.ids, want);
        assert.equal(greedy.finishReason, 'length');

        const dir = tempDir('red-torch-golden-');
        await e.forwardBackward(b, g.coefLogprob, g.coefEntropy);
        await e.saveGradients(path.join(dir, 'grads.safetensors'));
        assertGradients(path.join(dir, 'grads.safetensors'), g, 1, `${kind} one rank`);
        if (kind === 'tied') {
          oneRankGradients = path.join(tempDir('red-torch-grads-'), 'grads.safetensors');
          copyFileSync(path.join(dir, 'grads.safetensors'), oneRankGradients);
        }

        // One AdamW step from the golden gradients (TORCH-NOTES: from the engine's own, a first step
        // ≈ lr·sign(g) would amplify 1e-7 gradient differences in near-zero entries).
        await e.loadGradients(path.join(g.dir, 'golden.safetensors'), 'grad.');
        await e.createOptimizer('policy', GOLDEN_ADAMW);
        const step = await e.optimStep('policy', 1e-3, Infinity);
        let sq = 0;
        for (const n of e.info.tensors) for (const x of g.gold.readFloat(`grad.${n.name}`)) sq += x * x;
        assert.equal(step.applied, true);
        assert.ok(
          Math.abs(step.gradNorm - Math.sqrt(sq)) <= 1e-5 * Math.sqrt(sq),
          `grad norm ${step.gradNorm} vs ${Math.sqrt(sq)}`,
        );
        await e.saveState(path.join(dir, 'state'));
        const master = new SafetensorsFile(path.join(dir, 'state', 'master.safetensors'));
        const moments = new SafetensorsFile(path.join(dir, 'state', 'optimizer-policy.safetensors'));
        assert.equal(moments.metadata.step, '1');
        let worst = 0;
        for (const { name } of e.info.tensors) {
          const r = closeness(master.readFloat(name), g.gold.readFloat(`adamw1.${name}`), { atol: 1e-6 });
          worst = Math.max(worst, r.maxDiff);
          assert.ok(r.worst < 0, `AdamW step of ${name} differs by ${r.maxDiff}`);
          // After one step from zero moments: m = (1 − β1)·g, v = (1 − β2)·g² (derived by hand).
          const grad = g.gold.readFloat(`grad.${name}`);
          assert.ok(
            closeness(
              moments.readFloat(`${name}.exp_avg`),
              grad.map((x) => 0.1 * x),
              { atol: 1e-9, rtol: 1e-5 },
            ).worst < 0,
          );
          assert.ok(
            closeness(
              moments.readFloat(`${name}.exp_avg_sq`),
              grad.map((x) => 0.05 * x * x),
              { atol: 1e-12, rtol: 1e-5 },
            ).worst < 0,
          );
        }
        console.log(`  ${kind} AdamW step: max |diff| = ${worst.toExponential(2)}`);
      } finally {
        await e.close();
      }
    },
  );
}

describe('[torch] one rank: packing, rollback, files, sampling, refusals', { skip: SKIP_TORCH }, () => {
  const g = SKIP_TORCH ? null : goldenCase('tied');
  let e: TorchEngine;
  let source: string; // a copy of the tied fixture with tokenizer files beside it
  before(async () => {
    source = tempDir('red-torch-source-');
    for (const f of ['generation_config.json', 'model.safetensors'])
      copyFileSync(path.join(g!.dir, f), path.join(source, f));
    // config.json as transformers 4 writes it (every Qwen2.5 on the Hub): rope_theta at the top level.
    const config = JSON.parse(readFileSync(path.join(g!.dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const { rope_parameters: rope, ...rest } = config as { rope_parameters: { rope_theta: number } };
    writeFileSync(path.join(source, 'config.json'), JSON.stringify({ ...rest, rope_theta: rope.rope_theta }));
    writeFileSync(path.join(source, 'tokenizer.json'), '{"version": "1.0"}\n');
    writeFileSync(path.join(source, 'tokenizer_config.json'), '{}\n');
    e = await openTorchEngine(source);
  });
  after(() => e?.close());

  test('packed sequences never see each other: alone, packed in either order, or one per micro-batch', async () => {
    const [s0, s1] = g!.sequences;
    const score = async (seqs: Int32Array[], microBatchTokens: number) => {
      const b = await e.loadBatch(packBatch(seqs), { microBatchTokens });
      const r = await e.forward(b, 'policy');
      await e.releaseBatch(b);
      return r;
    };
    const both = await score([s0, s1], 0);
    const alone0 = await score([s0], 0),
      alone1 = await score([s1], 0);
    const swapped = await score([s1, s0], 0);
    const split = await score([s0, s1], 24); // 24-token budget: one sequence per micro-batch
    const n0 = s0.length - 1;
    assertAllClose(both.logprob, g!.logprob, { atol: 1e-5 }, 'config.json with a top-level rope_theta: log π');
    assertAllClose(both.logprob.subarray(0, n0), alone0.logprob, 1e-6, 'sequence 0 packed vs alone');
    assertAllClose(both.logprob.subarray(n0), alone1.logprob, 1e-6, 'sequence 1 packed vs alone');
    assertAllClose(swapped.logprob, [...alone1.logprob, ...alone0.logprob], 1e-6, 'packed in the other order');
    assertAllClose(split.entropy, both.entropy, 1e-6, 'one micro-batch per sequence');
  });

  test('stash / restore puts parameters and moments back; saveState / loadState round-trips', async () => {
    const dir = tempDir('red-torch-state-');
    const b = await e.loadBatch(g!.batch, { microBatchTokens: 0 });
    await e.createOptimizer('policy', { ...GOLDEN_ADAMW, noDecay: 'norms-and-biases' });
    await e.forwardBackward(b, g!.coefLogprob, g!.coefEntropy);
    await e.optimStep('policy', 1e-3, 1.0);
    await e.saveState(path.join(dir, 'before'));
    await e.stash();
    for (let i = 0; i < 2; i++) {
      await e.forwardBackward(b, g!.coefLogprob, g!.coefEntropy);
      await e.optimStep('policy', 1e-2, 1.0);
    }
    await e.saveState(path.join(dir, 'moved'));
    await e.restore();
    await e.saveState(path.join(dir, 'restored'));
    await e.loadState(path.join(dir, 'moved'));
    await e.saveState(path.join(dir, 'reloaded'));
    const same = (a: string, c: string, expectEqual: boolean) => {
      for (const file of ['master.safetensors', 'optimizer-policy.safetensors']) {
        const x = new SafetensorsFile(path.join(dir, a, file)),
          y = new SafetensorsFile(path.join(dir, c, file));
        assert.deepEqual(x.metadata, expectEqual ? y.metadata : x.metadata);
        const differs = [...x.entries.keys()].some((n) => closeness(x.readFloat(n), y.readFloat(n), 0).worst >= 0);
        assert.equal(differs, !expectEqual, `${a} vs ${c} (${file})`);
      }
    };
    same('before', 'moved', false);
    same('before', 'restored', true);
    same('moved', 'reloaded', true);
    const m = new SafetensorsFile(path.join(dir, 'moved', 'optimizer-policy.safetensors'));
    assert.equal(m.metadata.step, '3');
    await e.releaseBatch(b);
  });

  test("noDecay 'norms-and-biases': with zero gradients only the other weights decay, by lr·weightDecay", async () => {
    const dir = tempDir('red-torch-decay-');
    await e.saveState(path.join(dir, 'before'));
    writeSafetensors(
      path.join(dir, 'zeros.safetensors'),
      e.info.tensors.map((t) => ({
        name: t.name,
        shape: t.shape,
        data: new Float32Array(t.shape.reduce((a, x) => a * x, 1)),
      })),
    );
    await e.loadGradients(path.join(dir, 'zeros.safetensors'), '');
    await e.createOptimizer('decay', { ...GOLDEN_ADAMW, weightDecay: 0.5, noDecay: 'norms-and-biases' });
    await e.optimStep('decay', 0.1, Infinity);
    await e.saveState(path.join(dir, 'after'));
    const [x, y] = ['before', 'after'].map((s) => new SafetensorsFile(path.join(dir, s, 'master.safetensors')));
    for (const n of x.entries.keys()) {
      const exempt = n.endsWith('.bias') || n.endsWith('norm.weight');
      const want = x.readFloat(n).map((v) => (exempt ? v : v * (1 - 0.1 * 0.5))); // AdamW: θ ← θ·(1 − lr·λ) − lr·m̂/(√v̂ + ε), m = v = 0
      assert.ok(
        closeness(y.readFloat(n), want, { atol: 1e-7, rtol: 1e-6 }).worst < 0,
        `${n} (${exempt ? 'not decayed' : 'decayed'})`,
      );
    }
  });

  test('master.safetensors before any step holds the source weights under their Hugging Face names', async () => {
    const fresh = await openTorchEngine(g!.dir);
    try {
      const dir = tempDir('red-torch-master-');
      await fresh.saveState(dir);
      const ours = new SafetensorsFile(path.join(dir, 'master.safetensors'));
      const theirs = new SafetensorsFile(path.join(g!.dir, 'model.safetensors'));
      assert.deepEqual([...ours.entries.keys()].sort(), [...theirs.entries.keys()].sort());
      for (const [name, entry] of ours.entries) {
        assert.equal(entry.dtype, 'F32');
        assert.deepEqual(entry.shape, theirs.entry(name).shape);
        assert.ok(closeness(ours.readFloat(name), theirs.readFloat(name), 0).worst < 0, `${name} is the source's`);
      }
      assert.deepEqual(readdirSync(dir), ['master.safetensors'], 'no optimiser created: no optimiser file');
    } finally {
      await fresh.close();
    }
  });

  test('saveForSampler writes a Hugging Face folder the native model loads and scores as the engine does', async () => {
    const out = path.join(tempDir('red-torch-sampler-'), 'policy');
    await e.saveForSampler(out, 'fp32');
    assert.deepEqual(readdirSync(out).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
    ]);
    const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.torch_dtype ?? config.dtype, 'float32');
    assert.equal(config.tie_word_embeddings, true);
    assert.equal(new SafetensorsFile(path.join(out, 'model.safetensors')).entries.has('lm_head.weight'), false);
    const native = await Qwen2Model.load(out);
    const packed = packSequences(g!.sequences);
    const theirs = native.forward(packed);
    const b = await e.loadBatch(g!.batch, { microBatchTokens: 0 });
    const ours = await e.forward(b, 'policy');
    const scored = Float32Array.from(theirs.logprob.filter((_, t) => packed.targets[t] >= 0));
    assertAllClose(ours.logprob, scored, { atol: 2e-5 }, 'engine vs the native model of its saved folder');
    // bf16: the same tensors rounded; replaced atomically (no temporary folder left beside it).
    await e.saveForSampler(out, 'bf16');
    const bf = new SafetensorsFile(path.join(out, 'model.safetensors'));
    assert.ok([...bf.entries.values()].every((t) => t.dtype === 'BF16'));
    assert.deepEqual(readdirSync(path.dirname(out)), ['policy']);
    await e.releaseBatch(b);
  });

  test("sample: seeds fix the tokens whatever shares the batch; logprobs are the model's; a stop id ends a sample", async () => {
    const [s0, s1] = g!.sequences;
    const a = Array.from(s0.subarray(0, 5)),
      c = Array.from(s1.subarray(0, 3));
    const params = { n: 3, temperature: 1, topP: 1, topK: 0, maxTokens: 12, seeds: [7, 8], stopTokenIds: [] };
    const first = await e.sample([a, c], params);
    const again = await e.sample([a, c], params);
    const alone = await e.sample([a], { ...params, seeds: [7] });
    assert.deepEqual(again, first);
    // Alone, the prompt's rows meet other GEMM shapes: the same tokens, log-probs to rounding.
    assert.deepEqual(
      alone[0].map((x) => [x.ids, x.finishReason]),
      first[0].map((x) => [x.ids, x.finishReason]),
    );
    alone[0].forEach((x, j) =>
      assertAllClose(x.logprobs, first[0][j].logprobs, { atol: 1e-5 }, `prompt 0 sample ${j} alone`),
    );
    assert.notDeepEqual(first[0][0].ids, first[0][1].ids, 'samples of one prompt draw different streams');
    // The logprobs returned are log π of each token (T = 1, no truncation), as forward scores them.
    const sampled = first[0][1];
    const b = await e.loadBatch(
      {
        ids: Int32Array.from([...a, ...sampled.ids]),
        cuSeqlens: Int32Array.from([0, a.length + sampled.ids.length]),
        scoredFrom: Int32Array.from([a.length]),
      },
      { microBatchTokens: 0 },
    );
    assertAllClose(
      (await e.forward(b, 'policy')).logprob,
      sampled.logprobs,
      { atol: 1e-5 },
      'sampled logprobs vs forward',
    );
    await e.releaseBatch(b);
    // Greedy, then the same with its 4th token as a stop id: it ends there, that id kept.
    const [[greedy]] = await e.sample([a], { ...GREEDY, maxTokens: 10 });
    const stopId = greedy.ids[3];
    const [[stopped]] = await e.sample([a], { ...GREEDY, maxTokens: 10, stopTokenIds: [stopId] });
    assert.equal(stopped.finishReason, 'stop');
    assert.deepEqual(stopped.ids, greedy.ids.slice(0, greedy.ids.indexOf(stopId) + 1));
  });

  test('a NaN coefficient is refused in one line; an overflowing gradient is not applied and is cleared', async () => {
    const b = await e.loadBatch(g!.batch, { microBatchTokens: 0 });
    const bad = g!.coefLogprob.slice();
    bad[3] = NaN;
    await assert.rejects(e.forwardBackward(b, bad, g!.coefEntropy), (err: Error) => {
      assert.match(err.message, /^forwardBackward: dLogprob\[3\] is NaN \(.*\)$/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    const dir = tempDir('red-torch-inf-');
    await e.createOptimizer('inf', GOLDEN_ADAMW);
    await e.saveState(path.join(dir, 'before'));
    await e.forwardBackward(
      b,
      g!.coefLogprob.map((x) => Math.sign(x) * 3e38),
      g!.coefEntropy,
    ); // finite, the gradient is not
    const r = await e.optimStep('inf', 1e-3, 1.0);
    assert.equal(r.applied, false);
    assert.ok(!Number.isFinite(r.gradNorm), `grad norm ${r.gradNorm}`);
    await e.saveState(path.join(dir, 'after'));
    await e.saveGradients(path.join(dir, 'grads.safetensors'));
    const [x, y] = ['before', 'after'].map((s) => new SafetensorsFile(path.join(dir, s, 'master.safetensors')));
    for (const n of x.entries.keys())
      assert.ok(closeness(x.readFloat(n), y.readFloat(n), 0).worst < 0, `${n} unchanged`);
    const grads = new SafetensorsFile(path.join(dir, 'grads.safetensors'));
    for (const n of grads.entries.keys())
      assert.ok(
        grads.readFloat(n).every((v) => v === 0),
        `${n}: gradient cleared`,
      );
    await e.releaseBatch(b);
  });

  test('a failing operation is one line naming the file, and the engine goes on', async () => {
    const dir = tempDir('red-torch-bad-state-');
    writeFileSync(path.join(dir, 'master.safetensors'), readFileSync(path.join(g!.dir, 'golden.safetensors')));
    await assert.rejects(e.loadState(dir), (err: Error) => {
      assert.match(
        err.message,
        /^PyTorch engine: .*master\.safetensors: missing tensor 'model\.embed_tokens\.weight'$/,
      );
      return true;
    });
    await assert.rejects(e.saveForSampler('/proc/red-cannot-write-here/policy', 'fp32'), (err: Error) => {
      assert.match(err.message, /^PyTorch engine: .*red-cannot-write-here/);
      assert.ok(!err.message.includes('\n'));
      return true;
    });
    const b = await e.loadBatch(g!.batch, { microBatchTokens: 0 });
    assert.equal((await e.forward(b, 'policy')).logprob.length, 39);
    assert.equal(existsSync(dir), true);
  });
});

describe('[torch] two CPU ranks (gloo)', { skip: SKIP_TORCH }, () => {
  const g = SKIP_TORCH ? null : goldenCase('tied');
  let e: TorchEngine;
  before(async () => {
    e = await openTorchEngine(g!.dir, { devices: 2 });
  });
  after(() => e?.close());

  test("world size 2 gives one rank's log π and gradients: summed across ranks, not averaged", async () => {
    assert.equal(e.world, 2);
    const b = await e.loadBatch(g!.batch, { microBatchTokens: 0 });
    const s = await e.forward(b, 'policy');
    assertAllClose(s.logprob, g!.logprob, { atol: 1e-5 }, 'two ranks: log π');
    const dir = tempDir('red-torch-ddp-');
    await e.forwardBackward(b, g!.coefLogprob, g!.coefEntropy);
    await e.saveGradients(path.join(dir, 'grads.safetensors'));
    assertGradients(path.join(dir, 'grads.safetensors'), g!, 1, 'two ranks');
    if (oneRankGradients) {
      // The same sums in another order: within 1e-5 of each tensor's largest entry.
      const one = new SafetensorsFile(oneRankGradients),
        two = new SafetensorsFile(path.join(dir, 'grads.safetensors'));
      let worst = 0;
      for (const n of one.entries.keys()) {
        const want = one.readFloat(n);
        const top = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
        const r = closeness(two.readFloat(n), want, { atol: 1e-5 * top });
        worst = Math.max(worst, r.maxDiff / top);
        assert.ok(r.worst < 0, `${n}: 2 ranks vs 1 differ by ${r.maxDiff}`);
      }
      console.log(`  gradients, 2 ranks vs 1: within ${worst.toExponential(2)} of the largest entry`);
    }
    // A second call accumulates onto the first (DDP must not sum the already-summed part again).
    await e.forwardBackward(b, g!.coefLogprob, g!.coefEntropy);
    await e.saveGradients(path.join(dir, 'twice.safetensors'));
    assertGradients(path.join(dir, 'twice.safetensors'), g!, 2, 'two ranks, two calls');
    await e.createOptimizer('policy', GOLDEN_ADAMW);
    await e.optimStep('policy', 1e-3, 1.0);
    await e.releaseBatch(b);
  });
});

test('[torch] precision bf16: log π near fp32 and gradients along the golden ones', { skip: SKIP_TORCH }, async () => {
  const g = goldenCase('tied');
  const e = await openTorchEngine(g.dir, { precision: 'bf16' });
  try {
    const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
    assertAllClose((await e.forward(b, 'policy')).logprob, g.logprob, { atol: 0.05 }, 'bf16 log π');
    await e.forwardBackward(b, g.coefLogprob, g.coefEntropy);
    const file = path.join(tempDir('red-torch-bf16-'), 'grads.safetensors');
    await e.saveGradients(file);
    const got = new SafetensorsFile(file);
    let dot = 0,
      a2 = 0,
      b2 = 0;
    for (const name of got.entries.keys()) {
      const x = got.readFloat(name),
        y = g.gold.readFloat(`grad.${name}`);
      for (let i = 0; i < x.length; i++) ((dot += x[i] * y[i]), (a2 += x[i] * x[i]), (b2 += y[i] * y[i]));
    }
    const cosine = dot / Math.sqrt(a2 * b2);
    console.log(`  bf16 gradient · golden gradient: cosine ${cosine.toFixed(5)}`);
    assert.ok(cosine > 0.99, `cosine ${cosine}`);
  } finally {
    await e.close();
  }
});

test(
  '[torch] RED_ENGINE_ATTACH: red waits on the socket and a rank 0 started elsewhere (as by torchrun) connects',
  { skip: SKIP_TORCH },
  async () => {
    const g = goldenCase('tied');
    const socket = path.join(tempDir('red-torch-attach-'), 'engine.sock');
    process.env.RED_ENGINE_ATTACH = socket;
    const opening = openTorchEngine(g.dir, { python: '/nonexistent/python3' }); // not used: nothing is started
    delete process.env.RED_ENGINE_ATTACH;
    while (!existsSync(socket)) await new Promise((r) => setTimeout(r, 50));
    const rank0 = spawn(TORCH_PYTHON!, ['-m', 'red_engine', '--socket', socket], {
      env: { ...process.env, PYTHONPATH: PYTHON_PACKAGE_DIR },
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => rank0.on('exit', resolve));
    const e = await opening;
    try {
      assert.equal(e.rank0Pid, null);
      const b = await e.loadBatch(g.batch, { microBatchTokens: 0 });
      assertAllClose((await e.forward(b, 'policy')).logprob, g.logprob, { atol: 1e-5 }, 'attached rank 0: log π');
    } finally {
      await e.close();
    }
    await exited; // close() told it to exit
  },
);
