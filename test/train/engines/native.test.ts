// The native engine through the training-engine contract alone, on every available backend:
// transformers' golden log π, entropy and surrogate gradients (the gradients read back from the
// saved optimiser state by an independent reader, under Hugging Face names), micro-batches, the
// forward that forwardBackward reuses, stash/restore, saveState → loadState on a fresh engine,
// red train's version-2 flat state, and greedy sampling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { availableBackends, skippedBackends } from '../../../src/engine/index.ts';
import { paramLayout } from '../../../src/model/params.ts';
import { Qwen2Model } from '../../../src/model/qwen2.ts';
import { SafetensorsFile } from '../../../src/model/safetensors.ts';
import { loadConfig } from '../../../src/model/config.ts';
import {
  oneDeviceSettings,
  type AdamWSettings,
  type EngineBatch,
  type EngineSettings,
  type TrainingEngine,
} from '../../../src/train/engine.ts';
import { createNativeEngine } from '../../../src/train/engines/native.ts';
import { closeness } from '../../helpers/close.ts';
import { fixturePath } from '../../helpers/paths.ts';
import { pySafetensors } from '../../helpers/safetensors-py.ts';
import { tempDir } from '../../helpers/tmp.ts';
import { writeVersion2State } from '../../helpers/version2.ts';

if (skippedBackends().length) console.log(`native engine: skipped backends: ${skippedBackends().join(', ')}`);

const settings = (modelPath: string, backend: string): EngineSettings =>
  oneDeviceSettings('native', modelPath, { backend: backend as 'native' | 'reference' });

/** β1 = β2 = 0: after one step exp_avg is the gradient itself (m = 0·m + 1·g); lr 0 leaves θ. */
const PROBE: AdamWSettings = { beta1: 0, beta2: 0, eps: 1e-8, weightDecay: 0, noDecay: 'none' };
const ADAM: AdamWSettings = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, noDecay: 'norms-and-biases' };

/** The golden batch: the two right-padded rows as packed sequences, every token after the first scored. */
function goldenBatch(gold: SafetensorsFile) {
  const ids = gold.readInt('input_ids'),
    mask = gold.readInt('attention_mask'); // (2, 24)
  const S = 24;
  const lens = [0, 1].map((b) => mask.subarray(b * S, (b + 1) * S).reduce((a, x) => a + x, 0));
  const batch: EngineBatch = {
    ids: Int32Array.from([...ids.subarray(0, lens[0]), ...ids.subarray(S, S + lens[1])]),
    cuSeqlens: Int32Array.from([0, lens[0], lens[0] + lens[1]]),
    scoredFrom: Int32Array.from([1, 1]),
  };
  // Scored token i+1 of row b is golden position j = b·23 + i (next_logprob, entropy, coefficients).
  const js = lens.flatMap((n, b) => Array.from({ length: n - 1 }, (_, i) => b * 23 + i));
  const nl = gold.readFloat('next_logprob'),
    ent = gold.readFloat('entropy'),
    cl = gold.readFloat('loss_coef_logprob'),
    ce = gold.readFloat('loss_coef_entropy'),
    valid = gold.readFloat('valid');
  assert.ok(
    js.every((j) => valid[j] === 1),
    'every scored position is a valid golden position',
  );
  return {
    batch,
    wantLogprob: js.map((j) => nl[j]),
    wantEntropy: js.map((j) => ent[j]),
    // loss = Σ (coef_logprob·logprob + 0.1·coef_entropy·entropy), as the golden file's gradients.
    coefLogprob: Float32Array.from(js.map((j) => cl[j])),
    coefEntropy: Float32Array.from(js.map((j) => 0.1 * ce[j])),
  };
}

const bytesOf = (dir: string, f: string) => readFileSync(path.join(dir, f));
function sameFiles(a: string, b: string, files: string[], what: string): void {
  for (const f of files) assert.ok(bytesOf(a, f).equals(bytesOf(b, f)), `${what}: ${f} differs`);
}
const STATE_FILES = ['master.safetensors', 'optimizer-policy.safetensors', 'optimizer-sft.safetensors'];

async function step(e: TrainingEngine, batch: EngineBatch, coef: Float32Array, name = 'policy', budget = 0) {
  const h = await e.loadBatch(batch, { microBatchTokens: budget });
  await e.forward(h, 'policy');
  await e.forwardBackward(h, coef, new Float32Array(h.scoredTokens));
  const r = await e.optimStep(name, 1e-2, 1.0);
  await e.releaseBatch(h);
  return r;
}

for (const kind of ['tied', 'untied'] as const) {
  const dir = fixturePath(`qwen2-tiny-${kind}`);
  for (const be of availableBackends()) {
    test(`[${be.name}] ${kind}: log π, entropy and the surrogate's gradients through the contract match transformers`, async () => {
      const gold = new SafetensorsFile(path.join(dir, 'golden.safetensors'));
      const g = goldenBatch(gold);
      gold.close();
      const e = await createNativeEngine(settings(dir, be.name));
      const h = await e.loadBatch(g.batch, { microBatchTokens: 0 });
      assert.equal(h.scoredTokens, 23 + 16);
      const { logprob, entropy } = await e.forward(h, 'policy');
      const r = closeness([...logprob, ...entropy], [...g.wantLogprob, ...g.wantEntropy], { atol: 1e-4 });
      console.log(`  [${be.name}] ${kind} log π + entropy: max |diff| = ${r.maxDiff.toExponential(2)}`);
      assert.ok(r.worst < 0, `log π / entropy differ by ${r.maxDiff}`);

      await e.forwardBackward(h, g.coefLogprob, g.coefEntropy);
      await e.createOptimizer('probe', PROBE);
      const { gradNorm, applied } = await e.optimStep('probe', 0, Infinity);
      assert.ok(applied);
      const out = tempDir('red-native-golden-');
      await e.saveState(out);
      // Python reads our files: exp_avg under each Hugging Face name against transformers' grad.NAME,
      // master.safetensors against the fixture's own weights (lr 0: unchanged).
      const py = pySafetensors(
        `
meta, opt = read(sys.argv[1])
_, golden = read(sys.argv[2])
_, master = read(sys.argv[3])
_, model = read(sys.argv[4])
names = sorted(k[5:] for k in golden if k.startswith('grad.'))
worst, worst_name, sq, maxdiff = -1.0, '', 0.0, 0.0
for n in names:
    d, g = opt[n + '.exp_avg']
    want = golden['grad.' + n][1].astype(np.float64)
    diff = np.abs(g.astype(np.float64) - want)
    maxdiff = max(maxdiff, float(np.max(diff)))
    excess = np.max(diff - (1e-4 + 1e-3 * np.abs(want)))
    if excess > worst: worst, worst_name = float(excess), n
    sq += float(np.sum(want * want))
print(json.dumps({
  'step': meta.get('step'),
  'opt_names': sorted(opt), 'names': names,
  'dtypes': sorted(set(d for d, _ in list(opt.values()) + list(master.values()))),
  'worst': worst, 'worst_name': worst_name, 'norm': sq ** 0.5, 'maxdiff': maxdiff,
  'master_names': sorted(master), 'model_names': sorted(model),
  'master_equal': all(np.array_equal(master[k][1], model[k][1]) for k in model),
}))`,
        [
          path.join(out, 'optimizer-probe.safetensors'),
          path.join(dir, 'golden.safetensors'),
          path.join(out, 'master.safetensors'),
          path.join(dir, 'model.safetensors'),
        ],
      ) as Record<string, unknown>;
      console.log(
        `  [${be.name}] ${kind} gradients (${(py.names as string[]).length} tensors, read back by Python): max |diff| = ${(py.maxdiff as number).toExponential(2)}; grad/norm ${gradNorm.toFixed(5)} vs ${(py.norm as number).toFixed(5)}`,
      );
      assert.equal(py.step, '1');
      assert.deepEqual(py.opt_names, (py.names as string[]).flatMap((n) => [`${n}.exp_avg`, `${n}.exp_avg_sq`]).sort());
      assert.deepEqual(py.dtypes, ['F32']);
      assert.ok((py.worst as number) <= 0, `gradient of ${py.worst_name} outside atol 1e-4 + rtol 1e-3`);
      assert.ok(Math.abs(gradNorm - (py.norm as number)) <= 1e-4 * (py.norm as number), 'grad/norm');
      assert.deepEqual(py.master_names, py.model_names);
      assert.equal(py.master_equal, true, 'master.safetensors holds the weights under their own names');
    });
  }
}

for (const be of availableBackends()) {
  const dir = fixturePath('qwen2-tiny-untied');
  const gold = new SafetensorsFile(path.join(dir, 'golden.safetensors'));
  const g = goldenBatch(gold);
  gold.close();

  test(`[${be.name}] forwardBackward reuses the scoring forward of a one-micro-batch batch, and only that`, async () => {
    let forwards = 0;
    const original = Qwen2Model.prototype.forward;
    Qwen2Model.prototype.forward = function (this: Qwen2Model, b) {
      forwards++;
      return original.call(this, b);
    };
    try {
      const grads = async (budget: number, scoreFirst: boolean) => {
        const e = await createNativeEngine(settings(dir, be.name));
        await e.createOptimizer('probe', PROBE);
        const h = await e.loadBatch(g.batch, { microBatchTokens: budget });
        forwards = 0;
        if (scoreFirst) await e.forward(h, 'policy');
        await e.forwardBackward(h, g.coefLogprob, g.coefEntropy);
        const calls = forwards;
        await e.optimStep('probe', 0, Infinity);
        const out = tempDir('red-native-fb-');
        await e.saveState(out);
        const f = new SafetensorsFile(path.join(out, 'optimizer-probe.safetensors'));
        const all = e.info.tensors.flatMap((t) => [...f.readFloat(`${t.name}.exp_avg`)]);
        f.close();
        return { calls, grads: all, engine: e, handle: h };
      };
      const reused = await grads(0, true);
      assert.equal(reused.calls, 1, 'one forward: the scoring one');
      const fresh = await grads(0, false);
      assert.equal(fresh.calls, 1, 'no scoring forward: forwardBackward runs its own');
      assert.deepEqual(reused.grads, fresh.grads, 'reusing the activations gives the very same gradients');
      // Two micro-batches (24 and 17 tokens under a budget of 30): each re-run in forwardBackward.
      const micro = await grads(30, true);
      assert.equal(micro.calls, 4);
      const r = closeness(micro.grads, fresh.grads, { atol: 1e-6, rtol: 1e-5 });
      assert.ok(r.worst < 0, `micro-batches accumulate the whole batch's gradient (max diff ${r.maxDiff})`);
      // After a step the activations are of old parameters: forwardBackward must recompute them.
      const e = reused.engine;
      await e.createOptimizer('adam', ADAM);
      forwards = 0;
      await e.forward(reused.handle, 'policy');
      await e.optimStep('adam', 1e-2, Infinity); // no gradient, but weight decay moves θ
      await e.forwardBackward(reused.handle, g.coefLogprob, g.coefEntropy);
      assert.equal(forwards, 2, 'a step changed the parameters: forwardBackward re-ran the forward');
    } finally {
      Qwen2Model.prototype.forward = original;
    }
  });

  test(`[${be.name}] stash/restore puts back the parameters and every optimiser's moments and step`, async () => {
    const twoOptimizers = async () => {
      const e = await createNativeEngine(settings(dir, be.name));
      await e.createOptimizer('policy', ADAM);
      await e.createOptimizer('sft', { ...ADAM, noDecay: 'none' });
      return e;
    };
    const a = await twoOptimizers();
    const b = await twoOptimizers();
    for (const e of [a, b]) await step(e, g.batch, g.coefLogprob);
    await a.stash();
    await step(a, g.batch, g.coefLogprob);
    await step(a, g.batch, g.coefLogprob, 'sft');
    await a.restore();
    const [da, db] = [tempDir('red-stash-a-'), tempDir('red-stash-b-')];
    await a.saveState(da);
    await b.saveState(db);
    sameFiles(da, db, STATE_FILES, 'after restore');
    // And training goes on from the restored state exactly as if the updates had never happened.
    for (const e of [a, b]) await step(e, g.batch, g.coefLogprob);
    await a.saveState(da);
    await b.saveState(db);
    sameFiles(da, db, STATE_FILES, 'a step after restore');
  });

  test(`[${be.name}] saveState → loadState on a fresh engine is bit-exact (master or fp32 model weights; version-2 flat state too)`, async () => {
    const fresh = async () => {
      const e = await createNativeEngine(settings(dir, be.name));
      await e.createOptimizer('policy', ADAM);
      await e.createOptimizer('sft', ADAM);
      return e;
    };
    const a = await fresh();
    for (const name of ['policy', 'sft', 'policy']) await step(a, g.batch, g.coefLogprob, name);
    const saved = tempDir('red-state-');
    await a.saveForSampler(saved, 'bf16');
    await a.saveState(saved);
    const checkResumes = async (from: string, what: string) => {
      const b = await fresh();
      await b.loadState(from);
      const out = tempDir('red-state-back-');
      await b.saveState(out);
      sameFiles(saved, out, STATE_FILES, what);
      await step(b, g.batch, g.coefLogprob);
      return b;
    };
    const b = await checkResumes(saved, 'master.safetensors');
    // A state file cut short (a crash of some other writer) is named as truncated, not misread.
    const cut = tempDir('red-state-cut-');
    for (const f of readdirSync(saved)) writeFileSync(path.join(cut, f), bytesOf(saved, f));
    const opt = bytesOf(saved, 'optimizer-sft.safetensors');
    writeFileSync(path.join(cut, 'optimizer-sft.safetensors'), opt.subarray(0, opt.length - 3));
    await assert.rejects((await fresh()).loadState(cut), /optimizer-sft\.safetensors: truncated/);
    // fp32 model weights and no master: loadState reads model.safetensors instead.
    const plain = tempDir('red-state-fp32-');
    await a.saveForSampler(plain, 'fp32');
    await a.saveState(plain, { master: false });
    assert.ok(!readdirSync(plain).includes('master.safetensors'));
    await checkResumes(plain, 'fp32 model.safetensors');
    // red train's version 2: flat `params`, and optimizer.safetensors / sft_optimizer.safetensors
    // holding flat m, v and step in the native layout (policy and sft).
    const v2 = tempDir('red-state-v2-');
    await a.saveForSampler(v2, 'bf16');
    writeVersion2State(saved, v2, paramLayout(loadConfig(path.join(dir, 'config.json'))));
    await checkResumes(v2, 'version-2 flat state');
    // A step on the original engine equals the step on the resumed one.
    await step(a, g.batch, g.coefLogprob);
    const [da, db] = [tempDir('red-state-a-'), tempDir('red-state-b-')];
    await a.saveState(da);
    await b.saveState(db);
    sameFiles(da, db, STATE_FILES, 'the next step');
  });

  test(`[${be.name}] greedy sampling on the engine reproduces transformers' generate()`, async () => {
    const f = new SafetensorsFile(path.join(dir, 'golden.safetensors'));
    const prompt = Array.from(f.readInt('greedy_prompt'));
    const want = Array.from(f.readInt('greedy_output'));
    f.close();
    const e = await createNativeEngine(settings(dir, be.name));
    const [[s]] = await e.sample([prompt], {
      n: 1,
      temperature: 0,
      topP: 1,
      topK: 0,
      maxTokens: want.length - prompt.length,
      seeds: [0],
      stopTokenIds: [],
    });
    assert.deepEqual([...prompt, ...s.ids], want);
    assert.equal(s.finishReason, 'length');
  });
}
