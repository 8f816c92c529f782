// A tiny byte-level BPE tokenizer written from scratch for tests (the fixture models ship
// none): ids 0..255 are the bytes, 256..259 four merges, 260..262 ChatML special tokens.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** GPT-2's reversible byte → printable character map (printable bytes map to themselves). */
function byteChars(): string[] {
  const keep: number[] = [];
  for (let b = 33; b <= 126; b++) keep.push(b);
  for (let b = 161; b <= 172; b++) keep.push(b);
  for (let b = 174; b <= 255; b++) keep.push(b);
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    out[b] = keep.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return out;
}

export const CHATML =
  "{%- for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

export const TINY = { he: 256, ll: 257, hell: 258, spaceW: 259, endoftext: 260, imStart: 261, imEnd: 262, vocab: 263 };

/**
 * The ids of a one-turn ChatML prompt spelled out by hand (<|im_start|>user\nTEXT<|im_end|>\n
 * <|im_start|>assistant\n; plain text is one byte-level token per byte here), independent of the
 * chat template under test.
 */
export function chatPromptIds(user: string): number[] {
  const b = (t: string) => [...Buffer.from(t)];
  return [TINY.imStart, ...b(`user\n${user}`), TINY.imEnd, ...b('\n'), TINY.imStart, ...b('assistant\n')];
}

export function tinyTokenizerFiles(): {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
} {
  const chars = byteChars();
  const vocab: Record<string, number> = {};
  chars.forEach((c, i) => {
    vocab[c] = i;
  });
  const space = chars[32];
  vocab.he = TINY.he;
  vocab.ll = TINY.ll;
  vocab.hell = TINY.hell;
  vocab[space + 'w'] = TINY.spaceW;
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    tokenizerJson: {
      version: '1.0',
      added_tokens: [
        special('<|endoftext|>', TINY.endoftext),
        special('<|im_start|>', TINY.imStart),
        special('<|im_end|>', TINY.imEnd),
      ],
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges: ['h e', 'l l', 'he ll', `${space} w`],
      },
    },
    tokenizerConfig: { eos_token: '<|im_end|>', bos_token: null, pad_token: '<|endoftext|>', chat_template: CHATML },
    generationConfig: { eos_token_id: [TINY.imEnd, TINY.endoftext] },
  };
}

/** Writes tokenizer.json, tokenizer_config.json and generation_config.json into dir. */
export function writeTinyTokenizer(dir: string, withGenerationConfig = true): void {
  mkdirSync(dir, { recursive: true });
  const f = tinyTokenizerFiles();
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(f.tokenizerJson));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(f.tokenizerConfig));
  if (withGenerationConfig) writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify(f.generationConfig));
}
