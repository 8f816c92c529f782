// `red serve` as a real child process on loopback: greedy completions equal transformers' and
// `red generate`'s (through the official openai client), seeded samples equal `red generate`'s,
// chat goes through the template, after /update_weights_from_disk the served logprobs are the new
// checkpoint's `red score`, 50 concurrent clients get what the in-process sampler gives for their
// prompts alone, and malformed requests get a 400 without taking the server down.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import OpenAI from 'openai';
import { getBackend } from '../../src/engine/index.ts';
import { Qwen2Model } from '../../src/model/qwen2.ts';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { generate } from '../../src/rollout/sampler.ts';
import { Rng } from '../../src/util/rng.ts';
import { chatPromptIds, writeTinyTokenizer } from '../model/tiny-tokenizer.ts';
import { fixture, post, red, startServer, type Served } from './helpers.ts';
import { tempDir } from '../helpers/tmp.ts';

const FIX = fixture('qwen2-tiny-tied');
let server: Served;
let client: OpenAI;
const golden = new SafetensorsFile(path.join(FIX, 'golden.safetensors'));
const greedyPrompt = [...golden.readInt('greedy_prompt')];
const greedyOutput = [...golden.readInt('greedy_output')];
golden.close();

before(async () => {
  server = await startServer(FIX, ['--max-batch', '16']);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused' });
});
after(async () => {
  await server?.stop();
});

/** Fields red serve (like vLLM) adds to a completion choice. */
type Choice = OpenAI.Completions.CompletionChoice & { token_ids?: number[] };

test('greedy completions through the openai client equal transformers and red generate', async () => {
  const r = await client.completions.create({
    model: 'qwen2-tiny-tied',
    prompt: greedyPrompt,
    max_tokens: 20,
    temperature: 0,
    logprobs: 0,
    return_token_ids: true,
  } as OpenAI.Completions.CompletionCreateParamsNonStreaming);
  const choice = r.choices[0] as Choice;
  assert.deepEqual(choice.token_ids, greedyOutput.slice(greedyPrompt.length));
  assert.equal(choice.finish_reason, 'length');
  assert.equal((r as unknown as { weight_version: string }).weight_version, '0');
  const g = red([
    'generate',
    '--model',
    FIX,
    '--prompt-ids',
    greedyPrompt.join(','),
    '--temperature',
    '0',
    '--max-tokens',
    '20',
    '--json',
  ]);
  assert.equal(g.code, 0, g.stderr);
  const local = JSON.parse(g.stdout.trim()) as { ids: number[]; logprobs: number[] };
  assert.deepEqual(choice.token_ids, local.ids);
  const worst = Math.max(...local.logprobs.map((lp, t) => Math.abs(lp - choice.logprobs!.token_logprobs![t])));
  assert.ok(worst < 1e-4, `served logprobs differ from red generate's by ${worst}`);
});

test('seeded sampling equals red generate with the same seed (n = 3)', async () => {
  const { status, json } = await post(`${server.url}/v1/completions`, {
    prompt: greedyPrompt,
    n: 3,
    max_tokens: 12,
    temperature: 1,
    top_p: 0.9,
    seed: 7,
    return_token_ids: true,
  });
  assert.equal(status, 200);
  const g = red([
    'generate',
    '--model',
    FIX,
    '--prompt-ids',
    greedyPrompt.join(','),
    '--n',
    '3',
    '--temperature',
    '1',
    '--top-p',
    '0.9',
    '--seed',
    '7',
    '--max-tokens',
    '12',
    '--json',
  ]);
  assert.equal(g.code, 0, g.stderr);
  const local = g.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { index: number; ids: number[] })
    .sort((a, b) => a.index - b.index);
  assert.deepEqual(
    (json.choices as Choice[]).map((c) => c.token_ids),
    local.map((s) => s.ids),
  );
});

test('chat completions go through the chat template; streaming gives the same text', async () => {
  const dir = tempDir('red-serve-chat-');
  for (const f of ['config.json', 'generation_config.json', 'model.safetensors'])
    copyFileSync(path.join(FIX, f), path.join(dir, f));
  writeTinyTokenizer(dir, false);
  const s = await startServer(dir, ['--served-model-name', 'x']);
  try {
    const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused' });
    const r = await c.chat.completions.create({
      model: 'x',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 6,
      temperature: 0,
    });
    const ids = chatPromptIds('hi');
    const g = red([
      'generate',
      '--model',
      dir,
      '--prompt-ids',
      ids.join(','),
      '--temperature',
      '0',
      '--max-tokens',
      '6',
      '--json',
    ]);
    assert.equal(g.code, 0, g.stderr);
    assert.equal(r.choices[0].message.content, (JSON.parse(g.stdout.trim()) as { text: string }).text);
    const stream = await c.chat.completions.create({
      model: 'x',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 6,
      temperature: 0,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
    assert.equal(text, r.choices[0].message.content);
    const models = await c.models.list();
    assert.equal(models.data.length, 1);
  } finally {
    await s.stop();
  }
});

test("after update_weights_from_disk the served logprobs are the new checkpoint's red score", async () => {
  const dir = tempDir('red-serve-upd-');
  const other = path.join(dir, 'other');
  const m = await Qwen2Model.load(FIX);
  const rng = new Rng(5);
  m.writeWeights(m.readParams().map((x) => x + 0.05 * rng.normal()));
  m.save(other);
  const s = await startServer(FIX);
  try {
    const ask = () =>
      post(`${s.url}/v1/completions`, {
        prompt: greedyPrompt,
        max_tokens: 10,
        temperature: 1,
        seed: 3,
        logprobs: 0,
        return_token_ids: true,
      });
    const before = await ask();
    const up = await post(`${s.url}/update_weights_from_disk`, { model_path: other, weight_version: '1' });
    assert.equal(up.status, 200, JSON.stringify(up.json));
    assert.equal(up.json.success, true);
    assert.equal(up.json.weight_version, '1');
    const bad = await post(`${s.url}/update_weights_from_disk`, { model_path: path.join(dir, 'missing') });
    assert.equal(bad.json.success, false);
    const { json } = await ask();
    assert.equal(json.weight_version, '1');
    const c = (json.choices as Choice[])[0];
    const ids = c.token_ids!;
    const sc = red(['score', '--model', other, '--ids', [...greedyPrompt, ...ids].join(','), '--json']);
    assert.equal(sc.code, 0, sc.stderr);
    const want = (JSON.parse(sc.stdout) as { next_logprob: number[] }).next_logprob.slice(greedyPrompt.length - 1);
    const got = c.logprobs!.token_logprobs!;
    const worst = Math.max(...want.map((w, t) => Math.abs(w - got[t]!)));
    console.log(`served logprobs vs red score of the new checkpoint: max |Δ| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `served logprobs differ from red score by ${worst}`);
    const old = (before.json.choices as Choice[])[0].logprobs!.token_logprobs!;
    assert.ok(
      old.some((lp, t) => Math.abs(lp! - got[t]!) > 1e-3),
      'the weights did not change what was served',
    );
  } finally {
    await s.stop();
  }
});

test('50 concurrent clients each get what the sampler gives their prompt alone', async () => {
  const model = await Qwen2Model.load(FIX, { backend: getBackend('auto') });
  const prompts = Array.from({ length: 50 }, (_, i) =>
    greedyPrompt.slice(0, 2 + (i % 9)).map((id) => (id + i) % model.config.vocabSize),
  );
  const want = await generate(model, prompts, {
    temperature: 1,
    maxTokens: 16,
    promptSeeds: prompts.map((_, i) => 100 + i),
    eosIds: [],
  });
  const answers = await Promise.all(
    prompts.map((p, i) =>
      post(`${server.url}/v1/completions`, {
        prompt: p,
        max_tokens: 16,
        temperature: 1,
        seed: 100 + i,
        ignore_eos: true,
        return_token_ids: true,
      }),
    ),
  );
  answers.forEach((a, i) => {
    assert.equal(a.status, 200);
    assert.deepEqual((a.json.choices as Choice[])[0].token_ids, want[i][0].ids, `client ${i}`);
  });
});

test('malformed requests get a 400 JSON error and the server stays up', async () => {
  const u = server.url;
  const cases: [string, unknown, RegExp][] = [
    ['/v1/completions', '{not json', /not valid JSON/],
    ['/v1/completions', [1, 2], /JSON object/],
    ['/v1/completions', {}, /prompt must be/],
    ['/v1/completions', { prompt: [1, 99999] }, /outside the vocabulary/],
    ['/v1/completions', { prompt: [1, 2], max_tokens: 10_000 }, /max_tokens must be an integer in \[1, 511\]/],
    ['/v1/completions', { prompt: [1, 2], temperature: 'hot' }, /temperature must be/],
    ['/v1/completions', { prompt: 'text' }, /no tokenizer\.json/],
    ['/v1/chat/completions', { messages: [{ role: 'wizard', content: 'x' }] }, /messages\[0\]/],
    ['/generate', { input_ids: [[1], 'x'] }, /input_ids\[1\]/],
    ['/update_weights_from_disk', {}, /model_path/],
  ];
  for (const [route, body, re] of cases) {
    const r = await post(`${u}${route}`, body);
    assert.equal(r.status, 400, `${route} ${JSON.stringify(body)} → ${r.status}`);
    assert.match((r.json.error as { message: string }).message, re);
  }
  const big = await fetch(`${u}/v1/completions`, { method: 'POST', body: 'x'.repeat(17 * 1024 * 1024) })
    .then((r) => r.status)
    .catch(() => 413);
  assert.equal(big, 413);
  assert.equal((await fetch(`${u}/nope`)).status, 404);
  const health = (await fetch(`${u}/health`).then((r) => r.json())) as { status: string };
  assert.equal(health.status, 'ok');
});

test('SGLang /generate answers output_ids, logprobs and the weight version', async () => {
  const { status, json } = await post(`${server.url}/generate`, {
    input_ids: greedyPrompt,
    sampling_params: { max_new_tokens: 20, temperature: 0 },
    return_logprob: true,
  });
  assert.equal(status, 200);
  assert.deepEqual(json.output_ids, greedyOutput.slice(greedyPrompt.length));
  const meta = json.meta_info as {
    output_token_logprobs: [number, number, null][];
    weight_version: string;
    finish_reason: { type: string };
  };
  assert.equal(meta.output_token_logprobs.length, 20);
  assert.equal(meta.weight_version, '0');
  assert.equal(meta.finish_reason.type, 'length');
});

test('pause_generation holds requests until continue_generation; abort_all_requests ends running ones', async () => {
  const u = server.url;
  const health = () =>
    fetch(`${u}/health`).then((r) => r.json()) as Promise<{
      paused: boolean;
      waiting: number;
      running: number;
      weight_version: string;
    }>;
  assert.equal((await post(`${u}/pause_generation`, {})).json.success, true);
  let done = false;
  const held = post(`${u}/v1/completions`, {
    prompt: greedyPrompt,
    max_tokens: 5,
    temperature: 0,
    return_token_ids: true,
  }).then((r) => {
    done = true;
    return r;
  });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(done, false);
  const h = await health();
  assert.equal(h.paused, true);
  assert.equal(h.waiting, 1);
  assert.equal((await post(`${u}/continue_generation`, {})).json.success, true);
  assert.deepEqual(
    ((await held).json.choices as Choice[])[0].token_ids,
    greedyOutput.slice(greedyPrompt.length, greedyPrompt.length + 5),
  );

  // A long request, caught while it runs. On a busy machine it can finish before a health check
  // sees it (the loop used to wait for that forever): then it is sent again, a few times at most.
  let long: ReturnType<typeof post> | undefined;
  for (let attempt = 1; attempt <= 5 && !long; attempt++) {
    let settled = false;
    const req = post(`${u}/v1/completions`, {
      prompt: [1, 2, 3],
      max_tokens: 500,
      ignore_eos: true,
      return_token_ids: true,
    }).finally(() => (settled = true));
    while (!settled && (await health()).running === 0) await new Promise((r) => setTimeout(r, 2));
    if (!settled) long = req;
    else await req;
  }
  assert.ok(long, 'a 500-token request finished 5 times before /health saw it running');
  const before = (await health()).weight_version;
  const up = await post(`${u}/update_weights_from_disk`, {
    model_path: FIX,
    abort_all_requests: true,
    weight_version: `${before}+1`,
  });
  assert.equal(up.json.success, true);
  const c = ((await long).json.choices as Choice[])[0];
  assert.equal(c.finish_reason, 'abort');
  assert.ok(c.token_ids!.length < 500);
  assert.notEqual((await health()).weight_version, before);
});
