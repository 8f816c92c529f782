// The host bf16 conversions against bit patterns known independently (IEEE bfloat16: the top 16
// bits of binary32, rounded to nearest with ties to even, as torch's .to(torch.bfloat16)).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bf16Bits, bf16Value, fromBf16, toBf16 } from '../../src/engine/bf16.ts';
import { parsePrecision } from '../../src/engine/precision.ts';

test('bf16Bits: exact values, ties to even, overflow to infinity, NaN stays NaN', () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2, 0xc000],
    [0, 0x0000],
    [-0, 0x8000],
    [Math.PI, 0x4049],
    [0.1, 0x3dcd],
    [1 + 2 ** -8, 0x3f80], // halfway between 0x3f80 and 0x3f81: ties to the even 0x3f80
    [1 + 3 * 2 ** -8, 0x3f82], // halfway between 0x3f81 and 0x3f82: ties to the even 0x3f82
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // just above halfway: up
    [3.3895313892515355e38, 0x7f7f], // the largest finite bf16
    [3.4e38, 0x7f80], // rounds past it: +inf
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
  ];
  for (const [x, bits] of cases) assert.equal(bf16Bits(x), bits, `bf16(${x})`);
  assert.ok(Number.isNaN(bf16Value(bf16Bits(NaN))));
});

test('bf16Value / fromBf16 widen exactly; toBf16 ∘ fromBf16 is the identity on bf16 bits', () => {
  assert.equal(bf16Value(0x4049), 3.140625);
  assert.equal(bf16Value(0x0001), 2 ** -133); // the smallest subnormal
  const bits = Uint16Array.from({ length: 4096 }, (_, i) => (i * 16411) & 0x7f7f);
  assert.deepEqual(toBf16(fromBf16(bits)), bits);
});

test('parsePrecision: fp32 and bf16 pass; anything else is one line listing the choices', () => {
  assert.equal(parsePrecision('bf16', '--precision'), 'bf16');
  assert.equal(parsePrecision(undefined, '--precision'), 'fp32');
  assert.throws(
    () => parsePrecision('fp16', '--precision'),
    (e: Error) => /--precision must be one of fp32, bf16; got "fp16"/.test(e.message) && !e.message.includes('\n'),
  );
});
