// The request and response shapes of `red serve`: OpenAI's /v1/completions and
// /v1/chat/completions as vLLM answers them (token_ids with return_token_ids, logprobs), and
// SGLang's native /generate (input_ids, sampling_params, return_logprob, meta_info). Requests are
// read into one normalised Job; any malformed field is a BadRequest naming it (HTTP 400).
import type { ChatMessage } from '../model/tokenizer.ts';
import type { TokenPolicy } from '../rollout/sampling.ts';
import type { SeqResult } from './scheduler.ts';

export class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
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

/** A request normalised: prompts as ids (or chat messages / text to encode) and sampling settings. */
export interface Job {
  prompts: (number[] | string)[];
  messages?: ChatMessage[];
  n: number;
  maxTokens: number;
  policy: TokenPolicy;
  seed: number | null;
  stop: string[];
  stopTokenIds: number[];
  ignoreEos: boolean;
  /** null = no logprobs; 0 = the sampled token's only; k = also the k most likely. */
  logprobs: number | null;
  returnTokenIds: boolean;
  stream: boolean;
}

const MAX_TOP_LOGPROBS = 20;

function num(body: Json, key: string, dflt: number, ok: (n: number) => boolean, expected: string): number {
  const v = body[key];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v))
    throw new BadRequest(`${key} must be ${expected}, got ${JSON.stringify(v)}`);
  return v;
}
const int = (body: Json, key: string, dflt: number, min: number, max = Infinity) =>
  num(
    body,
    key,
    dflt,
    (n) => Number.isInteger(n) && n >= min && n <= max,
    max === Infinity ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`,
  );

function bool(body: Json, key: string): boolean {
  const v = body[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new BadRequest(`${key} must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

function stringList(body: Json, key: string): string[] {
  const v = body[key];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string'))
    throw new BadRequest(`${key} must be a string or a list of strings`);
  return (list as string[]).filter((s) => s.length > 0);
}

function idList(v: unknown, key: string, V: number, allowEmpty = false): number[] {
  if (!Array.isArray(v) || (v.length === 0 && !allowEmpty))
    throw new BadRequest(`${key} must be a non-empty list of token ids`);
  for (const id of v)
    if (!Number.isInteger(id) || id < 0 || id >= V)
      throw new BadRequest(`${key}: token id ${JSON.stringify(id)} is outside the vocabulary (0..${V - 1})`);
  return v as number[];
}

export function asObject(body: unknown): Json {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new BadRequest('the request body must be a JSON object');
  return body as Json;
}

/** Sampling settings shared by the OpenAI endpoints (vLLM's names: top_k −1 or 0 = off). */
function samplingFields(
  b: Json,
  lim: Limits,
  defaultMaxTokens: number,
): Omit<Job, 'prompts' | 'logprobs' | 'returnTokenIds' | 'stream'> {
  const maxKey =
    b.max_completion_tokens !== undefined && b.max_tokens === undefined ? 'max_completion_tokens' : 'max_tokens';
  const topK = int(b, 'top_k', 0, -1);
  return {
    n: int(b, 'n', 1, 1, lim.maxSequences),
    maxTokens: int(b, maxKey, Math.min(defaultMaxTokens, lim.maxTokens), 1, lim.maxTokens),
    policy: {
      temperature: num(b, 'temperature', 1, (t) => t >= 0 && t <= 100, 'a number in [0, 100]'),
      topP: num(b, 'top_p', 1, (p) => p > 0 && p <= 1, 'in (0, 1]'),
      topK: topK < 0 ? 0 : topK,
    },
    seed: b.seed === undefined || b.seed === null ? null : int(b, 'seed', 0, Number.MIN_SAFE_INTEGER),
    stop: stringList(b, 'stop'),
    stopTokenIds:
      b.stop_token_ids === undefined || b.stop_token_ids === null
        ? []
        : idList(b.stop_token_ids, 'stop_token_ids', lim.vocabSize, true),
    ignoreEos: bool(b, 'ignore_eos'),
  };
}

/** POST /v1/completions. */
export function parseCompletion(body: unknown, lim: Limits): Job {
  const b = asObject(body);
  const p = b.prompt;
  let prompts: (number[] | string)[];
  if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'number'))
    prompts = [idList(p, 'prompt', lim.vocabSize)];
  else if (Array.isArray(p) && p.length > 0) {
    prompts = p.map((x, i) => {
      if (typeof x === 'string') return x;
      return idList(x, `prompt[${i}]`, lim.vocabSize);
    });
  } else throw new BadRequest('prompt must be a string, a list of token ids, or a non-empty list of either');
  if (bool(b, 'echo')) throw new BadRequest('echo is not supported');
  const logprobs = b.logprobs === undefined || b.logprobs === null ? null : int(b, 'logprobs', 0, 0, MAX_TOP_LOGPROBS);
  const job: Job = {
    prompts,
    ...samplingFields(b, lim, 16),
    logprobs,
    returnTokenIds: bool(b, 'return_token_ids'),
    stream: bool(b, 'stream'),
  };
  if (prompts.length * job.n > lim.maxSequences)
    throw new BadRequest(
      `prompts × n = ${prompts.length * job.n} exceeds this server's limit of ${lim.maxSequences} sequences per request`,
    );
  return job;
}

/** POST /v1/chat/completions: the messages go through the model's chat template. */
export function parseChat(body: unknown, lim: Limits): Job {
  const b = asObject(body);
  const m = b.messages;
  if (!Array.isArray(m) || m.length === 0) throw new BadRequest('messages must be a non-empty list of {role, content}');
  const messages = m.map((x, i): ChatMessage => {
    const o = x as Json;
    if (
      typeof o !== 'object' ||
      o === null ||
      !['system', 'user', 'assistant'].includes(o.role as string) ||
      typeof o.content !== 'string'
    ) {
      throw new BadRequest(`messages[${i}] must be {role: system|user|assistant, content: string}`);
    }
    return { role: o.role as ChatMessage['role'], content: o.content };
  });
  const logprobs = bool(b, 'logprobs') ? int(b, 'top_logprobs', 0, 0, MAX_TOP_LOGPROBS) : null;
  return {
    prompts: [],
    messages,
    ...samplingFields(b, lim, lim.maxTokens),
    logprobs,
    returnTokenIds: bool(b, 'return_token_ids'),
    stream: bool(b, 'stream'),
  };
}

/** POST /generate (SGLang native): input_ids (one list or a list of lists) or text, sampling_params. */
export function parseGenerate(body: unknown, lim: Limits): { job: Job; batched: boolean } {
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
  } else throw new BadRequest('give input_ids (a list of token ids, or a list of such lists) or text');
  if (bool(b, 'stream')) throw new BadRequest('stream is not supported on /generate; use /v1/completions');
  const sp = b.sampling_params === undefined ? {} : asObject(b.sampling_params);
  const s = samplingFields({ ...sp, max_tokens: sp.max_new_tokens, seed: sp.sampling_seed ?? sp.seed }, lim, 128);
  const job: Job = {
    prompts,
    ...s,
    logprobs: bool(b, 'return_logprob') ? 0 : null,
    returnTokenIds: true,
    stream: false,
  };
  if (prompts.length * job.n > lim.maxSequences)
    throw new BadRequest(
      `prompts × n = ${prompts.length * job.n} exceeds this server's limit of ${lim.maxSequences} sequences per request`,
    );
  return { job, batched: batched || job.n > 1 };
}

/** One finished sample, with what the formatters need. */
export interface Finished {
  index: number;
  promptIds: number[];
  result: SeqResult;
}

export interface Formatting {
  id: string;
  created: number;
  model: string;
  tokenText: (id: number) => string;
}

function usage(done: Finished[]): Json {
  const prompts = new Map<number[], number>();
  for (const d of done) prompts.set(d.promptIds, d.promptIds.length);
  const prompt = [...prompts.values()].reduce((a, b) => a + b, 0);
  const completion = done.reduce((a, d) => a + d.result.ids.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

export function completionLogprobs(r: SeqResult, f: Formatting, withTop: boolean): Json {
  return {
    tokens: r.ids.map(f.tokenText),
    token_logprobs: r.logprobs,
    top_logprobs: withTop ? r.top.map((row) => Object.fromEntries(row.map(([id, lp]) => [f.tokenText(id), lp]))) : null,
  };
}

export function completionResponse(job: Job, done: Finished[], f: Formatting): Json {
  return {
    id: f.id,
    object: 'text_completion',
    created: f.created,
    model: f.model,
    choices: done.map((d) => ({
      index: d.index,
      text: d.result.text ?? '',
      ...(job.returnTokenIds ? { prompt_token_ids: d.promptIds, token_ids: d.result.ids } : {}),
      logprobs: job.logprobs === null ? null : completionLogprobs(d.result, f, job.logprobs > 0),
      finish_reason: d.result.finishReason,
      stop_reason: d.result.matched ?? null,
    })),
    usage: usage(done),
    weight_version: done[0]?.result.weightVersion,
  };
}

export function chatLogprobs(r: SeqResult, f: Formatting): Json {
  return {
    content: r.ids.map((id, t) => ({
      token: f.tokenText(id),
      logprob: r.logprobs[t],
      bytes: null,
      top_logprobs: (r.top[t] ?? []).map(([tid, lp]) => ({ token: f.tokenText(tid), logprob: lp, bytes: null })),
    })),
  };
}

export function chatResponse(job: Job, done: Finished[], f: Formatting): Json {
  return {
    id: f.id,
    object: 'chat.completion',
    created: f.created,
    model: f.model,
    choices: done.map((d) => ({
      index: d.index,
      message: { role: 'assistant', content: d.result.text ?? '' },
      ...(job.returnTokenIds ? { token_ids: d.result.ids } : {}),
      logprobs: job.logprobs === null ? null : chatLogprobs(d.result, f),
      finish_reason: d.result.finishReason,
    })),
    usage: usage(done),
    weight_version: done[0]?.result.weightVersion,
  };
}

/** SGLang's /generate answer for one sample. */
export function generateResult(job: Job, d: Finished, f: Formatting): Json {
  const r = d.result;
  const finish: Json = { type: r.finishReason };
  if (r.finishReason === 'length') finish.length = r.ids.length;
  if (r.matched !== undefined) finish.matched = r.matched;
  return {
    text: r.text ?? '',
    output_ids: r.ids,
    meta_info: {
      id: `${f.id}-${d.index}`,
      finish_reason: finish,
      prompt_tokens: d.promptIds.length,
      completion_tokens: r.ids.length,
      ...(job.logprobs !== null ? { output_token_logprobs: r.ids.map((id, t) => [r.logprobs[t], id, null]) } : {}),
      weight_version: r.weightVersion,
    },
  };
}
