// The model's shape, read from a Hugging Face config.json (Qwen2 and Llama decoders), and the
// writer that turns it back into a config.json transformers loads. Both the transformers-4
// form (`rope_theta` at the top level) and the transformers-5 form (`rope_parameters`) are read.
import { readFileSync, existsSync } from 'node:fs';
import { fail } from '../util/errors.ts';

export type ModelType = 'qwen2' | 'llama';

export interface ModelConfig {
  modelType: ModelType;
  vocabSize: number; // V
  hiddenSize: number; // C
  intermediateSize: number; // the MLP's hidden width
  numLayers: number; // L
  numHeads: number; // NH
  numKvHeads: number; // NKV
  headDim: number; // HD (NH·HD need not equal C when head_dim is given explicitly)
  ropeTheta: number;
  rmsNormEps: number;
  tieWordEmbeddings: boolean; // lm_head shares model.embed_tokens.weight
  attentionBias: boolean; // q/k/v projections carry a bias (always for qwen2)
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /** The config.json this came from, so a re-saved model keeps every key we do not model. */
  raw: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Parse config.json's object; `file` names it in errors. */
export function parseConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (!isObject(json)) fail(`${file}: expected a JSON object`);
  const int = (key: string, fallback?: number): number => {
    const v = json[key] ?? fallback;
    if (v === undefined || v === null) fail(`${file}: missing key "${key}"`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      fail(`${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  };
  const num = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      fail(`${file}: "${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const tokenId = (key: string): number | number[] | null => {
    const v = json[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return v as number[];
    fail(`${file}: "${key}" must be an integer or a list of integers, got ${JSON.stringify(v)}`);
  };

  const mt = json.model_type;
  if (mt === undefined) fail(`${file}: missing key "model_type"`);
  if (mt !== 'qwen2' && mt !== 'llama')
    fail(`${file}: unsupported "model_type" ${JSON.stringify(mt)}; supported: qwen2, llama`);
  const modelType: ModelType = mt;

  const hidden = json.hidden_act ?? 'silu';
  if (hidden !== 'silu') fail(`${file}: unsupported "hidden_act" ${JSON.stringify(hidden)}; only silu`);

  const hiddenSize = int('hidden_size');
  const numHeads = int('num_attention_heads');
  const numKvHeads = int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0)
    fail(`${file}: "num_attention_heads" (${numHeads}) must be a multiple of "num_key_value_heads" (${numKvHeads})`);
  let headDim: number;
  if (json.head_dim !== undefined && json.head_dim !== null) headDim = int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0)
      fail(`${file}: "hidden_size" (${hiddenSize}) is not divisible by "num_attention_heads" (${numHeads})`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) fail(`${file}: head dimension ${headDim} must be even for rotary embeddings`);

  // RoPE: transformers 5 nests it in rope_parameters, transformers 4 has rope_theta at the top.
  let ropeTheta: number;
  const rp = json.rope_parameters;
  if (isObject(rp) && rp.rope_theta !== undefined) {
    const type = rp.rope_type ?? 'default';
    if (type !== 'default')
      fail(`${file}: unsupported "rope_parameters.rope_type" ${JSON.stringify(type)}; only default`);
    ropeTheta = num('rope_parameters.rope_theta', rp.rope_theta);
  } else if (json.rope_theta !== undefined) {
    ropeTheta = num('rope_theta', json.rope_theta);
  } else {
    fail(`${file}: missing key "rope_theta" (or "rope_parameters.rope_theta")`);
  }
  const rs = json.rope_scaling;
  if (isObject(rs)) {
    const type = rs.rope_type ?? rs.type;
    if (type !== 'default') fail(`${file}: unsupported "rope_scaling" ${JSON.stringify(rs)}; only default RoPE`);
  }

  let attentionBias: boolean;
  if (modelType === 'qwen2') attentionBias = true;
  else {
    const ab = json.attention_bias ?? false;
    if (typeof ab !== 'boolean') fail(`${file}: "attention_bias" must be true or false`);
    attentionBias = ab;
    if (json.mlp_bias === true) fail(`${file}: "mlp_bias": true is not supported`);
  }

  const tie = json.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') fail(`${file}: "tie_word_embeddings" must be true or false`);

  return {
    modelType,
    vocabSize: int('vocab_size'),
    hiddenSize,
    intermediateSize: int('intermediate_size'),
    numLayers: int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    ropeTheta,
    rmsNormEps: num('rms_norm_eps', json.rms_norm_eps ?? fail(`${file}: missing key "rms_norm_eps"`)),
    tieWordEmbeddings: tie,
    attentionBias,
    maxPositionEmbeddings: int('max_position_embeddings', 32768),
    bosTokenId: tokenId('bos_token_id') as number | null,
    eosTokenId: tokenId('eos_token_id'),
    raw: json,
  };
}

/** Read and parse `<dir>/config.json`. */
export function loadConfig(file: string): ModelConfig {
  if (!existsSync(file)) fail(`${file}: file not found`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    fail(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseConfig(json, file);
}

/**
 * The config.json object for `config`: the original keys are kept and the modelled ones
 * overwritten, so what we do not model (chat-specific ids, sliding-window flags) survives.
 * The RoPE theta is written in the form the original used (transformers-5 `rope_parameters`
 * when present, else the top-level `rope_theta` every transformers version reads).
 */
export function configToJson(config: ModelConfig, weightsDtype: 'float32' | 'bfloat16' = 'float32'): Json {
  const out: Json = { ...config.raw };
  if (out.architectures === undefined)
    out.architectures = [config.modelType === 'qwen2' ? 'Qwen2ForCausalLM' : 'LlamaForCausalLM'];
  out.model_type = config.modelType;
  out.vocab_size = config.vocabSize;
  out.hidden_size = config.hiddenSize;
  out.intermediate_size = config.intermediateSize;
  out.num_hidden_layers = config.numLayers;
  out.num_attention_heads = config.numHeads;
  out.num_key_value_heads = config.numKvHeads;
  if (config.headDim !== config.hiddenSize / config.numHeads || out.head_dim !== undefined)
    out.head_dim = config.headDim;
  out.rms_norm_eps = config.rmsNormEps;
  out.tie_word_embeddings = config.tieWordEmbeddings;
  out.max_position_embeddings = config.maxPositionEmbeddings;
  out.hidden_act = 'silu';
  if (config.modelType === 'llama') out.attention_bias = config.attentionBias;
  if (isObject(out.rope_parameters))
    out.rope_parameters = { ...out.rope_parameters, rope_theta: config.ropeTheta, rope_type: 'default' };
  else out.rope_theta = config.ropeTheta;
  if (config.bosTokenId !== null) out.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== null) out.eos_token_id = config.eosTokenId;
  // the dtype of the weights written beside it
  if ('torch_dtype' in out) out.torch_dtype = weightsDtype;
  if ('dtype' in out) out.dtype = weightsDtype;
  if (out.torch_dtype === undefined && out.dtype === undefined) out.torch_dtype = weightsDtype;
  return out;
}
