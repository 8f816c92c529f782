// `red serve` as a server real clients and trainers lean on, over HTTP on loopback: the usage
// chunk of a stream, SGLang's pause modes and weight_version rule, a weight folder whose config
// changed, Expect: 100-continue, a client dropping mid-body, and --logprobs-mode.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import OpenAI from 'openai';
import { SafetensorsFile } from '../../src/model/safetensors.ts';
import { tempDir } from '../helpers/tmp.ts';
import { fixture, post, red, startServer, type Served } from './helpers.ts';

const FIX = fixture('qwen2-tiny-tied');
const golden = new SafetensorsFile(path.join(FIX, 'golden.safetensors'));
const prompt = [...golden.readInt('greedy_prompt')];
const greedy = [...golden.readInt('greedy_output')].slice(prompt.length);
golden.close();

let s: Served;
before(async () => {
  s = await startServer(FIX, ['--max-batch', '8', '--max-body-mb', '1']);
});
after(async () => {
  await s?.stop();
});

type Choice = { token_ids: number[]; finish_reason: string };
const health = async (u: string) =>
  (await fetch(`${u}/health`).then((r) => r.json())) as { weight_version: string; running: number; waiting: number };

/** A long request, resolved once the server reports it running (it may finish first on a busy machine: retried). */
async function running(u: string): Promise<{ answer: Promise<{ json: Record<string, unknown> }> }> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    let settled = false;
    const req = post(`${u}/v1/completions`, { prompt, max_tokens: 400, ignore_eos: true, return_token_ids: true });
    void req.finally(() => (settled = true));
    while (!settled && (await health(u)).running === 0) await new Promise((r) => setTimeout(r, 2));
    if (!settled) return { answer: req };
    await req;
  }
  throw new Error('a 400-token request finished 5 times before /health saw it running');
}

test('stream_options.include_usage: a last chunk with no choices and the usage of the whole request', async () => {
  const c = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused' });
  const args = { model: 'qwen2-tiny-tied', prompt, max_tokens: 7, temperature: 1, seed: 4, n: 2, ignore_eos: true };
  const whole = await c.completions.create(args);
  const chunks = [];
  for await (const chunk of await c.completions.create({
    ...args,
    stream: true,
    stream_options: { include_usage: true },
  }))
    chunks.push(chunk);
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, whole.usage);
  assert.deepEqual(whole.usage, {
    prompt_tokens: prompt.length,
    completion_tokens: 14,
    total_tokens: prompt.length + 14,
  });
  for (const chunk of chunks.slice(0, -1)) assert.equal(chunk.usage, null);
});

test("weight updates keep the weight_version unless one is given (SGLang's rule)", async () => {
  const before = (await health(s.url)).weight_version;
  const same = await post(`${s.url}/update_weights_from_disk`, { model_path: FIX });
  assert.equal(same.json.success, true);
  assert.equal(same.json.weight_version, before);
  assert.equal((await health(s.url)).weight_version, before);
  const named = await post(`${s.url}/update_weights_from_disk`, { model_path: FIX, weight_version: 'step-7' });
  assert.equal(named.json.weight_version, 'step-7');
  assert.equal((await health(s.url)).weight_version, 'step-7');
});

test('a weight folder whose config.json changed is refused, naming the key; the old weights keep serving', async () => {
  const dir = tempDir('red-serve-config-');
  for (const f of ['generation_config.json', 'model.safetensors']) copyFileSync(path.join(FIX, f), path.join(dir, f));
  const config = JSON.parse(readFileSync(path.join(FIX, 'config.json'), 'utf8')) as {
    rope_parameters: { rope_theta: number };
  };
  config.rope_parameters.rope_theta = 20000;
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  const before = (await health(s.url)).weight_version;
  const r = await post(`${s.url}/update_weights_from_disk`, { model_path: dir, weight_version: 'changed' });
  assert.equal(r.status, 400);
  assert.equal(r.json.success, false);
  assert.match(r.json.message as string, /rope_theta \(10000 → 20000\)/);
  assert.equal((await health(s.url)).weight_version, before);
  const g = await post(`${s.url}/v1/completions`, { prompt, max_tokens: 6, temperature: 0, return_token_ids: true });
  assert.deepEqual((g.json.choices as Choice[])[0].token_ids, greedy.slice(0, 6));
});

test(
  "pause_generation: SGLang's default mode aborts what runs; in_place holds it; retract is refused",
  { timeout: 60_000 },
  async () => {
    const aborted = (await running(s.url)).answer;
    assert.equal((await post(`${s.url}/pause_generation`, {})).json.success, true);
    const a = ((await aborted).json.choices as Choice[])[0];
    assert.equal(a.finish_reason, 'abort');
    assert.ok(a.token_ids.length < 400);
    assert.equal((await post(`${s.url}/continue_generation`, {})).json.success, true);

    const held = (await running(s.url)).answer;
    let done = false;
    void held.then(() => (done = true));
    assert.equal((await post(`${s.url}/pause_generation`, { mode: 'in_place' })).json.success, true);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(done, false);
    assert.equal((await health(s.url)).running, 1);
    assert.equal((await post(`${s.url}/continue_generation`, {})).json.success, true);
    const h = ((await held).json.choices as Choice[])[0];
    assert.equal(h.finish_reason, 'length');
    assert.equal(h.token_ids.length, 400);

    const retract = await post(`${s.url}/pause_generation`, { mode: 'retract' });
    assert.equal(retract.status, 400);
    assert.equal((retract.json.error as { param: string }).param, 'mode');
  },
);

test('Expect: 100-continue with an over-size body: a 413 before the body is sent, no reset', async () => {
  const { hostname, port } = new URL(s.url);
  const outcome = await new Promise<{ status: number; continued: boolean; body: string }>((resolve, reject) => {
    let continued = false;
    const req = request({
      host: hostname,
      port,
      method: 'POST',
      path: '/v1/completions',
      headers: { 'content-type': 'application/json', 'content-length': 20 * 1024 * 1024, expect: '100-continue' },
    });
    req.on('continue', () => {
      continued = true;
      req.end(Buffer.alloc(20 * 1024 * 1024, 32));
    });
    req.on('response', (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, continued, body });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.equal(outcome.continued, false);
  assert.equal(outcome.status, 413);
  assert.match(outcome.body, /at most 1048576/);
});

test('a client that drops mid-body leaves no stack in the log, and the server serves on', async () => {
  const { hostname, port } = new URL(s.url);
  await new Promise<void>((resolve) => {
    const sock = connect(Number(port), hostname, () => {
      sock.write(
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt": [1,',
      );
      setTimeout(() => {
        sock.destroy();
        resolve();
      }, 50);
    });
  });
  await new Promise((r) => setTimeout(r, 300));
  const g = await post(`${s.url}/v1/completions`, { prompt, max_tokens: 3, temperature: 0, return_token_ids: true });
  assert.deepEqual((g.json.choices as Choice[])[0].token_ids, greedy.slice(0, 3));
  assert.doesNotMatch(s.stderr(), /aborted|\n\s+at /, s.stderr());
});

test("--logprobs-mode raw_logprobs: logprobs are the model's log-softmax (red score's) at any temperature", async () => {
  const raw = await startServer(FIX, ['--logprobs-mode', 'raw_logprobs']);
  try {
    const info = (await fetch(`${raw.url}/get_server_info`).then((r) => r.json())) as { logprobs_mode: string };
    assert.equal(info.logprobs_mode, 'raw_logprobs');
    const body = { prompt, max_tokens: 8, temperature: 0.5, top_k: 3, seed: 9, logprobs: 0, return_token_ids: true };
    const got = (await post(`${raw.url}/v1/completions`, body)).json.choices as (Choice & {
      logprobs: { token_logprobs: number[] };
    })[];
    const ids = got[0].token_ids;
    const sc = red(['score', '--model', FIX, '--ids', [...prompt, ...ids].join(','), '--json']);
    assert.equal(sc.code, 0, sc.stderr);
    const want = (JSON.parse(sc.stdout) as { next_logprob: number[] }).next_logprob.slice(prompt.length - 1);
    const worst = Math.max(...want.map((w, t) => Math.abs(w - got[0].logprobs.token_logprobs[t])));
    console.log(`raw served logprobs vs red score: max |Δ| ${worst.toExponential(2)}`);
    assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
    // The default (processed) server draws the same tokens and reports their top-k-renormalised logprobs.
    const processed = (await post(`${s.url}/v1/completions`, body)).json.choices as typeof got;
    assert.deepEqual(processed[0].token_ids, ids);
    assert.ok(processed[0].logprobs.token_logprobs.every((lp, t) => lp > want[t] + 1e-3));
  } finally {
    await raw.stop();
  }
});
