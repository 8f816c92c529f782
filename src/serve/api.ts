// The requests `red serve` reads: OpenAI's /v1/completions and /v1/chat/completions as vLLM takes
// them (token-id prompts, return_token_ids, top_k, min_p, penalties, stop_token_ids, …) and
// SGLang's native /generate (input_ids or text, sampling_params, return_logprob, per-item lists).
// Each is read into one normalised Job; a malformed field, or a field red does not implement set
// to anything but its neutral value, is a BadRequest naming it (HTTP 400): never a silent 200.
import type { ChatMessage } from '../model/tokenizer.ts';
import type { TokenPolicy } from '../rollout/sampling.ts';
import type { LogitsProcessing } from './logits.ts';

export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
    /** The request field at fault (OpenAI's error.param). */
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

type Json = Record<string, unknown>;

/** What the server's limits and model allow a request. */
export interface Limits {
  vocabSize: number;
  /** KV positions per sequence: prompt + new tokens must fit. */
  maxLen: number;
  maxTokens: number;
  /** Sequences one request may ask for (prompts × n). */
  maxSequences: number;
}

/** A seed as its int64 two's complement in two uint32 words (vLLM takes any int64). */
export interface Seed {
  lo: number;
  hi: number;
}

/** How the samples of one prompt are drawn. */
export interface Sampling {
  n: number;
  /** null: the room left after the prompt (maxLen − prompt length, at most --max-tokens), vLLM's default for chat. */
  maxTokens: number | null;
  minTokens: number;
  policy: TokenPolicy;
  seed: Seed | null;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  includeStop: boolean;
  logits: LogitsProcessing | null;
  /** null = no logprobs; 0 = the sampled token's only; k = also the k most likely. */
  logprobs: number | null;
}

/** A request normalised: prompts as ids (or chat messages / text to encode) and one Sampling per prompt. */
export interface Job {
  prompts: (number[] | string)[];
  messages?: ChatMessage[];
  sampling: Sampling[];
  returnTokenIds: boolean;
  stream: boolean;
  /** stream_options.include_usage: a last chunk with `choices: []` and the usage. */
  includeUsage: boolean;
  /** The model the request names (null: any). */
  model: string | null;
  /** /generate: meta_info.id per prompt, and token text in the logprob rows. */
  rids?: (string | null)[];
  textInLogprobs?: boolean;
}

const MAX_TOP_LOGPROBS = 20;

function num(b: Json, key: string, dflt: number, ok: (n: number) => boolean, expected: string, at = key): number {
  const v = b[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
    throw new BadRequest(`${at} must be ${expected}, got ${JSON.stringify(v)}`, 400, at);
  return v;
}
const int = (b: Json, key: string, dflt: number, min: number, max = Infinity, at = key) =>
  num(
    b,
    key,
    dflt,
    (n) => Number.isInteger(n) && n >= min && n <= max,
    max === Infinity ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`,
    at,
  );

function bool(b: Json, key: string, dflt = false, at = key): boolean {
  const v = b[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new BadRequest(`${at} must be true or false, got ${JSON.stringify(v)}`, 400, at);
  return v;
}

function stringList(b: Json, key: string, at = key): string[] {
  const v = b[key];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
    throw new BadRequest(`${at} must be a string or a list of strings`, 400, at);
  return (list as string[]).filter((s) => s.length > 0);
}

function idList(v: unknown, key: string, V: number, allowEmpty = false): number[] {
  const param = key.replace(/\[.*$/, '');
  if (!Array.isArray(v) || (v.length === 0 && !allowEmpty))
    throw new BadRequest(`${key} must be a non-empty list of token ids`, 400, param);
  for (const id of v)
    if (!Number.isInteger(id) || id < 0 || id >= V)
      throw new BadRequest(
        `${key}: token id ${JSON.stringify(id)} is outside the vocabulary (0..${V - 1})`,
        400,
        param,
      );
  return v as number[];
}

export function asObject(body: unknown, what = 'the request body'): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BadRequest(`${what} must be a JSON object`);
  return body as Json;
}

const INT64_MIN = -(2n ** 63n),
  INT64_MAX = 2n ** 63n - 1n;

/**
 * A seed field as int64 words. JSON numbers beyond 2^53 lose digits in JSON.parse, so such a
 * seed is read again, exactly, from the body's text (`raw`).
 */
function seedOf(v: unknown, at: string, key: string, raw: string): Seed | null {
  if (v === undefined || v === null) return null;
  const expected = `an integer in [${INT64_MIN}, ${INT64_MAX}]`;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw new BadRequest(`${at} must be ${expected}, got ${JSON.stringify(v)}`, 400, at);
  let s = BigInt(v);
  if (!Number.isSafeInteger(v))
    for (const m of raw.matchAll(new RegExp(`"${key}"\\s*:\\s*(-?\\d+)\\s*[,}]`, 'g')))
      if (Number(m[1]) === v) {
        s = BigInt(m[1]);
        break;
      }
  if (s < INT64_MIN || s > INT64_MAX) throw new BadRequest(`${at} must be ${expected}, got ${s}`, 400, at);
  const u = BigInt.asUintN(64, s);
  return { lo: Number(u & 0xffffffffn), hi: Number(u >> 32n) };
}

function logitBias(v: unknown, at: string, V: number): [number, number][] {
  if (v === undefined || v === null) return [];
  const o = asObject(v, at);
  return Object.entries(o).map(([k, bias]) => {
    const id = Number(k);
    if (!/^\d+$/.test(k) || id >= V)
      throw new BadRequest(
        `${at}: key ${JSON.stringify(k)} is not a token id of the vocabulary (0..${V - 1})`,
        400,
        at,
      );
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100)
      throw new BadRequest(`${at}[${k}] must be a number in [-100, 100], got ${JSON.stringify(bias)}`, 400, at);
    return [id, bias];
  });
}

type Scope = 'openai' | 'completion' | 'chat' | 'sglang' | 'generate';

/**
 * Fields of vLLM's or OpenAI's API ('openai': both endpoints) or SGLang's ('sglang': its
 * sampling_params; 'generate': the /generate body) that red serve does not implement: refused
 * whatever their value …
 */
const REFUSED: Record<Scope, string[]> = {
  openai: [
    'prompt_logprobs',
    'guided_json',
    'guided_regex',
    'guided_choice',
    'guided_grammar',
    'structured_outputs',
    'logits_processors',
    'allowed_token_ids',
    'truncate_prompt_tokens',
  ],
  completion: [],
  chat: ['functions', 'chat_template', 'documents', 'reasoning_effort', 'audio', 'prediction', 'web_search_options'],
  sglang: ['json_schema', 'regex', 'ebnf', 'structural_tag', 'custom_params'],
  generate: [
    'token_ids_logprob',
    'custom_logit_processor',
    'lora_path',
    'image_data',
    'audio_data',
    'video_data',
    'input_embeds',
    'session_params',
  ],
};
/** … or unless they hold the value that means "off". */
const OFF_VALUE: Record<string, [Scope[], unknown]> = {
  use_beam_search: [['openai'], false],
  length_penalty: [['openai'], 1],
  early_stopping: [['openai'], false],
  response_format: [['openai'], { type: 'text' }],
  bad_words: [['openai'], []],
  skip_special_tokens: [['openai', 'sglang'], true],
  spaces_between_special_tokens: [['openai', 'sglang'], true],
  return_tokens_as_token_ids: [['openai'], false],
  echo: [['completion', 'chat'], false],
  suffix: [['completion'], ''],
  tools: [['chat'], []],
  tool_choice: [['chat'], 'none'],
  function_call: [['chat'], 'none'],
  add_generation_prompt: [['chat'], true],
  continue_final_message: [['chat'], false],
  chat_template_kwargs: [['chat'], {}],
  logprob_start_len: [['generate'], -1],
  return_hidden_states: [['generate'], false],
};

function refuseUnsupported(b: Json, scopes: readonly Scope[], where = ''): void {
  const refused = new Set(scopes.flatMap((x) => REFUSED[x]));
  for (const [key, v] of Object.entries(b)) {
    if (v === undefined || v === null) continue;
    const off = Object.hasOwn(OFF_VALUE, key) ? OFF_VALUE[key] : undefined;
    const unsupported =
      refused.has(key) ||
      (off && off[0].some((x) => scopes.includes(x)) && JSON.stringify(v) !== JSON.stringify(off[1]));
    if (unsupported)
      throw new BadRequest(
        `${where}${key} is not supported by red serve (got ${JSON.stringify(v)}); leave it out`,
        400,
        `${where}${key}`,
      );
  }
}

/**
 * The sampling settings of one request body, under vLLM's names (top_k −1 or 0 = off). `names`
 * maps a field to the body's own name where it differs (SGLang's max_new_tokens, …); `at`
 * prefixes the names in errors (sampling_params[2].).
 */
function samplingOf(
  b: Json,
  lim: Limits,
  dflt: { maxTokens: number | null; minMaxTokens: number; logprobs: number | null },
  raw: string,
  names: Partial<Record<string, string>> = {},
  at = '',
): Sampling {
  const name = (k: string) => names[k] ?? k;
  const key = (k: string) => `${at}${name(k)}`;
  const field = (k: string): Json => ({ [k]: b[name(k)] });
  const get = (k: string, f: (o: Json, k: string, a: string) => number) => f(field(k), k, key(k));
  const n = int(field('n'), 'n', 1, 1, lim.maxSequences, key('n'));
  const best = int(field('best_of'), 'best_of', n, 1, Infinity, key('best_of'));
  if (best > n) throw new BadRequest(`${key('best_of')} > n is not supported by red serve`, 400, key('best_of'));
  const maxName =
    b.max_completion_tokens !== undefined && b.max_tokens === undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = b[name(maxName)] ?? null;
  const topK = get('top_k', (o, k, a) => int(o, k, 0, -1, Infinity, a));
  const penalty = (k: string, lo: number, hi: number, dflt: number) =>
    get(k, (o, kk, a) => num(o, kk, dflt, (x) => x >= lo && x <= hi, `a number in [${lo}, ${hi}]`, a));
  const logits: LogitsProcessing = {
    presencePenalty: penalty('presence_penalty', -2, 2, 0),
    frequencyPenalty: penalty('frequency_penalty', -2, 2, 0),
    repetitionPenalty: get('repetition_penalty', (o, k, a) => num(o, k, 1, (x) => x > 0 && x <= 2, 'in (0, 2]', a)),
    logitBias: logitBias(b[name('logit_bias')], key('logit_bias'), lim.vocabSize),
    minP: penalty('min_p', 0, 1, 0),
  };
  const processed =
    logits.presencePenalty !== 0 ||
    logits.frequencyPenalty !== 0 ||
    logits.repetitionPenalty !== 1 ||
    logits.logitBias.length > 0 ||
    logits.minP > 0;
  return {
    n,
    maxTokens:
      maxTokens === null
        ? dflt.maxTokens
        : int({ m: maxTokens }, 'm', 0, dflt.minMaxTokens, lim.maxTokens, key(maxName)),
    minTokens: int(field('min_tokens'), 'min_tokens', 0, 0, lim.maxTokens, key('min_tokens')),
    policy: {
      temperature: get('temperature', (o, k, a) => num(o, k, 1, (t) => t >= 0 && t <= 100, 'a number in [0, 100]', a)),
      topP: get('top_p', (o, k, a) => num(o, k, 1, (p) => p > 0 && p <= 1, 'in (0, 1]', a)),
      topK: topK < 0 ? 0 : topK,
    },
    seed: seedOf(b[name('seed')], key('seed'), name('seed'), raw),
    stop: stringList(field('stop'), 'stop', key('stop')),
    stopTokenIds:
      b[name('stop_token_ids')] === undefined || b[name('stop_token_ids')] === null
        ? []
        : idList(b[name('stop_token_ids')], key('stop_token_ids'), lim.vocabSize, true),
    ignoreEos: bool(field('ignore_eos'), 'ignore_eos', false, key('ignore_eos')),
    includeStop: bool(
      field('include_stop_str_in_output'),
      'include_stop_str_in_output',
      false,
      key('include_stop_str_in_output'),
    ),
    logits: processed ? logits : null,
    logprobs: dflt.logprobs,
  };
}

function streamOptions(b: Json): { stream: boolean; includeUsage: boolean } {
  const stream = bool(b, 'stream');
  if (b.stream_options === undefined || b.stream_options === null) return { stream, includeUsage: false };
  if (!stream) throw new BadRequest('stream_options is only allowed with stream: true', 400, 'stream_options');
  const o = asObject(b.stream_options, 'stream_options');
  if (bool(o, 'continuous_usage_stats', false, 'stream_options.continuous_usage_stats'))
    throw new BadRequest(
      'stream_options.continuous_usage_stats is not supported by red serve; use include_usage',
      400,
      'stream_options.continuous_usage_stats',
    );
  return { stream, includeUsage: bool(o, 'include_usage', false, 'stream_options.include_usage') };
}

function modelOf(b: Json): string | null {
  if (b.model === undefined || b.model === null || b.model === '') return null;
  if (typeof b.model !== 'string') throw new BadRequest('model must be a string', 400, 'model');
  return b.model;
}

function checkSequences(job: Job, lim: Limits): Job {
  const total = job.sampling.reduce((a, s) => a + s.n, 0);
  if (total > lim.maxSequences)
    throw new BadRequest(
      `prompts × n = ${total} exceeds this server's limit of ${lim.maxSequences} sequences per request`,
      400,
      'n',
    );
  return job;
}

/** POST /v1/completions (max_tokens defaults to 16, as in vLLM and OpenAI). */
export function parseCompletion(body: unknown, lim: Limits, raw = ''): Job {
  const b = asObject(body);
  const p = b.prompt;
  let prompts: (number[] | string)[];
  if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number'))
    prompts = [idList(p, 'prompt', lim.vocabSize)];
  else if (Array.isArray(p) && p.length > 0) {
    prompts = p.map((x, i) => (typeof x === 'string' ? x : idList(x, `prompt[${i}]`, lim.vocabSize)));
  } else
    throw new BadRequest('prompt must be a string, a list of token ids, or a non-empty list of either', 400, 'prompt');
  refuseUnsupported(b, ['openai', 'completion']);
  const logprobs = b.logprobs === undefined || b.logprobs === null ? null : int(b, 'logprobs', 0, 0, MAX_TOP_LOGPROBS);
  const sampling = samplingOf(b, lim, { maxTokens: Math.min(16, lim.maxTokens), minMaxTokens: 1, logprobs }, raw);
  return checkSequences(
    {
      prompts,
      sampling: prompts.map(() => sampling),
      returnTokenIds: bool(b, 'return_token_ids'),
      ...streamOptions(b),
      model: modelOf(b),
    },
    lim,
  );
}

/** One chat message: content a string or a list of text parts (joined with "\n", as vLLM does); developer is system. */
function chatMessage(x: unknown, i: number): ChatMessage {
  const at = `messages[${i}]`;
  const o = asObject(x, at);
  const role = o.role === 'developer' ? 'system' : o.role;
  if (role !== 'system' && role !== 'user' && role !== 'assistant')
    throw new BadRequest(
      `${at}.role must be system, developer, user or assistant, got ${JSON.stringify(o.role)}`,
      400,
      `${at}.role`,
    );
  if (typeof o.content === 'string') return { role, content: o.content };
  if (!Array.isArray(o.content))
    throw new BadRequest(`${at}.content must be a string or a list of text parts`, 400, `${at}.content`);
  const texts = o.content.map((part, j) => {
    const q = asObject(part, `${at}.content[${j}]`);
    if (q.type !== 'text' || typeof q.text !== 'string')
      throw new BadRequest(
        `${at}.content[${j}] must be {type: "text", text}; red serve takes text only, got type ${JSON.stringify(q.type)}`,
        400,
        `${at}.content`,
      );
    return q.text;
  });
  return { role, content: texts.join('\n') };
}

/** POST /v1/chat/completions: the messages go through the model's chat template. */
export function parseChat(body: unknown, lim: Limits, raw = ''): Job {
  const b = asObject(body);
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0)
    throw new BadRequest('messages must be a non-empty list of {role, content}', 400, 'messages');
  const messages = m.map(chatMessage);
  refuseUnsupported(b, ['openai', 'chat']);
  const wantLogprobs = bool(b, 'logprobs');
  if (!wantLogprobs && b.top_logprobs !== undefined && b.top_logprobs !== null)
    throw new BadRequest('top_logprobs needs logprobs: true', 400, 'top_logprobs');
  const logprobs = wantLogprobs ? int(b, 'top_logprobs', 0, 0, MAX_TOP_LOGPROBS) : null;
  return checkSequences(
    {
      prompts: [],
      messages,
      sampling: [samplingOf(b, lim, { maxTokens: null, minMaxTokens: 1, logprobs }, raw)],
      returnTokenIds: bool(b, 'return_token_ids'),
      ...streamOptions(b),
      model: modelOf(b),
    },
    lim,
  );
}

/** SGLang's names for the sampling fields that differ from vLLM's. */
const SGLANG_NAMES = {
  max_tokens: 'max_new_tokens',
  max_completion_tokens: 'max_new_tokens',
  min_tokens: 'min_new_tokens',
  seed: 'sampling_seed',
  include_stop_str_in_output: 'no_stop_trim',
};

/** A /generate field given once for all prompts, or as a list with one entry per prompt. */
function perItem(b: Json, key: string, count: number): { value: unknown; at: string }[] {
  const v = b[key];
  if (!Array.isArray(v)) return Array.from({ length: count }, () => ({ value: v, at: key }));
  if (v.length !== count) throw new BadRequest(`${key} has ${v.length} entries for ${count} prompts`, 400, key);
  return v.map((value, i) => ({ value, at: `${key}[${i}]` }));
}

/**
 * POST /generate (SGLang native): input_ids (one list or a list of lists) or text (one or a
 * list); sampling_params, return_logprob, top_logprobs_num and rid once or one per prompt.
 */
export function parseGenerate(body: unknown, lim: Limits, raw = ''): { job: Job; batched: boolean } {
  const b = asObject(body);
  let prompts: (number[] | string)[];
  let batched = false;
  if (b.input_ids !== undefined) {
    const ids = b.input_ids;
    batched = Array.isArray(ids) && Array.isArray(ids[0]);
    prompts = batched
      ? (ids as unknown[]).map((x, i) => idList(x, `input_ids[${i}]`, lim.vocabSize))
      : [idList(ids, 'input_ids', lim.vocabSize)];
  } else if (typeof b.text === 'string') prompts = [b.text];
  else if (Array.isArray(b.text) && b.text.length > 0 && b.text.every((t) => typeof t === 'string')) {
    prompts = b.text as string[];
    batched = true;
  } else
    throw new BadRequest('give input_ids (a list of token ids, or a list of such lists) or text', 400, 'input_ids');
  if (bool(b, 'stream'))
    throw new BadRequest('stream is not supported on /generate; use /v1/completions', 400, 'stream');
  refuseUnsupported(b, ['generate']);
  const count = prompts.length;
  const logprob = perItem(b, 'return_logprob', count);
  const top = perItem(b, 'top_logprobs_num', count);
  const sampling = perItem(b, 'sampling_params', count).map(({ value, at }, i) => {
    const sp = value === undefined || value === null ? {} : asObject(value, at);
    refuseUnsupported(sp, ['sglang'], `${at}.`);
    const wants = bool({ v: logprob[i].value }, 'v', false, logprob[i].at);
    const k = int({ v: top[i].value }, 'v', 0, 0, MAX_TOP_LOGPROBS, top[i].at);
    // SGLang answers max_new_tokens 0 (a prefill only) with an empty sample.
    const dflt = { maxTokens: Math.min(128, lim.maxTokens), minMaxTokens: 0, logprobs: wants ? k : null };
    return samplingOf(sp, lim, dflt, raw, SGLANG_NAMES, `${at}.`);
  });
  const rids = perItem(b, 'rid', count).map(({ value, at }) => {
    if (value !== undefined && value !== null && typeof value !== 'string')
      throw new BadRequest(`${at} must be a string`, 400, at);
    return (value as string | undefined) ?? null;
  });
  const job = checkSequences(
    {
      prompts,
      sampling,
      returnTokenIds: true,
      stream: false,
      includeUsage: false,
      model: null,
      rids,
      textInLogprobs: bool(b, 'return_text_in_logprobs'),
    },
    lim,
  );
  return { job, batched: batched || job.sampling.some((s) => s.n > 1) };
}
