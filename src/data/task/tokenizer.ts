// The tiny model's tokenizer, in the Hugging Face format of Qwen2: byte-level BPE (GPT-2 byte
// alphabet, Qwen2's pre-tokenizer regex that splits digits one by one) with merges learned here
// from built-in task text, ChatML special tokens and <think>/</think>. ~512 ids keeps the
// embedding and the softmax cheap, and byte-level coverage means any text still encodes.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeJsonAtomic } from '../../util/fs.ts';
import { Rng } from '../../util/rng.ts';
import { qwenBoxedPrompt, type ChatMessage } from '../dataset.ts';
import { generateProblems } from './problems.ts';
import { shortSolution, teacherTrace } from './teacher.ts';

/** Qwen2's pre-tokenizer pattern (as in its tokenizer.json), written for JS: `(?i:…)` spelled out. */
export const QWEN2_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const SPLIT_JS =
  /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** Added tokens after the BPE vocabulary, in id order; `special` ones are dropped by decode(skip_special_tokens). */
export const ADDED_TOKENS = [
  { content: '<|endoftext|>', special: true },
  { content: '<|im_start|>', special: true },
  { content: '<|im_end|>', special: true },
  { content: '<think>', special: false },
  { content: '</think>', special: false },
] as const;

/** Total ids: 256 bytes + merges + added tokens. */
export const BUILTIN_VOCAB_SIZE = 512;

/** ChatML as Qwen2.5 writes it (minus tool calls): a default system turn when none is given. */
export const CHATML_TEMPLATE =
  '{%- for message in messages %}' +
  "{%- if loop.first and message['role'] != 'system' %}{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}" +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}" +
  '{%- endfor %}' +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** ChatML rendered directly (what CHATML_TEMPLATE produces), for building training text without Jinja. */
export function renderChatML(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
  let out =
    messages.length > 0 && messages[0].role !== 'system'
      ? '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
      : '';
  for (const m of messages) out += `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`;
  return addGenerationPrompt ? out + '<|im_start|>assistant\n' : out;
}

/** GPT-2's reversible map from bytes to printable characters (printable Latin-1 bytes map to themselves). */
export function byteToChar(): string[] {
  const out: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCodePoint(printable ? b : 256 + shifted++);
  }
  return out;
}

const BYTE_CHARS = byteToChar();
const ADDED_SPLIT = new RegExp(`(${ADDED_TOKENS.map((t) => t.content.replace(/[|/<>]/g, (c) => `\\${c}`)).join('|')})`);

/** Pre-tokenised words of `text` as raw strings, added tokens removed (they never enter BPE). */
function rawWords(text: string): string[] {
  const words: string[] = [];
  for (const part of text.split(ADDED_SPLIT)) {
    if (part === '' || ADDED_TOKENS.some((t) => t.content === part)) continue;
    for (const m of part.matchAll(SPLIT_JS)) words.push(m[0]);
  }
  return words;
}

const encoder = new TextEncoder();
function byteLevel(word: string): string {
  return Array.from(encoder.encode(word), (b) => BYTE_CHARS[b]).join('');
}

/** Pre-tokenised words of `text` in byte-level characters, added tokens removed. */
export function preTokenize(text: string): string[] {
  return rawWords(text).map(byteLevel);
}

/**
 * Learns `numMerges` BPE merges from `texts` (most frequent adjacent pair first, ties broken by
 * the pair's text so the result never depends on iteration order). Returns merges in rank order.
 */
export function learnMerges(texts: readonly string[], numMerges: number): [string, string][] {
  const counts = new Map<string, number>();
  for (const text of texts) for (const w of rawWords(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  // Each distinct word as its current symbol sequence (byte-level characters), with its frequency.
  const words = [...counts].map(([w, n]) => ({ symbols: Array.from(byteLevel(w)), n }));
  const merges: [string, string][] = [];
  while (merges.length < numMerges) {
    const pairs = new Map<string, number>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]}\u0000${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best: string | null = null;
    let bestCount = 1; // a pair seen once is not worth an id
    for (const [key, n] of pairs) {
      if (n > bestCount || (n === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = n;
      }
    }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const w of words) {
      const s = w.symbols;
      const merged: string[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          merged.push(a + b);
          i++;
        } else merged.push(s[i]);
      }
      w.symbols = merged;
    }
  }
  return merges;
}

/** Text the merges are learned from: chat-formatted prompts, short solutions and teacher traces. */
function tokenizerCorpus(): string[] {
  const problems = generateProblems({ seed: 0, count: 3000, split: 'train', repeats: true });
  const rng = new Rng(1);
  return problems.map((p) => {
    const prompt = renderChatML(qwenBoxedPrompt(p.text), true);
    return `${prompt}${shortSolution(p)}<|im_end|>\n${teacherTrace(p, rng)}<|im_end|>`;
  });
}

export interface TokenizerFilesJson {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
}

let cached: TokenizerFilesJson | null = null;

/** The built-in tokenizer's tokenizer.json and tokenizer_config.json (deterministic: fixed corpus). */
export function builtinTokenizerFiles(): TokenizerFilesJson {
  if (cached) return structuredClone(cached);
  const merges = learnMerges(tokenizerCorpus(), BUILTIN_VOCAB_SIZE - 256 - ADDED_TOKENS.length);
  const vocab: Record<string, number> = {};
  BYTE_CHARS.forEach((c, i) => (vocab[c] = i));
  for (const [a, b] of merges) vocab[a + b] = Object.keys(vocab).length;
  // When the corpus runs out of pairs worth merging, unused ids fill the gap so the added tokens
  // keep their fixed ids (BUILTIN_IDS) and the vocabulary its size (no merge ever produces these).
  for (let k = 0; Object.keys(vocab).length < BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length; k++)
    vocab[`<|unused_${k}|>`] = Object.keys(vocab).length;
  const firstAdded = Object.keys(vocab).length;
  const addedTokens = ADDED_TOKENS.map((t, i) => ({
    id: firstAdded + i,
    content: t.content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: t.special,
  }));
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: QWEN2_SPLIT_PATTERN }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
  const addedTokensDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: t.special,
    };
  }
  const tokenizerConfig = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<|im_start|>', '<|im_end|>'],
    bos_token: null,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 4096,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  cached = { tokenizerJson, tokenizerConfig };
  return structuredClone(cached);
}

/** Ids of the added tokens in the built-in tokenizer. */
export const BUILTIN_IDS = {
  endoftext: BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length,
  imStart: BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length + 1,
  imEnd: BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length + 2,
  thinkOpen: BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length + 3,
  thinkClose: BUILTIN_VOCAB_SIZE - ADDED_TOKENS.length + 4,
} as const;

/** Writes tokenizer.json and tokenizer_config.json into `dir`. */
export function writeBuiltinTokenizer(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const files = builtinTokenizerFiles();
  writeJsonAtomic(path.join(dir, 'tokenizer.json'), files.tokenizerJson);
  writeJsonAtomic(path.join(dir, 'tokenizer_config.json'), files.tokenizerConfig);
}
