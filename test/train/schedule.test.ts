import { test } from 'node:test';
import { learningRate } from '../../src/train/schedule.ts';
import { assertClose } from '../helpers/close.ts';

test('warm-up then cosine to the floor, against hand-computed values', () => {
  // lr 1, W 2, floor 0.1, T 7: steps 3..7 cover the cosine in 4 intervals (p = 0, ¼, ½, ¾, 1).
  const o = { lr: 1, warmupSteps: 2, minLrRatio: 0.1, totalSteps: 7 };
  assertClose(learningRate(1, o), 0.5, 1e-12);
  assertClose(learningRate(2, o), 1, 1e-12);
  assertClose(learningRate(3, o), 1, 1e-12);
  // 0.1 + 0.9·½·(1 + cos(π/4)) = 0.1 + 0.45·(1 + 0.7071067811865476)
  assertClose(learningRate(4, o), 0.1 + 0.45 * 1.7071067811865476, 1e-12);
  assertClose(learningRate(5, o), 0.55, 1e-12);
  assertClose(learningRate(6, o), 0.1 + 0.45 * (1 - 0.7071067811865476), 1e-12);
  assertClose(learningRate(7, o), 0.1, 1e-12);
  assertClose(learningRate(50, o), 0.1, 1e-12); // past the plan: stays at the floor
});

test('paper defaults: warm-up 1 step, lr 2e-6 → 2e-7', () => {
  const o = { lr: 2e-6, warmupSteps: 1, minLrRatio: 0.1, totalSteps: 102 };
  assertClose(learningRate(1, o), 2e-6, 1e-12);
  assertClose(learningRate(2, o), 2e-6, 1e-12);
  assertClose(learningRate(52, o), 1.1e-6, 1e-12); // p = 50/100
  assertClose(learningRate(102, o), 2e-7, 1e-12);
});
