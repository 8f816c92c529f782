// config.json parsing: both transformers generations, llama's attention_bias, and one clear
// error per bad key; the writer's output parses back to the same shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RedError } from '../../src/util/errors.ts';
import { configToJson, parseConfig } from '../../src/model/config.ts';
import { paramLayout } from '../../src/model/params.ts';
import { fixturePath } from '../helpers/paths.ts';

const fixtureConfig = JSON.parse(readFileSync(fixturePath('qwen2-tiny-untied', 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;

// Qwen2.5-0.5B-Instruct's config.json as transformers 4 wrote it, abridged to the keys that matter.
const qwen25 = {
  architectures: ['Qwen2ForCausalLM'],
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 21,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.43.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};

function throwsNaming(json: unknown, parts: string[]): void {
  assert.throws(
    () => parseConfig(json, 'x/config.json'),
    (e: unknown) => {
      assert.ok(e instanceof RedError, String(e));
      for (const p of ['x/config.json', ...parts]) assert.ok(e.message.includes(p), `"${e.message}" should name ${p}`);
      return true;
    },
  );
}

test('transformers-5 fixture config parses to the shape in the fixture README', () => {
  const c = parseConfig(fixtureConfig);
  assert.deepEqual(
    [
      c.modelType,
      c.vocabSize,
      c.hiddenSize,
      c.intermediateSize,
      c.numLayers,
      c.numHeads,
      c.numKvHeads,
      c.headDim,
      c.ropeTheta,
      c.rmsNormEps,
      c.tieWordEmbeddings,
      c.attentionBias,
    ],
    ['qwen2', 384, 64, 176, 2, 4, 2, 16, 10000, 1e-6, false, true],
  );
});

test('Qwen2.5-0.5B (transformers-4 form) parses and has 494,032,768 parameters', () => {
  const c = parseConfig(qwen25);
  assert.equal(c.ropeTheta, 1e6);
  assert.equal(c.headDim, 64);
  assert.equal(c.eosTokenId, 151645);
  // the published parameter count of Qwen2.5-0.5B: 0.49B, exactly 494,032,768 with tied embeddings
  assert.equal(paramLayout(c).total, 494032768);
});

test('llama: no biases unless attention_bias is true', () => {
  const llama = { ...qwen25, model_type: 'llama' };
  assert.equal(parseConfig(llama).attentionBias, false);
  assert.equal(parseConfig({ ...llama, attention_bias: true }).attentionBias, true);
  const names = paramLayout(parseConfig(llama)).specs.map((s) => s.name);
  assert.ok(!names.some((n) => n.endsWith('.bias')));
});

test('bad configs name the file and the key', () => {
  throwsNaming({ ...qwen25, model_type: 'gpt2' }, ['model_type', 'gpt2']);
  const { hidden_size: _h, ...noHidden } = qwen25;
  throwsNaming(noHidden, ['hidden_size']);
  throwsNaming({ ...qwen25, num_attention_heads: 12 }, ['hidden_size', 'num_attention_heads']);
  throwsNaming({ ...qwen25, num_key_value_heads: 4 }, ['num_key_value_heads']);
  const { rope_theta: _r, ...noRope } = qwen25;
  throwsNaming(noRope, ['rope_theta']);
  throwsNaming({ ...qwen25, vocab_size: 1.5 }, ['vocab_size']);
  throwsNaming({ ...qwen25, rope_scaling: { type: 'yarn', factor: 4 } }, ['rope_scaling']);
  throwsNaming([1, 2], ['JSON object']);
});

test('configToJson keeps the unmodelled keys and parses back to the same config', () => {
  for (const raw of [qwen25, fixtureConfig]) {
    const c = parseConfig(raw);
    const json = configToJson(c);
    for (const k of Object.keys(raw))
      if (k !== 'torch_dtype' && k !== 'dtype') assert.deepEqual(json[k], (raw as Record<string, unknown>)[k], k);
    const back = parseConfig(json);
    assert.deepEqual({ ...back, raw: null }, { ...c, raw: null });
  }
});
