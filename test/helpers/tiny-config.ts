// A tiny Qwen2 config.json (as transformers writes it), so the tests spell out only the sizes
// they care about. Without initializer_range, init uses transformers' 0.02.
export type Qwen2ConfigJson = Record<string, unknown>;

export function tinyQwen2Config(overrides: Qwen2ConfigJson = {}): Qwen2ConfigJson {
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    hidden_act: 'silu',
    vocab_size: 64,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    max_position_embeddings: 1024,
    tie_word_embeddings: true,
    ...overrides,
  };
}
