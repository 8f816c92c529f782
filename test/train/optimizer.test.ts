// AdamW over the flat buffers: two steps equal torch's update written out, the no-decay mask
// only removes the decay term, state() → load() resumes exactly; clipGradNorm as torch's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableBackends } from '../../src/engine/index.ts';
import { parseConfig } from '../../src/model/config.ts';
import { paramLayout } from '../../src/model/params.ts';
import { AdamW, clipGradNorm, noDecayNormsAndBiases } from '../../src/train/optimizer.ts';
import { ADAMW_DEFAULTS } from '../../src/train/engine.ts';
import { Rng } from '../../src/util/rng.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';
import { tensorOf } from '../helpers/tensors.ts';

const config = parseConfig(
  tinyQwen2Config({
    vocab_size: 8,
    hidden_size: 4,
    intermediate_size: 6,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
  }),
);
const layout = paramLayout(config);

for (const be of availableBackends()) {
  test(`[${be.name}] AdamW: two steps = the formula, no-decay mask, exact resume from state()`, () => {
    const rng = new Rng(3);
    const n = layout.total;
    const p0 = Float32Array.from({ length: n }, () => rng.normal());
    const g1 = Float32Array.from({ length: n }, () => rng.normal() * 0.1);
    const g2 = Float32Array.from({ length: n }, () => rng.normal() * 0.1);
    const lr = 1e-2,
      b1 = 0.9,
      b2 = 0.95,
      eps = 1e-8,
      wd = 0.1;
    const params = tensorOf(be, p0.slice()),
      grads = be.alloc('f32', n);
    const opt = new AdamW(be, params, grads, layout, {
      beta1: b1,
      beta2: b2,
      eps,
      weightDecay: wd,
      noDecay: noDecayNormsAndBiases,
    });
    const decayed = new Array<boolean>(n).fill(true);
    for (const s of layout.specs)
      if (s.name.endsWith('.bias') || s.name.endsWith('norm.weight')) decayed.fill(false, s.offset, s.offset + s.size);
    assert.ok(decayed.includes(false) && decayed.includes(true));
    const ref = Array.from(p0),
      m = new Array<number>(n).fill(0),
      v = new Array<number>(n).fill(0);
    let maxDiff = 0;
    for (const [step, g] of [
      [1, g1],
      [2, g2],
    ] as const) {
      be.upload(grads, g);
      opt.update(lr);
      const got = be.download(params);
      for (let i = 0; i < n; i++) {
        if (decayed[i]) ref[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        ref[i] -= (lr * (m[i] / (1 - b1 ** step))) / (Math.sqrt(v[i] / (1 - b2 ** step)) + eps);
        maxDiff = Math.max(maxDiff, Math.abs(got[i] - ref[i]));
      }
    }
    console.log(`  [${be.name}] AdamW vs formula: max |diff| = ${maxDiff.toExponential(2)}`);
    assert.ok(maxDiff < 1e-6);
    assert.equal(opt.step, 2);

    // resume: a fresh optimiser loaded from state() continues exactly like the original
    const saved = opt.state();
    const params2 = tensorOf(be, be.download(params)),
      grads2 = tensorOf(be, g1.slice());
    be.upload(grads, g1);
    opt.update(lr);
    const opt2 = new AdamW(be, params2, grads2, layout, {
      beta1: b1,
      beta2: b2,
      eps,
      weightDecay: wd,
      noDecay: noDecayNormsAndBiases,
    });
    opt2.load(saved);
    opt2.update(lr);
    assert.deepEqual(be.download(params2), be.download(params));
    // the rate comes from the schedule at each step; there is no stored one to fall back on
    assert.throws(() => new AdamW(be, params, grads, layout, ADAMW_DEFAULTS).update(), /no learning rate/);
  });

  test(`[${be.name}] clipGradNorm: returns the norm and scales by maxNorm/(norm+1e-6) only above maxNorm`, () => {
    const gt = tensorOf(be, Float32Array.from([3, 4, 0, 0]));
    assert.equal(clipGradNorm(be, gt, 10), 5);
    assert.deepEqual(Array.from(be.download(gt)), [3, 4, 0, 0]);
    assert.equal(clipGradNorm(be, gt, 1), 5);
    const g = be.download(gt);
    const s = 1 / (5 + 1e-6);
    assert.ok(Math.abs(g[0] - 3 * s) < 1e-7 && Math.abs(g[1] - 4 * s) < 1e-7);
    assert.ok(Math.abs(Math.hypot(g[0], g[1]) - 1) < 1e-6);
  });
}
