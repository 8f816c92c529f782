import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { qwenBoxedPrompt } from '../../src/data/dataset.ts';
import { allProblems } from '../../src/data/task/problems.ts';
import { shortSolution, teacherTrace } from '../../src/data/task/teacher.ts';
import {
  BUILTIN_IDS,
  BUILTIN_VOCAB_SIZE,
  builtinTokenizerFiles,
  renderChatML,
  writeBuiltinTokenizer,
} from '../../src/data/task/tokenizer.ts';
import { loadTokenizer } from '../../src/model/tokenizer.ts';
import { Rng } from '../../src/util/rng.ts';
import { tempDir } from '../helpers/tmp.ts';

const files = builtinTokenizerFiles();
const hf = new HfTokenizer(files.tokenizerJson, files.tokenizerConfig);
const model = files.tokenizerJson.model as { vocab: Record<string, number>; merges: [string, string][] };

/** Slow textbook BPE over one byte-level word: repeatedly merge the adjacent pair of lowest rank. */
function referenceBpe(word: string): string[] {
  const rank = new Map(model.merges.map(([a, b], i) => [`${a} ${b}`, i]));
  let parts = Array.from(word);
  for (;;) {
    let best = -1;
    let bestRank = Infinity;
    for (let i = 0; i + 1 < parts.length; i++) {
      const r = rank.get(`${parts[i]} ${parts[i + 1]}`);
      if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
    }
    if (best < 0) return parts;
    parts = [...parts.slice(0, best), parts[best] + parts[best + 1], ...parts.slice(best + 2)];
  }
}

/** GPT-2 byte map written out again from its definition (printable Latin-1 kept, others shifted to 256+). */
function gpt2Char(byte: number): string {
  const kept = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (kept(byte)) return String.fromCharCode(byte);
  let n = 0;
  for (let b = 0; b < byte; b++) if (!kept(b)) n++;
  return String.fromCharCode(256 + n);
}

function taskTexts(): string[] {
  const rng = new Rng(2);
  return allProblems('test', 21).flatMap((p) => [
    renderChatML(qwenBoxedPrompt(p.text), true) + shortSolution(p) + '<|im_end|>',
    teacherTrace(p, rng),
  ]);
}

test('vocabulary: 512 ids, byte alphabet first, ChatML and think tags as single added tokens', () => {
  assert.equal(hf.get_vocab(true).size, BUILTIN_VOCAB_SIZE);
  assert.equal(Math.max(...hf.get_vocab(true).values()), BUILTIN_VOCAB_SIZE - 1);
  for (let b = 0; b < 256; b++) assert.equal(model.vocab[gpt2Char(b)], b);
  assert.deepEqual(hf.encode('<|endoftext|><|im_start|><|im_end|><think></think>').ids, [
    BUILTIN_IDS.endoftext,
    BUILTIN_IDS.imStart,
    BUILTIN_IDS.imEnd,
    BUILTIN_IDS.thinkOpen,
    BUILTIN_IDS.thinkClose,
  ]);
  // Digits are split one by one (Qwen2's \p{N} rule), so arithmetic sees each digit.
  assert.deepEqual(hf.tokenize('12345'), ['1', '2', '3', '4', '5']);
});

test('@huggingface/tokenizers encodes task text exactly as textbook BPE and decodes it back byte for byte', () => {
  let tokens = 0;
  let chars = 0;
  for (const text of taskTexts()) {
    const ids = hf.encode(text).ids;
    assert.equal(hf.decode(ids, { clean_up_tokenization_spaces: false }), text);
    // Reference: split out added tokens, Qwen2 regex, GPT-2 byte map, rank-ordered merges.
    const expected: number[] = [];
    for (const part of text.split(/(<\|im_start\|>|<\|im_end\|>|<\|endoftext\|>|<think>|<\/think>)/)) {
      if (part === '') continue;
      const added = (files.tokenizerJson.added_tokens as { content: string; id: number }[]).find(
        (t) => t.content === part,
      );
      if (added) {
        expected.push(added.id);
        continue;
      }
      const words =
        part.match(/[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu) ?? [];
      for (const w of words) {
        const byteWord = Array.from(Buffer.from(w, 'utf8'), gpt2Char).join('');
        for (const piece of referenceBpe(byteWord)) expected.push(model.vocab[piece]);
      }
    }
    assert.deepEqual(ids, expected);
    tokens += ids.length;
    chars += text.length;
  }
  // Learned merges must compress task text well below one token per character.
  assert.ok(tokens < 0.5 * chars, `${tokens} tokens for ${chars} chars`);
});

test('any text round-trips (byte-level coverage), and the project loader reads the written folder', () => {
  for (const text of [
    'héllo wörld 日本語 😀',
    'tab\tand\r\nwindows lines',
    '  leading and trailing  ',
    "it's we'LL",
    '\\frac{1}{2} $x^2$',
  ]) {
    assert.equal(hf.decode(hf.encode(text).ids, { clean_up_tokenization_spaces: false }), text);
  }
  const dir = tempDir('red-tok-');
  writeBuiltinTokenizer(dir);
  const tok = loadTokenizer(dir, BUILTIN_VOCAB_SIZE);
  assert.deepEqual(tok.eosIds, [BUILTIN_IDS.imEnd]);
  const messages = qwenBoxedPrompt('Compute 2+3.');
  const rendered = tok.applyChatTemplate(messages, true);
  assert.equal(
    rendered,
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nCompute 2+3.\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n<|im_start|>assistant\n',
  );
  assert.equal(renderChatML(messages, true), rendered);
  // Without a system turn the template adds Qwen's default one.
  assert.equal(
    tok.applyChatTemplate([{ role: 'user', content: 'hi' }], false),
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n',
  );
  // decode(skip special) drops ChatML markers but keeps the think tags, which the verifier needs.
  const ids = tok.encode('<|im_start|>assistant\n<think>\nok\n</think> \\boxed{5}<|im_end|>');
  assert.equal(tok.decode(ids), 'assistant\n<think>\nok\n</think> \\boxed{5}');
});
