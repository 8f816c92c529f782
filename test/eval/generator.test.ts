// The evaluator over the real sampler: a tiny random Qwen2 on the reference backend and a
// byte-level tokenizer with a ChatML template, so prompts, stop ids and per-problem seeds are
// exercised end to end in well under a second of decoding.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { referenceBackend } from '../../src/engine/reference.ts';
import { loadBenchmark, resolveBenchmark } from '../../src/eval/benchmarks.ts';
import { encodePrompt, samplerGenerator, stopRule } from '../../src/eval/generator.ts';
import { buildPrompt, samplingFor, type AnswerVerifier, type Generator } from '../../src/eval/protocol.ts';
import { runEval, type EvalJob } from '../../src/eval/run.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { Tokenizer } from '../../src/model/tokenizer.ts';
import { byteToChar } from '../../src/data/task/tokenizer.ts';
import { lastBoxed } from '../../src/reward/extract.ts';

const ROOT = mkdtempSync(path.join(tmpdir(), 'red-eval-test-'));
after(() => rmSync(ROOT, { recursive: true, force: true }));

const CHATML =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** 256 byte tokens (no merges) + <|endoftext|> 256, <|im_start|> 257, <|im_end|> 258. */
function byteTokenizer(): Tokenizer {
  const vocab: Record<string, number> = {};
  byteToChar().forEach((c, i) => (vocab[c] = i));
  const added = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((content, i) => ({ id: 256 + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return new Tokenizer({
    tokenizerJson: {
      version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null,
      pre_tokenizer: byteLevel, post_processor: byteLevel, decoder: byteLevel,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
    },
    tokenizerConfig: { chat_template: CHATML, eos_token: '<|im_end|>', pad_token: '<|endoftext|>' },
  });
}

function tinyModel(): Qwen2Model {
  const config = parseConfig({
    model_type: 'qwen2', hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    vocab_size: 260, max_position_embeddings: 1024, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: true,
  });
  return Qwen2Model.init(config, 7, { backend: referenceBackend });
}

const exactVerifier: AnswerVerifier = {
  async verify(gold, response) {
    const extracted = lastBoxed(response) ?? undefined;
    return { equal: extracted !== undefined && extracted === gold, ...(extracted !== undefined ? { extracted } : {}) };
  },
};

test('prompts go through the chat template and both end markers stop generation', () => {
  const tok = byteTokenizer();
  assert.deepEqual(stopRule(tok, ['<|im_end|>', '<|endoftext|>']), { eosIds: [256, 258], stopStrings: [] });
  assert.deepEqual(stopRule(tok, ['<|endoftext|>', '\n\nProblem:']), { eosIds: [256, 258], stopStrings: ['\n\nProblem:'] });
  const ids = encodePrompt(tok, buildPrompt('qwen-boxed', 'What is 2+2?'));
  assert.equal(
    tok.decode(ids, false),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is 2+2?\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(ids[0], 257);
});

test('with the real sampler, an interrupted and resumed run writes the same samples as one uninterrupted run', async () => {
  const data = mkdtempSync(path.join(ROOT, 'red-evalgen-'));
  const file = path.join(data, 'q.jsonl');
  writeFileSync(file, ['1+1', '2+3', '4*2', '9-5', '6/3'].map((p, i) => JSON.stringify({ problem: `Compute ${p}.`, answer: String(i) })).join('\n') + '\n');
  const spec = resolveBenchmark(`q=${file}`, undefined, 3);
  const job = async (): Promise<EvalJob[]> => [{ spec, file, problems: await loadBenchmark(spec, undefined), sampling: samplingFor(spec, { maxTokens: 12, temperature: 1 }) }];
  const model = tinyModel();
  const tokenizer = byteTokenizer();

  const whole = path.join(data, 'whole');
  let calls = 0;
  const real = samplerGenerator({ model, tokenizer, maxBatch: 4 });
  const counting: Generator = (r, o) => {
    calls++;
    return real(r, o);
  };
  const a = await runEval({ outDir: whole, model: 'tiny', jobs: await job(), generate: counting, verifier: exactVerifier, prompt: 'qwen-boxed', seed: 5, chunkSamples: 1000, chart: false });
  assert.equal(calls, 1, 'all 15 samples in one continuous-batching call');
  assert.equal(a.benchmarks[0].scored, 5);

  const parts = path.join(data, 'parts');
  let n = 0;
  const crashing: Generator = (r, o) => (++n === 2 ? Promise.reject(new Error('killed')) : real(r, o));
  await assert.rejects(runEval({ outDir: parts, model: 'tiny', jobs: await job(), generate: crashing, verifier: exactVerifier, prompt: 'qwen-boxed', seed: 5, chunkSamples: 6, chart: false }), /killed/);
  await runEval({ outDir: parts, model: 'tiny', jobs: await job(), generate: real, verifier: exactVerifier, prompt: 'qwen-boxed', seed: 5, chunkSamples: 3, chart: false });

  const wholeLines = readFileSync(path.join(whole, 'samples.jsonl'), 'utf8');
  assert.equal(readFileSync(path.join(parts, 'samples.jsonl'), 'utf8'), wholeLines);
  for (const line of wholeLines.trim().split('\n')) {
    const rec = JSON.parse(line) as { samples: { text: string; tokens: number; finish: string }[] };
    assert.equal(rec.samples.length, 3);
    for (const s of rec.samples) {
      assert.ok(s.tokens >= 1 && s.tokens <= 12);
      assert.ok(s.finish === 'stop' || s.finish === 'length');
      if (s.finish === 'length') assert.equal(s.tokens, 12);
    }
    // A random model's three samples of one prompt differ (own RNG stream per sample).
    assert.ok(new Set(rec.samples.map((s) => s.text)).size > 1);
  }
});
