// The answers of `red serve`: OpenAI's completion and chat completion objects as vLLM gives them
// (token_ids with return_token_ids, stop_reason, logprobs with text_offset and the sampled token
// among the top ones), their SSE chunks' pieces, and SGLang's /generate result. Every answer
// names the weight_version its samples were generated with.
import type { Job, Sampling } from './api.ts';
import type { SeqResult } from './scheduler.ts';

type Json = Record<string, unknown>;

/** One finished sample, with what the formatters need. */
export interface Finished {
  index: number;
  /** Which prompt of the job (its ids, and its sampling settings). */
  prompt: number;
  promptIds: number[];
  sampling: Sampling;
  result: SeqResult;
}

export interface Formatting {
  id: string;
  created: number;
  model: string;
  tokenText: (id: number) => string;
}

/** JSON has no −∞: a token outside the sampling set reports vLLM's floor. */
const lp = (x: number): number => Math.max(x, -9999);

export function usage(done: Finished[]): Json {
  const prompts = new Map<number, number>();
  for (const d of done) prompts.set(d.prompt, d.promptIds.length);
  const prompt = [...prompts.values()].reduce((a, b) => a + b, 0);
  const completion = done.reduce((a, d) => a + d.result.ids.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** Tokens [from, to) of a sample: ids, their logprobs and top rows. */
export interface TokenSpan {
  ids: readonly number[];
  logprobs: readonly number[];
  top: readonly (readonly [number, number][])[];
}

/**
 * Completion logprobs of a span of tokens: OpenAI's legacy shape, top_logprobs holding the k most
 * likely and the sampled token (up to k + 1 entries; the sampled one alone with logprobs 0), and
 * text_offset counting from `offset` characters.
 */
export function completionLogprobs(s: TokenSpan, k: number, f: Formatting, offset = 0): Json {
  const tokens = s.ids.map(f.tokenText);
  const textOffset: number[] = [];
  for (const t of tokens) {
    textOffset.push(offset);
    offset += t.length;
  }
  return {
    tokens,
    token_logprobs: s.logprobs.map(lp),
    top_logprobs: s.ids.map((id, t) => {
      const row: Json = {};
      for (const [tid, x] of k > 0 ? (s.top[t] ?? []) : []) row[f.tokenText(tid)] = lp(x);
      row[tokens[t]] ??= lp(s.logprobs[t]);
      return row;
    }),
    text_offset: textOffset,
  };
}

const bytesOf = (text: string): number[] => [...Buffer.from(text, 'utf8')];

/** Chat logprobs of a span: each token with its bytes and its k most likely alternatives. */
export function chatLogprobs(s: TokenSpan, f: Formatting): Json {
  return {
    content: s.ids.map((id, t) => {
      const token = f.tokenText(id);
      return {
        token,
        logprob: lp(s.logprobs[t]),
        bytes: bytesOf(token),
        top_logprobs: (s.top[t] ?? []).map(([tid, x]) => {
          const text = f.tokenText(tid);
          return { token: text, logprob: lp(x), bytes: bytesOf(text) };
        }),
      };
    }),
  };
}

/** vLLM's stop_reason: the stop string or a requested stop token id; null for EOS and length. */
export function stopReason(d: Finished): string | number | null {
  const m = d.result.matched;
  if (m === undefined || d.result.finishReason !== 'stop') return null;
  return typeof m === 'string' || d.sampling.stopTokenIds.includes(m) ? m : null;
}

/** An OpenAI response object around one choice per sample (`choice`: its endpoint's fields). */
function response(object: string, done: Finished[], f: Formatting, choice: (d: Finished) => Json): Json {
  return {
    id: f.id,
    object,
    created: f.created,
    model: f.model,
    choices: done.map((d) => ({
      index: d.index,
      ...choice(d),
      finish_reason: d.result.finishReason,
      stop_reason: stopReason(d),
    })),
    usage: usage(done),
    weight_version: done[0]?.result.weightVersion,
  };
}

export function completionResponse(job: Job, done: Finished[], f: Formatting): Json {
  return response('text_completion', done, f, (d) => ({
    text: d.result.text ?? '',
    ...(job.returnTokenIds ? { prompt_token_ids: d.promptIds, token_ids: d.result.ids } : {}),
    logprobs: d.sampling.logprobs === null ? null : completionLogprobs(d.result, d.sampling.logprobs, f),
  }));
}

export function chatResponse(job: Job, done: Finished[], f: Formatting): Json {
  return response('chat.completion', done, f, (d) => ({
    message: { role: 'assistant', content: d.result.text ?? '' },
    ...(job.returnTokenIds ? { token_ids: d.result.ids } : {}),
    logprobs: d.sampling.logprobs === null ? null : chatLogprobs(d.result, f),
  }));
}

/** SGLang's /generate answer for one sample. */
export function generateResult(job: Job, d: Finished, f: Formatting): Json {
  const r = d.result;
  const finish: Json = { type: r.finishReason };
  if (r.finishReason === 'length') finish.length = r.ids.length;
  if (r.matched !== undefined && r.finishReason === 'stop') finish.matched = r.matched;
  const row = (x: number, id: number) => [lp(x), id, job.textInLogprobs ? f.tokenText(id) : null];
  const k = d.sampling.logprobs;
  return {
    text: r.text ?? '',
    output_ids: r.ids,
    meta_info: {
      id: job.rids?.[d.prompt] ?? `${f.id}-${d.index}`,
      finish_reason: finish,
      prompt_tokens: d.promptIds.length,
      completion_tokens: r.ids.length,
      ...(k !== null ? { output_token_logprobs: r.ids.map((id, t) => row(r.logprobs[t], id)) } : {}),
      ...(k !== null && k > 0 ? { output_top_logprobs: r.top.map((top) => top.map(([id, x]) => row(x, id))) } : {}),
      weight_version: r.weightVersion,
    },
  };
}
