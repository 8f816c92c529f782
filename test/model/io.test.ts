// Model folder I/O: save → load is bit-identical and keeps the other files, sharded checkpoints
// load, the transformers-4 config form loads, BF16/F16 decode as IEEE says, and every kind of
// broken input fails with one RedError naming the file and the tensor, leaving nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { RedError } from '../../src/util/errors.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { packSequences } from '../../src/model/batch.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';
import { fixturePath } from '../helpers/paths.ts';
import { tempDir } from '../helpers/tmp.ts';

const fixture = fixturePath('qwen2-tiny-tied');
const untiedFixture = fixturePath('qwen2-tiny-untied');
const opts = { backend: referenceBackend };

/** A copy of the fixture's model files (no golden data) in a fresh folder. */
function copyModel(src = fixture): string {
  const dir = tempDir('red-model-io-');
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors'])
    copyFileSync(path.join(src, f), path.join(dir, f));
  return dir;
}

/** Asserts that fn throws a RedError whose message contains every one of `parts`. */
async function rejectsNaming(fn: () => Promise<unknown>, parts: string[]): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof RedError, `expected a RedError, got ${String(err)}`);
    for (const p of parts) assert.ok(err.message.includes(p), `message "${err.message}" should name ${p}`);
    return true;
  });
}

test('save → load is bit-identical, keeps generation_config and tokenizer files, and the file is valid safetensors', async () => {
  for (const src of [fixture, untiedFixture]) {
    const dir = copyModel(src);
    writeFileSync(path.join(dir, 'tokenizer.json'), '{"fake": true}');
    const model = await Qwen2Model.load(dir, opts);
    const out = path.join(tempDir('red-model-io-'), 'saved');
    model.save(out);
    assert.deepEqual(readdirSync(out).sort(), [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    assert.deepEqual(
      JSON.parse(readFileSync(path.join(out, 'generation_config.json'), 'utf8')),
      JSON.parse(readFileSync(path.join(src, 'generation_config.json'), 'utf8')),
    );
    // config.json keeps the keys we do not model
    const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    const orig = JSON.parse(readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    for (const k of Object.keys(orig)) assert.deepEqual(cfg[k], orig[k], `config key ${k} kept`);
    const again = await Qwen2Model.load(out, opts);
    assert.equal(
      Buffer.compare(Buffer.from(again.readParams().buffer), Buffer.from(model.readParams().buffer)),
      0,
      'parameters bit-identical',
    );
    // header: length prefix, 8-byte aligned data start, __metadata__.format = pt, no lm_head when tied
    const bytes = readFileSync(path.join(out, 'model.safetensors'));
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal((8 + n) % 8, 0, 'data starts 8-byte aligned');
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
    assert.deepEqual(header.__metadata__, { format: 'pt' });
    assert.equal('lm_head.weight' in header, !model.config.tieWordEmbeddings);
    // saving over an existing folder replaces it atomically (no temp folders left)
    again.save(out);
    assert.deepEqual(readdirSync(path.dirname(out)), ['saved']);
  }
});

test('the transformers-4 config form (top-level rope_theta) loads and computes the same logits', async () => {
  const dir = copyModel();
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  delete cfg.rope_parameters;
  cfg.rope_theta = 10000.0;
  cfg.torch_dtype = 'float32';
  delete cfg.dtype;
  cfg.transformers_version = '4.43.1';
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const m4 = await Qwen2Model.load(dir, opts);
  const m5 = await Qwen2Model.load(fixture, opts);
  assert.equal(m4.config.ropeTheta, 10000);
  const batch = packSequences([[5, 9, 200, 17, 3]]);
  assert.deepEqual(m4.logits(batch), m5.logits(batch));
  // and re-saving keeps the transformers-4 form
  const out = path.join(tempDir('red-model-io-'), 'm');
  m4.save(out);
  const saved = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(saved.rope_theta, 10000);
  assert.equal(saved.rope_parameters, undefined);
});

test('a sharded checkpoint (index + two shards) loads the same parameters', async () => {
  const ref = await Qwen2Model.load(fixture, opts);
  const dir = tempDir('red-model-io-');
  copyFileSync(path.join(fixture, 'config.json'), path.join(dir, 'config.json'));
  const specs = ref.layout.specs;
  const half = Math.floor(specs.length / 2);
  const shards = [specs.slice(0, half), specs.slice(half)];
  const refParams = ref.readParams();
  const weightMap: Record<string, string> = {};
  shards.forEach((list, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    // write in reverse order so file order differs from our layout order
    writeSafetensors(
      path.join(dir, name),
      list
        .slice()
        .reverse()
        .map((s) => ({ name: s.name, shape: s.shape, data: refParams.subarray(s.offset, s.offset + s.size) })),
    );
    for (const s of list) weightMap[s.name] = name;
  });
  writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: refParams.byteLength }, weight_map: weightMap }),
  );
  const m = await Qwen2Model.load(dir, opts);
  assert.deepEqual(m.readParams(), ref.readParams());

  // the index naming a shard that is not there
  rmSync(path.join(dir, 'model-00002-of-00002.safetensors'));
  await rejectsNaming(() => Qwen2Model.load(dir, opts), ['model-00002-of-00002.safetensors', specs[half].name]);
});

test('BF16 and F16 tensors decode to the float32 values their bits encode', () => {
  const dir = tempDir('red-model-io-');
  const file = path.join(dir, 'half.safetensors');
  // bf16: 1.0 = 0x3F80, −2.5 = 0xC020, 3.140625 = 0x4049
  // f16: 1.0 = 0x3C00, −2 = 0xC000, 0.5 = 0x3800, 65504 = 0x7BFF, 2^−24 = 0x0001 (subnormal), −0 = 0x8000, inf = 0x7C00
  const bf = [0x3f80, 0xc020, 0x4049],
    f16 = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00];
  const header = JSON.stringify({
    a: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] },
    b: { dtype: 'F16', shape: [7], data_offsets: [6, 20] },
  });
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  const data = Buffer.alloc(20);
  bf.forEach((x, i) => data.writeUInt16LE(x, 2 * i));
  f16.forEach((x, i) => data.writeUInt16LE(x, 6 + 2 * i));
  writeFileSync(file, Buffer.concat([prefix, Buffer.from(header), data]));
  const st = new SafetensorsFile(file);
  assert.deepEqual(Array.from(st.readFloat('a')), [1, -2.5, 3.140625]);
  assert.deepEqual(Array.from(st.readFloat('b')), [1, -2, 0.5, 65504, 2 ** -24, -0, Infinity]);
  st.close();
});

test('broken inputs: each a RedError naming the file and the tensor', async () => {
  // missing weights file
  {
    const dir = copyModel();
    rmSync(path.join(dir, 'model.safetensors'));
    await rejectsNaming(() => Qwen2Model.load(dir, opts), [dir, 'model.safetensors']);
  }
  // missing config.json
  {
    const dir = copyModel();
    rmSync(path.join(dir, 'config.json'));
    await rejectsNaming(() => Qwen2Model.load(dir, opts), [path.join(dir, 'config.json'), 'not found']);
  }
  // truncated safetensors: the last tensor's data is cut short
  {
    const dir = copyModel();
    const file = path.join(dir, 'model.safetensors');
    truncateSync(file, statSync(file).size - 100);
    const st = readFileSync(file);
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString()) as Record<
      string,
      { data_offsets?: number[] }
    >;
    const last = Object.entries(header)
      .filter(([k]) => k !== '__metadata__')
      .sort((a, b) => b[1].data_offsets![1] - a[1].data_offsets![1])[0][0];
    await rejectsNaming(() => Qwen2Model.load(dir, opts), [file, 'truncated', last]);
  }
  // a tensor whose shape disagrees with config.json (intermediate_size changed)
  {
    const dir = copyModel();
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    cfg.intermediate_size = 160;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    await rejectsNaming(
      () => Qwen2Model.load(dir, opts),
      [path.join(dir, 'model.safetensors'), 'model.layers.0.mlp.gate_proj.weight', '[176, 64]', '[160, 64]'],
    );
  }
  // untied config over a tied checkpoint: lm_head.weight missing
  {
    const dir = copyModel();
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    cfg.tie_word_embeddings = false;
    writeFileSync(cfgFile, JSON.stringify(cfg));
    await rejectsNaming(() => Qwen2Model.load(dir, opts), ['model.safetensors', 'lm_head.weight']);
  }
  // unsupported model_type
  {
    const dir = copyModel();
    const cfgFile = path.join(dir, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    cfg.model_type = 'gpt2';
    writeFileSync(cfgFile, JSON.stringify(cfg));
    await rejectsNaming(() => Qwen2Model.load(dir, opts), [cfgFile, 'model_type', 'gpt2']);
  }
  // an unsupported dtype
  {
    const dir = tempDir('red-model-io-');
    const file = path.join(dir, 'x.safetensors');
    const header = JSON.stringify({ w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } });
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(file, Buffer.concat([prefix, Buffer.from(header), Buffer.alloc(8)]));
    assert.throws(
      () => new SafetensorsFile(file),
      (e: unknown) =>
        e instanceof RedError && e.message.includes(file) && e.message.includes('"w"') && e.message.includes('F64'),
    );
  }
});
