// NaN or Inf weights are refused at load with one line naming the first bad tensor (they used to
// make generation repeat one token, `score` print NaN and `train` run with `loss -`). The bad
// values are written straight into a copy of the transformers fixture's safetensors bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableBackends } from '../../src/engine/index.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const fixture = fixturePath('qwen2-tiny-tied');
const BIN = fileURLToPath(new URL('../../bin/red.js', import.meta.url));

/** A copy of the fixture with `value` (as float32) at element `index` of tensor `name`. */
function corrupt(name: string, index: number, value: number): string {
  const dir = path.join(tempDir('red-nan-'), 'model');
  cpSync(fixture, dir, { recursive: true });
  const file = path.join(dir, 'model.safetensors');
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<
    string,
    { dtype: string; data_offsets: [number, number] }
  >;
  const t = header[name];
  assert.equal(t.dtype, 'F32');
  bytes.writeFloatLE(value, 8 + n + t.data_offsets[0] + 4 * index);
  writeFileSync(file, bytes);
  return dir;
}

for (const backend of availableBackends()) {
  test(`NaN and Inf weights: the first bad tensor is named (${backend.name})`, async () => {
    const nan = corrupt('model.layers.0.mlp.up_proj.weight', 3, NaN);
    await assert.rejects(
      Qwen2Model.load(nan, { backend }),
      (err: Error) =>
        err.message ===
        `${nan}: tensor "model.layers.0.mlp.up_proj.weight" holds NaN (first at element 3 of ${upProjSize()}); the checkpoint is corrupt or from a diverged run: use an earlier checkpoint or the original weights`,
    );
    const inf = corrupt('model.norm.weight', 0, -Infinity);
    await assert.rejects(
      Qwen2Model.load(inf, { backend }),
      /tensor "model\.norm\.weight" holds -Inf \(first at element 0 of/,
    );
    await Qwen2Model.load(fixture, { backend }); // the clean original loads
  });
}

function upProjSize(): number {
  const cfg = JSON.parse(readFileSync(path.join(fixture, 'config.json'), 'utf8')) as {
    hidden_size: number;
    intermediate_size: number;
  };
  return cfg.hidden_size * cfg.intermediate_size;
}

test('red score on NaN weights: one line, not a column of NaN', () => {
  const nan = corrupt('model.embed_tokens.weight', 10, NaN);
  const r = spawnSync(process.execPath, [BIN, 'score', '--model', nan, '--ids', '1,2,3'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /^red: .*tensor "model\.embed_tokens\.weight" holds NaN \(first at element 10 of \d+\);[^\n]*\n$/,
  );
});
