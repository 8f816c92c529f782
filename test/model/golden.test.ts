// The acceptance test of the model: Hugging Face transformers' own numbers for two tiny Qwen2
// models (tied and untied embeddings): logits, next-token logprobs and entropies, the gradient
// of a mixed logprob/entropy loss for every parameter, one AdamW step and a greedy decode.
// Runs on every available backend and says which it skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends, skippedBackends } from '../../src/engine/index.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { packSequences } from '../../src/model/batch.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { AdamW } from '../../src/train/optimizer.ts';
import { closeness } from '../helpers/close.ts';
import { fixturePath } from '../helpers/paths.ts';

if (skippedBackends().length) console.log(`golden: skipped backends: ${skippedBackends().join(', ')}`);

for (const kind of ['tied', 'untied'] as const) {
  const dir = fixturePath(`qwen2-tiny-${kind}`);
  for (const backend of availableBackends()) {
    test(`[${backend.name}] golden ${kind}: logits, logprob, entropy, gradients, AdamW step, greedy decode match transformers`, async () => {
      const model = await Qwen2Model.load(dir, { backend });
      assert.equal(model.config.tieWordEmbeddings, kind === 'tied');
      const gold = new SafetensorsFile(`${dir}/golden.safetensors`);
      const V = model.config.vocabSize;
      const ids = gold.readInt('input_ids'),
        mask = gold.readInt('attention_mask'); // (2, 24)
      const S = 24;
      // Right-padded rows → packed sequences of their true lengths (24 and 17).
      const lens = [0, 1].map((b) => mask.subarray(b * S, (b + 1) * S).reduce((a, x) => a + x, 0));
      assert.deepEqual(lens, [24, 17]);
      const batch = packSequences(lens.map((n, b) => ids.subarray(b * S, b * S + n)));
      // packed token t ↔ (row b, column i)
      const where: [number, number][] = [];
      lens.forEach((n, b) => {
        for (let i = 0; i < n; i++) where.push([b, i]);
      });
      const T = where.length;

      // Logits (2, 24, V) on real tokens.
      const logits = model.logits(batch);
      const wantLogits = gold.readFloat('logits');
      const gotL: number[] = [],
        refL: number[] = [];
      where.forEach(([b, i], t) => {
        for (let v = 0; v < V; v++) {
          gotL.push(logits[t * V + v]);
          refL.push(wantLogits[(b * S + i) * V + v]);
        }
      });
      const rl = closeness(gotL, refL, { atol: 1e-4 });
      console.log(`  [${backend.name}] ${kind} logits: max |diff| = ${rl.maxDiff.toExponential(2)}`);
      assert.ok(rl.worst < 0, `logits differ by ${rl.maxDiff}`);

      // next_logprob, entropy (2, 23) on valid positions.
      const { logprob, entropy } = model.forward(batch);
      const valid = gold.readFloat('valid'),
        nl = gold.readFloat('next_logprob'),
        ent = gold.readFloat('entropy');
      const cl = gold.readFloat('loss_coef_logprob'),
        ce = gold.readFloat('loss_coef_entropy');
      const coefLogprob = new Float32Array(T),
        coefEntropy = new Float32Array(T);
      const got: number[] = [],
        ref: number[] = [];
      let nValid = 0;
      where.forEach(([b, i], t) => {
        if (i === 23) {
          assert.equal(batch.targets[t], -1);
          return;
        }
        const j = b * 23 + i;
        assert.equal(batch.targets[t] >= 0, valid[j] === 1, `target presence at (${b}, ${i}) matches valid`);
        if (valid[j] !== 1) return;
        nValid++;
        got.push(logprob[t], entropy[t]);
        ref.push(nl[j], ent[j]);
        // loss = Σ_valid (coef_logprob·logprob + 0.1·coef_entropy·entropy)
        coefLogprob[t] = cl[j];
        coefEntropy[t] = 0.1 * ce[j];
      });
      assert.equal(nValid, 23 + 16);
      const rp = closeness(got, ref, { atol: 1e-4 });
      console.log(
        `  [${backend.name}] ${kind} logprob+entropy: max |diff| = ${rp.maxDiff.toExponential(2)} over ${nValid} positions`,
      );
      assert.ok(rp.worst < 0, `logprob/entropy differ by ${rp.maxDiff}`);
      let loss = 0;
      for (let t = 0; t < T; t++) loss += coefLogprob[t] * logprob[t] + coefEntropy[t] * entropy[t];
      const wantLoss = gold.readFloat('loss')[0];
      console.log(`  [${backend.name}] ${kind} loss ${loss.toFixed(6)} vs ${wantLoss.toFixed(6)}`);
      assert.ok(Math.abs(loss - wantLoss) < 1e-3 + 1e-5 * Math.abs(wantLoss));

      // Gradients of every parameter; the golden file has exactly our parameters.
      model.zeroGrad();
      model.backward(coefLogprob, coefEntropy);
      const gradNames = [...gold.entries.keys()]
        .filter((n) => n.startsWith('grad.'))
        .map((n) => n.slice(5))
        .sort();
      assert.deepEqual(gradNames, model.layout.specs.map((s) => s.name).sort());
      let worst = 0,
        worstName = '';
      const grads = model.readGrads();
      for (const spec of model.layout.specs) {
        const r = closeness(grads.subarray(spec.offset, spec.offset + spec.size), gold.readFloat(`grad.${spec.name}`), {
          atol: 1e-4,
          rtol: 1e-3,
        });
        if (r.maxDiff > worst) {
          worst = r.maxDiff;
          worstName = spec.name;
        }
        assert.ok(r.worst < 0, `gradient of ${spec.name} differs by ${r.maxDiff}`);
      }
      console.log(
        `  [${backend.name}] ${kind} gradients (${model.layout.specs.length} tensors): max |diff| = ${worst.toExponential(2)} (${worstName})`,
      );

      // Micro-batches accumulate: a second backward doubles the gradients.
      const once = model.readGrads();
      model.forward(batch);
      model.backward(coefLogprob, coefEntropy);
      const r2 = closeness(
        model.readGrads(),
        once.map((x) => 2 * x),
        { atol: 1e-6, rtol: 1e-5 },
      );
      assert.ok(r2.worst < 0, `a second backward must accumulate (max diff ${r2.maxDiff})`);

      // One AdamW step from the golden gradients (so the step tests the optimiser alone: a first
      // AdamW step is ≈ lr·sign(g) and would amplify gradient noise in near-zero entries).
      for (const spec of model.layout.specs)
        backend.upload(backend.view(model.grads, spec.offset, spec.size), gold.readFloat(`grad.${spec.name}`));
      const opt = new AdamW(backend, model.params, model.grads, model.layout, {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.1,
      });
      opt.update(1e-3);
      let worstA = 0;
      const stepped = model.readParams();
      for (const spec of model.layout.specs) {
        const r = closeness(
          stepped.subarray(spec.offset, spec.offset + spec.size),
          gold.readFloat(`adamw1.${spec.name}`),
          { atol: 1e-6 },
        );
        worstA = Math.max(worstA, r.maxDiff);
        assert.ok(r.worst < 0, `AdamW step of ${spec.name} differs by ${r.maxDiff}`);
      }
      console.log(`  [${backend.name}] ${kind} AdamW step: max |diff| = ${worstA.toExponential(2)}`);

      // Greedy decoding by repeated full forward (argmax of the last row's logits).
      const fresh = await Qwen2Model.load(dir, { backend });
      const seq = Array.from(gold.readInt('greedy_prompt'));
      const want = Array.from(gold.readInt('greedy_output'));
      while (seq.length < want.length) {
        const lg = fresh.logits(packSequences([seq]));
        const last = lg.subarray((seq.length - 1) * V, seq.length * V);
        let best = 0;
        for (let v = 1; v < V; v++) if (last[v] > last[best]) best = v;
        seq.push(best);
      }
      assert.deepEqual(seq, want, 'greedy decode equals transformers generate()');
      gold.close();
    });
  }
}
