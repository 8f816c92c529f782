// What real OpenAI and vLLM clients send `red serve`, through the official `openai` client and raw
// HTTP: chat without max_tokens, content parts and the developer role, the sampling fields vLLM
// implements (each checked against values derived by hand or by a full forward with the formula
// written out here), int64 seeds, completion logprobs in one distribution, stop_reason, and a 400
// naming the field for everything red does not implement.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { getBackend } from '../../src/engine/index.ts';
import { packSequences } from '../../src/model/batch.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { chatPromptIds, writeTinyTokenizer } from '../model/tiny-tokenizer.ts';
import { tempDir } from '../helpers/tmp.ts';
import { fixture, post, startServer, type Served } from './helpers.ts';

const FIX = fixture('qwen2-tiny-tied');
const golden = new SafetensorsFile(path.join(FIX, 'golden.safetensors'));
const prompt = [...golden.readInt('greedy_prompt')];
const greedy = [...golden.readInt('greedy_output')].slice(prompt.length);
golden.close();
const MAX_LEN = 64;

let s: Served, client: OpenAI, model: Qwen2Model;
before(async () => {
  const dir = tempDir('red-serve-sampling-');
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors'])
    copyFileSync(path.join(FIX, f), path.join(dir, f));
  writeTinyTokenizer(dir, false); // EOS: generation_config's 2 and the tokenizer's <|im_end|>
  s = await startServer(dir, ['--max-len', String(MAX_LEN), '--max-batch', '16', '--served-model-name', 'tiny']);
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  model = await Qwen2Model.load(FIX, { backend: getBackend('auto') });
});
after(async () => {
  await s?.stop();
});

type Choice = { text: string; token_ids: number[]; finish_reason: string; stop_reason: string | number | null };
type Body = Record<string, unknown>;
const letters = Object.fromEntries(Array.from({ length: 26 }, (_, i) => [97 + i, 100]));
const complete = async (body: Body) => {
  const r = await post(`${s.url}/v1/completions`, { model: 'tiny', return_token_ids: true, ...body });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json as { choices: Choice[]; usage: Record<string, number> };
};
/** The model's next-token logits after `ids` (a full forward, not the server's KV-cache decode). */
const nextLogits = (ids: number[]) => {
  const all = model.logits(packSequences([ids]));
  return Array.from(all.subarray(all.length - model.config.vocabSize));
};
const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > xs[best] ? i : best), 0);

test('chat without max_tokens generates up to the room left (vLLM: max_model_len − prompt), not a 400', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny',
    messages: [{ role: 'user', content: 'hi' }],
    temperature: 0,
    ignore_eos: true,
  } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming);
  const promptTokens = chatPromptIds('hi').length;
  assert.equal(r.usage!.prompt_tokens, promptTokens);
  assert.equal(r.usage!.completion_tokens, MAX_LEN - promptTokens);
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('chat content as a list of text parts and the developer role, as current OpenAI clients send them', async () => {
  const args = { model: 'tiny', max_tokens: 5, temperature: 0, return_token_ids: true };
  const parts = (await client.chat.completions.create({
    ...args,
    messages: [
      { role: 'developer', content: 'be brief' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'hi' },
          { type: 'text', text: 'there' },
        ],
      },
    ],
  } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming)) as unknown as { choices: Choice[]; usage: Body };
  const plain = (await client.chat.completions.create({
    ...args,
    messages: [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi\nthere' },
    ],
  } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming)) as unknown as { choices: Choice[]; usage: Body };
  // The same prompt as a system turn and the parts joined with "\n" (vLLM's rule for text parts).
  assert.deepEqual(parts.usage, plain.usage);
  assert.deepEqual(parts.choices[0].token_ids, plain.choices[0].token_ids);
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }] }],
    }),
    (err: InstanceType<typeof OpenAI.APIError>) => err.status === 400 && err.param === 'messages[0].content',
  );
});

test('logit_bias, min_p and min_tokens act as vLLM defines them', async () => {
  // +100 on "a" (byte 97): every greedy token is "a".
  const biased = await complete({ prompt, max_tokens: 6, temperature: 0, logit_bias: { 97: 100 } });
  assert.deepEqual(biased.choices[0].token_ids, [97, 97, 97, 97, 97, 97]);
  assert.equal(biased.choices[0].text, 'aaaaaa');
  // min_p 1 keeps only the most likely token: sampling at T = 1 is then greedy.
  const minP = await complete({ prompt, max_tokens: 8, temperature: 1, seed: 5, min_p: 1 });
  assert.deepEqual(minP.choices[0].token_ids, greedy.slice(0, 8));
  // The greedy first token as a stop id ends the sample at once; with min_tokens 4 it cannot be
  // drawn before 4 tokens are out.
  const stopId = greedy[0];
  const early = await complete({ prompt, max_tokens: 8, temperature: 0, stop_token_ids: [stopId], ignore_eos: true });
  assert.deepEqual(early.choices[0].token_ids, [stopId]);
  const held = await complete({
    prompt,
    max_tokens: 8,
    temperature: 0,
    stop_token_ids: [stopId],
    min_tokens: 4,
    ignore_eos: true,
  });
  const ids = held.choices[0].token_ids;
  assert.ok(ids.length >= 4 && !ids.slice(0, 4).includes(stopId), `min_tokens 4 gave ${ids}`);
});

test('presence, frequency and repetition penalties: greedy equals a full forward with the formulas applied by hand', async () => {
  const [presence, frequency, repetition] = [1.5, 0.7, 1.8];
  const want: number[] = [];
  for (let t = 0; t < 10; t++) {
    const z = nextLogits([...prompt, ...want]);
    // vLLM / transformers: every token of the prompt or the output, logit/r if positive else logit·r
    for (const id of new Set([...prompt, ...want])) z[id] = z[id] > 0 ? z[id] / repetition : z[id] * repetition;
    // OpenAI: logit −= frequency·count + presence·[count > 0], over the output
    for (const id of new Set(want)) z[id] -= frequency * want.filter((x) => x === id).length + presence;
    want.push(argmax(z));
  }
  assert.notDeepEqual(want, greedy.slice(0, 10), 'the penalties must change this greedy output to test anything');
  const r = await complete({
    prompt,
    max_tokens: 10,
    temperature: 0,
    presence_penalty: presence,
    frequency_penalty: frequency,
    repetition_penalty: repetition,
    ignore_eos: true,
  });
  assert.deepEqual(r.choices[0].token_ids, want);
});

test('seed is an int64: 0, 2^32, −2^32 and 2^33 draw different tokens; beyond int64 is a 400 naming seed', async () => {
  const draw = async (seed: string) => {
    const r = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      body: `{"prompt": [${prompt}], "max_tokens": 8, "temperature": 1, "return_token_ids": true, "seed": ${seed}}`,
    });
    return { status: r.status, json: (await r.json()) as { choices: Choice[]; error: { param: string } } };
  };
  const seeds = ['0', String(2 ** 32), String(-(2 ** 32)), String(2 ** 33)];
  const tokens = await Promise.all(seeds.map(async (x) => (await draw(x)).json.choices[0].token_ids.join(',')));
  assert.equal(new Set(tokens).size, 4, `seeds ${seeds} drew ${tokens.join(' | ')}`);
  for (const ok of ['9223372036854775807', '-9223372036854775808']) assert.equal((await draw(ok)).status, 200, ok);
  for (const bad of ['9223372036854775808', '18446744073709551616', '-9223372036854775809', '1.5']) {
    const r = await draw(bad);
    assert.equal(r.status, 400, bad);
    assert.equal(r.json.error.param, 'seed');
  }
});

test('completion logprobs: text_offset, the sampled token among the top ones, one distribution for both', async () => {
  const T = 0.7;
  const zero = await post(`${s.url}/v1/completions`, {
    prompt: 'hello',
    max_tokens: 6,
    temperature: T,
    seed: 3,
    logprobs: 0,
  });
  const lp0 = (zero.json.choices as { logprobs: Body }[])[0].logprobs as {
    tokens: string[];
    token_logprobs: number[];
    top_logprobs: Record<string, number>[];
    text_offset: number[];
  };
  // logprobs: 0 gives the sampled token alone in each top row (OpenAI, vLLM).
  lp0.top_logprobs.forEach((row, t) => assert.deepEqual(row, { [lp0.tokens[t]]: lp0.token_logprobs[t] }));
  let offset = 0;
  lp0.text_offset.forEach((o, t) => {
    assert.equal(o, offset);
    offset += lp0.tokens[t].length;
  });
  // /generate reports ids: its top rows must be softmax(logits / T)'s largest, the sampled one included.
  const r = await post(`${s.url}/generate`, {
    input_ids: prompt,
    sampling_params: { max_new_tokens: 6, temperature: T, sampling_seed: 3 },
    return_logprob: true,
    top_logprobs_num: 3,
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const meta = r.json.meta_info as { output_token_logprobs: number[][]; output_top_logprobs: number[][][] };
  const out = r.json.output_ids as number[];
  let worst = 0;
  out.forEach((id, t) => {
    const z = nextLogits([...prompt, ...out.slice(0, t)]).map((x) => x / T);
    const lse = Math.log(z.reduce((a, x) => a + Math.exp(x - Math.max(...z)), 0)) + Math.max(...z);
    const want = z.map((x, v) => [x - lse, v]).sort((a, b) => b[0] - a[0]);
    const top = meta.output_top_logprobs[t];
    assert.equal(top.length, 3);
    top.forEach(([x, v], i) => {
      assert.equal(v, want[i][1]);
      worst = Math.max(worst, Math.abs(x - want[i][0]));
    });
    worst = Math.max(worst, Math.abs(meta.output_token_logprobs[t][0] - (z[id] - lse)));
  });
  console.log(`top logprobs at T = ${T} vs log softmax(logits/T) of a full forward: max |Δ| ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
  // The completion's top rows hold the sampled token too (up to k + 1 entries), and streams carry
  // them. Top rows are keyed by token text: letters only (+100 on a..z), whose texts differ.
  const three = await post(`${s.url}/v1/completions`, {
    prompt: 'hello',
    max_tokens: 6,
    temperature: T,
    seed: 3,
    logprobs: 3,
    logit_bias: letters,
  });
  const lp3 = (three.json.choices as { logprobs: typeof lp0 }[])[0].logprobs;
  lp3.top_logprobs.forEach((row, t) => {
    assert.ok(Object.keys(row).length >= 3 && Object.keys(row).length <= 4);
    assert.equal(row[lp3.tokens[t]], lp3.token_logprobs[t]);
  });
  const stream = await client.completions.create({
    model: 'tiny',
    prompt: 'hello',
    max_tokens: 6,
    temperature: T,
    seed: 3,
    logprobs: 3,
    stream: true,
  });
  let rows = 0;
  for await (const chunk of stream) for (const c of chunk.choices) rows += c.logprobs?.top_logprobs?.length ?? 0;
  assert.equal(rows, 6);
});

test('stop_reason: null for EOS, the id for a stop_token_ids token, whose text (a newline) is not in the text', async () => {
  const eos = await complete({ prompt: 'hello', max_tokens: 4, temperature: 0, logit_bias: { 2: 100 } });
  assert.deepEqual(eos.choices[0].token_ids, [2]);
  assert.equal(eos.choices[0].finish_reason, 'stop');
  assert.equal(eos.choices[0].stop_reason, null);
  const nl = { prompt: 'hello', max_tokens: 4, temperature: 0, logit_bias: { 10: 100 }, stop_token_ids: [10] };
  const newline = await complete(nl);
  assert.deepEqual(newline.choices[0].token_ids, [10]);
  assert.equal(newline.choices[0].stop_reason, 10);
  assert.equal(newline.choices[0].text, '');
  assert.equal((await complete({ ...nl, include_stop_str_in_output: true })).choices[0].text, '\n');
});

test('stop strings: the text ends before them, the stream never shows their start, include_stop_str_in_output keeps them', async () => {
  // Printable letters only (+100 on a..z), sampled: a text in which to find a stop string.
  const args = { prompt: 'hello', max_tokens: 40, temperature: 1, seed: 11, logit_bias: letters, ignore_eos: true };
  const text = (await complete(args)).choices[0].text;
  const at = [...Array(text.length - 3).keys()].find((i) => i >= 8 && text.indexOf(text.slice(i, i + 3)) === i);
  assert.ok(at !== undefined, `no fresh 3-letter string in ${text}`);
  const stop = text.slice(at, at + 3);
  const cut = await complete({ ...args, stop });
  assert.equal(cut.choices[0].text, text.slice(0, at));
  assert.equal(cut.choices[0].finish_reason, 'stop');
  assert.equal(cut.choices[0].stop_reason, stop);
  const stream = await client.completions.create({ model: 'tiny', ...args, stop, stream: true });
  let streamed = '';
  for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
  assert.equal(streamed, text.slice(0, at));
  assert.equal(
    (await complete({ ...args, stop, include_stop_str_in_output: true })).choices[0].text,
    text.slice(0, at + 3),
  );
});

test('/generate: per-prompt sampling_params lists, and max_new_tokens 0 answers an empty sample', async () => {
  const r = await post(`${s.url}/generate`, {
    input_ids: [prompt, prompt],
    sampling_params: [
      { max_new_tokens: 2, temperature: 0 },
      { max_new_tokens: 5, temperature: 0 },
    ],
    rid: ['a', 'b'],
  });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  const out = r.json as unknown as { output_ids: number[]; meta_info: { id: string } }[];
  assert.deepEqual(
    out.map((x) => x.output_ids),
    [greedy.slice(0, 2), greedy.slice(0, 5)],
  );
  assert.deepEqual(
    out.map((x) => x.meta_info.id),
    ['a', 'b'],
  );
  const zero = await post(`${s.url}/generate`, { input_ids: prompt, sampling_params: { max_new_tokens: 0 } });
  assert.equal(zero.status, 200, JSON.stringify(zero.json));
  assert.deepEqual(zero.json.output_ids, []);
  assert.deepEqual((zero.json.meta_info as Body).finish_reason, { type: 'length', length: 0 });
});

test('fields red does not implement are a 400 naming them, never a silent 200', async () => {
  const cases: [string, Body, string][] = [
    ['/v1/completions', { best_of: 3 }, 'best_of'],
    ['/v1/completions', { use_beam_search: true }, 'use_beam_search'],
    ['/v1/completions', { echo: true }, 'echo'],
    ['/v1/completions', { suffix: 'x' }, 'suffix'],
    ['/v1/completions', { prompt_logprobs: 1 }, 'prompt_logprobs'],
    ['/v1/completions', { response_format: { type: 'json_object' } }, 'response_format'],
    ['/v1/completions', { guided_json: {} }, 'guided_json'],
    ['/v1/completions', { bad_words: ['x'] }, 'bad_words'],
    ['/v1/completions', { allowed_token_ids: [1] }, 'allowed_token_ids'],
    ['/v1/completions', { truncate_prompt_tokens: 2 }, 'truncate_prompt_tokens'],
    ['/v1/completions', { skip_special_tokens: false }, 'skip_special_tokens'],
    [
      '/v1/completions',
      { stream: true, stream_options: { continuous_usage_stats: true } },
      'stream_options.continuous_usage_stats',
    ],
    ['/v1/completions', { stream_options: { include_usage: true } }, 'stream_options'],
    ['/v1/completions', { presence_penalty: 3 }, 'presence_penalty'],
    ['/v1/completions', { logit_bias: { 99999: 1 } }, 'logit_bias'],
    ['/v1/chat/completions', { tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
    ['/v1/chat/completions', { top_logprobs: 2 }, 'top_logprobs'],
    ['/v1/chat/completions', { chat_template: '{{x}}' }, 'chat_template'],
    ['/generate', { sampling_params: { regex: 'a+' } }, 'sampling_params.regex'],
    ['/generate', { logprob_start_len: 0 }, 'logprob_start_len'],
  ];
  for (const [route, extra, param] of cases) {
    const body =
      route === '/generate'
        ? { input_ids: prompt, ...extra }
        : route.includes('chat')
          ? { messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, ...extra }
          : { prompt, max_tokens: 2, ...extra };
    const r = await post(`${s.url}${route}`, body);
    assert.equal(r.status, 400, `${route} ${JSON.stringify(extra)} → ${r.status}`);
    assert.equal((r.json.error as { param: string }).param, param, JSON.stringify(r.json));
  }
});

test('errors carry param; another model is a 404; GET /v1/models/{id}', async () => {
  // A stream refused before its first token is still a 400, not a 200 that breaks off.
  await assert.rejects(
    client.chat.completions.create({
      model: 'tiny',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 63,
      stream: true,
    }),
    (err: InstanceType<typeof OpenAI.APIError>) => err.status === 400 && err.param === 'max_tokens',
  );
  await assert.rejects(
    client.completions.create({ model: 'tiny', prompt: 'x', temperature: 'hot' as unknown as number }),
    (err: InstanceType<typeof OpenAI.APIError>) => err.status === 400 && err.param === 'temperature',
  );
  await assert.rejects(
    client.completions.create({ model: 'gpt-4', prompt: 'x', max_tokens: 2 }),
    (err: InstanceType<typeof OpenAI.APIError>) =>
      err.status === 404 && err.param === 'model' && /gpt-4/.test(err.message),
  );
  assert.equal((await client.models.retrieve('tiny')).id, 'tiny');
  await assert.rejects(
    client.models.retrieve('other'),
    (err: InstanceType<typeof OpenAI.APIError>) => err.status === 404,
  );
});
