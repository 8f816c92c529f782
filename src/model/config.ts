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

/** Typed reads of config.json's keys, each failing with one line naming the file and key. */
class ConfigReader {
  constructor(
    readonly json: Json,
    readonly file: string,
  ) {}

  int(key: string, fallback?: number): number {
    const v = this.json[key] ?? fallback;
    if (v === undefined || v === null) fail(`${this.file}: missing key "${key}"`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
      fail(`${this.file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`);
    return v;
  }

  num(key: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
      fail(`${this.file}: "${key}" must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }

  tokenId(key: string): number | number[] | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x))) return v as number[];
    fail(`${this.file}: "${key}" must be an integer or a list of integers, got ${JSON.stringify(v)}`);
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.json[key] ?? fallback;
    if (typeof v !== 'boolean') fail(`${this.file}: "${key}" must be true or false`);
    return v;
  }
}

/** Parse config.json's object; `file` names it in errors. */
export function parseConfig(json: unknown, file = 'config.json'): ModelConfig {
  if (!isObject(json)) fail(`${file}: expected a JSON object`);
  const r = new ConfigReader(json, file);
  const mt = json.model_type;
  if (mt === undefined) fail(`${file}: missing key "model_type"`);
  if (mt !== 'qwen2' && mt !== 'llama')
    fail(`${file}: unsupported "model_type" ${JSON.stringify(mt)}; supported: qwen2, llama`);
  const modelType: ModelType = mt;
  const hidden = json.hidden_act ?? 'silu';
  if (hidden !== 'silu') fail(`${file}: unsupported "hidden_act" ${JSON.stringify(hidden)}; only silu`);
  const { hiddenSize, numHeads, numKvHeads, headDim } = attentionShape(r);
  return {
    modelType,
    vocabSize: r.int('vocab_size'),
    hiddenSize,
    intermediateSize: r.int('intermediate_size'),
    numLayers: r.int('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    ropeTheta: ropeThetaOf(r),
    rmsNormEps: r.num('rms_norm_eps', json.rms_norm_eps ?? fail(`${file}: missing key "rms_norm_eps"`)),
    tieWordEmbeddings: r.bool('tie_word_embeddings', false),
    attentionBias: attentionBiasOf(r, modelType),
    maxPositionEmbeddings: r.int('max_position_embeddings', 32768),
    bosTokenId: r.tokenId('bos_token_id') as number | null,
    eosTokenId: r.tokenId('eos_token_id'),
    raw: json,
  };
}

/** Heads and head dimension (head_dim, else hidden_size / num_attention_heads; even, for RoPE). */
function attentionShape(r: ConfigReader): {
  hiddenSize: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
} {
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0)
    fail(`${r.file}: "num_attention_heads" (${numHeads}) must be a multiple of "num_key_value_heads" (${numKvHeads})`);
  let headDim: number;
  if (r.json.head_dim !== undefined && r.json.head_dim !== null) headDim = r.int('head_dim');
  else {
    if (hiddenSize % numHeads !== 0)
      fail(`${r.file}: "hidden_size" (${hiddenSize}) is not divisible by "num_attention_heads" (${numHeads})`);
    headDim = hiddenSize / numHeads;
  }
  if (headDim % 2 !== 0) fail(`${r.file}: head dimension ${headDim} must be even for rotary embeddings`);
  return { hiddenSize, numHeads, numKvHeads, headDim };
}

/** RoPE's θ: transformers 5 nests it in rope_parameters, transformers 4 has rope_theta at the top; default RoPE only. */
function ropeThetaOf(r: ConfigReader): number {
  const { json, file } = r;
  let ropeTheta: number;
  const rp = json.rope_parameters;
  if (isObject(rp) && rp.rope_theta !== undefined) {
    const type = rp.rope_type ?? 'default';
    if (type !== 'default')
      fail(`${file}: unsupported "rope_parameters.rope_type" ${JSON.stringify(type)}; only default`);
    ropeTheta = r.num('rope_parameters.rope_theta', rp.rope_theta);
  } else if (json.rope_theta !== undefined) {
    ropeTheta = r.num('rope_theta', json.rope_theta);
  } else {
    fail(`${file}: missing key "rope_theta" (or "rope_parameters.rope_theta")`);
  }
  const rs = json.rope_scaling;
  if (isObject(rs)) {
    const type = rs.rope_type ?? rs.type;
    if (type !== 'default') fail(`${file}: unsupported "rope_scaling" ${JSON.stringify(rs)}; only default RoPE`);
  }
  return ropeTheta;
}

/** q/k/v biases: always in Qwen2; attention_bias in Llama (MLP biases are not supported). */
function attentionBiasOf(r: ConfigReader, modelType: ModelType): boolean {
  if (modelType === 'qwen2') return true;
  if (r.json.mlp_bias === true) fail(`${r.file}: "mlp_bias": true is not supported`);
  return r.bool('attention_bias', false);
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
