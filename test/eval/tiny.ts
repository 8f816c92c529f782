// Test fixtures for the evaluator: a byte-level tokenizer (256 byte tokens, no merges, three
// ChatML special tokens) and a tiny random Qwen2 on the reference backend, so the real sampler
// runs in milliseconds.
import { byteToChar } from '../../src/data/task/tokenizer.ts';
import { referenceBackend } from '../../src/engine/reference.ts';
import { parseConfig } from '../../src/model/config.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { Tokenizer, type TokenizerFiles } from '../../src/model/tokenizer.ts';
import { tinyQwen2Config } from '../helpers/tiny-config.ts';

const CHATML =
  "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/** 256 byte tokens (no merges) + <|endoftext|> 256, <|im_start|> 257, <|im_end|> 258. */
export function byteTokenizerFiles(): TokenizerFiles {
  const vocab: Record<string, number> = {};
  byteToChar().forEach((c, i) => (vocab[c] = i));
  const added = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'].map((content, i) => ({
    id: 256 + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    tokenizerJson: {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: byteLevel,
      post_processor: byteLevel,
      decoder: byteLevel,
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
        merges: [],
      },
    },
    tokenizerConfig: { chat_template: CHATML, eos_token: '<|im_end|>', pad_token: '<|endoftext|>' },
  };
}

export function byteTokenizer(): Tokenizer {
  return new Tokenizer(byteTokenizerFiles());
}

export function tinyModel(): Qwen2Model {
  const config = parseConfig(
    tinyQwen2Config({ hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, vocab_size: 260 }),
  );
  return Qwen2Model.init(config, 7, { backend: referenceBackend });
}
