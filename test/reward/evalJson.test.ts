// The sample-point evaluator against values worked out by hand (Γ(5) = 4! = 24, Γ(1/2) = √π,
// C(5,2) = 10, …) and against NaN where it must defer to the compute engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalJson, gamma } from '../../src/reward/evalJson.ts';

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);
}

test('gamma matches factorials and Γ(1/2) = √π', () => {
  close(gamma(5), 24, 'Γ(5)');
  close(gamma(1), 1, 'Γ(1)');
  close(gamma(11), 3628800, 'Γ(11)');
  close(gamma(0.5), Math.sqrt(Math.PI), 'Γ(1/2)');
  close(gamma(-0.5), -2 * Math.sqrt(Math.PI), 'Γ(-1/2)');
});

test('MathJSON arithmetic, functions and symbols', () => {
  const env = { x: 2, n: 5 };
  close(evalJson(['Add', ['Power', 'x', 2], ['Multiply', 2, 'x'], 1], env), 9, 'x^2+2x+1 at 2');
  close(evalJson(['Divide', ['Sqrt', 3], 2], {}), 0.8660254037844386, '√3/2');
  close(evalJson(['Rational', 1, 3], {}), 1 / 3, '1/3');
  close(evalJson(['Binomial', 'n', 2], env), 10, 'C(5,2)');
  close(evalJson(['Factorial', 'n'], env), 120, '5!');
  close(evalJson(['Log', 8, 2], {}), 3, 'log_2 8');
  close(evalJson(['Root', 27, 3], {}), 3, '∛27');
  close(evalJson(['Multiply', 'Pi', ['Power', 'ExponentialE', 0]], {}), Math.PI, 'π·e^0');
  close(evalJson(['Subtract', ['Sin', ['Divide', 'Pi', 2]], { num: '0.25' }], {}), 0.75, 'sin(π/2) − 0.25');
  close(evalJson(['Negate', ['Ln', 'ExponentialE']], {}), -1, '−ln e');
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
