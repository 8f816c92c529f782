// The sample-point evaluator against values worked out by hand (Γ(5) = 4! = 24, Γ(1/2) = √π,
// C(5,2) = 10, …) and against NaN where it must defer to the compute engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalJson, gamma } from '../../src/reward/evalJson.ts';
import { assertClose } from '../helpers/close.ts';

test('gamma matches factorials and Γ(1/2) = √π', () => {
  assertClose(gamma(5), 24, 1e-12, 'Γ(5)');
  assertClose(gamma(1), 1, 1e-12, 'Γ(1)');
  assertClose(gamma(11), 3628800, 1e-12, 'Γ(11)');
  assertClose(gamma(0.5), Math.sqrt(Math.PI), 1e-12, 'Γ(1/2)');
  assertClose(gamma(-0.5), -2 * Math.sqrt(Math.PI), 1e-12, 'Γ(-1/2)');
});

test('MathJSON arithmetic, functions and symbols', () => {
  const env = { x: 2, n: 5 };
  assertClose(evalJson(['Add', ['Power', 'x', 2], ['Multiply', 2, 'x'], 1], env), 9, 1e-12, 'x^2+2x+1 at 2');
  assertClose(evalJson(['Divide', ['Sqrt', 3], 2], {}), 0.8660254037844386, 1e-12, '√3/2');
  assertClose(evalJson(['Rational', 1, 3], {}), 1 / 3, 1e-12, '1/3');
  assertClose(evalJson(['Binomial', 'n', 2], env), 10, 1e-12, 'C(5,2)');
  assertClose(evalJson(['Factorial', 'n'], env), 120, 1e-12, '5!');
  assertClose(evalJson(['Log', 8, 2], {}), 3, 1e-12, 'log_2 8');
  assertClose(evalJson(['Root', 27, 3], {}), 3, 1e-12, '∛27');
  assertClose(evalJson(['Multiply', 'Pi', ['Power', 'ExponentialE', 0]], {}), Math.PI, 1e-12, 'π·e^0');
  assertClose(
    evalJson(['Subtract', ['Sin', ['Divide', 'Pi', 2]], { num: '0.25' }], {}),
    0.75,
    1e-12,
    'sin(π/2) − 0.25',
  );
  assertClose(evalJson(['Negate', ['Ln', 'ExponentialE']], {}), -1, 1e-12, '−ln e');
});

test('unknown heads, unbound symbols and complex results are NaN (the engine decides)', () => {
  assert.ok(Number.isNaN(evalJson(['Zeta', 2], {})));
  assert.ok(Number.isNaN(evalJson(['Max', 2, 3], {})));
  assert.ok(Number.isNaN(evalJson(['Add', 'y', 1], { x: 1 })));
  assert.ok(Number.isNaN(evalJson(['Sqrt', -4], {})));
  assert.ok(Number.isNaN(evalJson(['Power', -8, ['Rational', 1, 3]], {})));
  assert.ok(Number.isNaN(evalJson('ImaginaryUnit', {})));
});

test('an undefined one-letter function is a fixed function of its arguments', () => {
  const f = (x: number): number => evalJson(['f', 'x'], { x });
  assert.equal(f(0.7), f(0.7));
  assert.notEqual(f(0.7), f(1.4));
  assert.notEqual(evalJson(['f', 'x'], { x: 0.7 }), evalJson(['g', 'x'], { x: 0.7 }));
  assert.ok(Number.isFinite(evalJson(['I', 0], {})));
});
