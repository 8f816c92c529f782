// The built-in task's model: the tiny Qwen2 shapes its base model is pretrained in, and their
// config.json (vocabulary and special ids from the built-in tokenizer).
import { BUILTIN_IDS } from './tokenizer.ts';

/** The tiny model's shape (vocab comes from the built-in tokenizer). */
export interface TinyModelShape {
  hidden: number; // C
  layers: number; // L
  heads: number; // NH
  kvHeads: number; // NKV
  intermediate: number; // MLP width
}

/** ~0.62M parameters: the default base model. */
export const TINY_MODEL: TinyModelShape = { hidden: 128, layers: 3, heads: 4, kvHeads: 2, intermediate: 352 };
/** ~26k parameters: for --quick runs and tests on the reference backend. */
export const QUICK_MODEL: TinyModelShape = { hidden: 32, layers: 1, heads: 2, kvHeads: 1, intermediate: 64 };

/** The config.json object of the tiny model. */
export function tinyConfigJson(shape: TinyModelShape, vocabSize: number): Record<string, unknown> {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    vocab_size: vocabSize,
    hidden_size: shape.hidden,
    intermediate_size: shape.intermediate,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    num_key_value_heads: shape.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: 2048,
    rope_theta: 10000.0,
    rms_norm_eps: 1e-6,
    initializer_range: 0.02,
    tie_word_embeddings: true,
    use_cache: true,
    use_sliding_window: false,
    sliding_window: null,
    max_window_layers: shape.layers,
    attention_dropout: 0.0,
    bos_token_id: BUILTIN_IDS.endoftext,
    eos_token_id: BUILTIN_IDS.imEnd,
    torch_dtype: 'float32',
  };
}
