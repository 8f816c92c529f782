// The remote rollout client against servers that are not red serve: loopback stand-ins for SGLang
// with deterministic inference (one seed for all n samples of an item), a stock vLLM (no
// /update_weights_from_disk), a vLLM older than 0.10.2 (no token_ids), and a server reporting raw
// logprobs (red serve --logprobs-mode raw_logprobs, vLLM's default), each failing with the cause.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RemoteRollouts } from '../../src/rollout/remote.ts';
import { Rng } from '../../src/util/rng.ts';
import { fixture, startServer, type Served } from './helpers.ts';

const FIX = fixture('qwen2-tiny-tied');
const request = { n: 4, seed: 1, temperature: 1, topP: 1, topK: 0, maxTokens: 6, stopStrings: [], stopTokenIds: [] };

type Handler = (route: string, body: Record<string, unknown>) => [number, unknown];
const standIns: Server[] = [];
/** A loopback server answering every POST with `answer(route, body)` and GET /health with 200. */
async function standIn(answer: Handler, calls: string[] = []): Promise<string> {
  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    calls.push(`${req.method} ${req.url}`);
    const [status, json] =
      req.method === 'GET' ? [200, {}] : answer(req.url ?? '', JSON.parse(Buffer.concat(chunks).toString() || '{}'));
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(json));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  standIns.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
after(() => {
  for (const s of standIns) s.close();
});

/**
 * SGLang's /generate with --enable-deterministic-inference: a sample depends on its prompt and
 * sampling_seed only, so the n samples of one item are the same.
 */
const deterministicSglang: Handler = (route, body) => {
  if (route !== '/generate') return [404, { detail: 'Not Found' }];
  const batched = Array.isArray((body.input_ids as unknown[])[0]);
  const prompts = (batched ? body.input_ids : [body.input_ids]) as number[][];
  const params = prompts.map((_, i) =>
    Array.isArray(body.sampling_params) ? body.sampling_params[i] : body.sampling_params,
  ) as { n?: number; sampling_seed: number; max_new_tokens: number }[];
  const out = prompts.flatMap((p, i) => {
    const sp = params[i];
    return Array.from({ length: sp.n ?? 1 }, () => {
      assert.ok(Number.isInteger(sp.sampling_seed) && sp.sampling_seed >= 0 && sp.sampling_seed < 2 ** 31);
      const rng = new Rng((p.reduce((h, id) => h * 31 + id, 7) + sp.sampling_seed) % 2 ** 31);
      const ids = Array.from({ length: sp.max_new_tokens }, () => rng.int(1000));
      return {
        text: null,
        output_ids: ids,
        meta_info: { finish_reason: { type: 'length' }, output_token_logprobs: ids.map((id) => [-1, id, null]) },
      };
    });
  });
  return [200, batched || out.length > 1 ? out : out[0]];
};

test('SGLang with deterministic inference: each of the n samples of a prompt gets its own seed, so a group differs', async () => {
  const url = await standIn(deterministicSglang);
  const client = new RemoteRollouts({ servers: [url], api: 'sglang', maxAttempts: 1, timeoutS: 10 });
  const rows = await client.generate(
    [
      [1, 2, 3],
      [4, 5, 6],
    ],
    request,
  );
  for (const row of rows) {
    assert.equal(row.length, 4);
    assert.equal(new Set(row.map((s) => s.ids.join(','))).size, 4, 'the samples of one group came back identical');
  }
});

test('a server without /update_weights_from_disk (stock vLLM): the sync stops naming red-vllm and SGLang', async () => {
  const url = await standIn((route) =>
    route === '/update_weights_from_disk' ? [404, { detail: 'Not Found' }] : [200, {}],
  );
  const client = new RemoteRollouts({ servers: [url], api: 'openai', maxAttempts: 2, timeoutS: 10 });
  await assert.rejects(client.syncWeights('/tmp/policy', '1'), (err: Error) => {
    assert.equal(
      err.message,
      `rollout: ${url} has no /update_weights_from_disk: start vLLM through red-vllm (\`red-vllm MODEL …\` with vllm serve's arguments, or \`python -m red_vllm MODEL …\`; see the README) or use SGLang`,
    );
    return true;
  });
});

test("a weight folder a server cannot load: the sync stops with the server's own message", async () => {
  const url = await standIn(() => [400, { success: false, message: 'cannot load /tmp/policy: tensor q is (3, 4)' }]);
  const client = new RemoteRollouts({ servers: [url], api: 'sglang', maxAttempts: 2, timeoutS: 10 });
  await assert.rejects(
    client.syncWeights('/tmp/policy', '1'),
    (err: Error) =>
      err.message ===
      `rollout: ${url} could not load the weights in /tmp/policy: cannot load /tmp/policy: tensor q is (3, 4)`,
  );
});

test('vLLM before 0.10.2 (no token_ids): one clear error naming the version, without retries', async () => {
  const calls: string[] = [];
  const url = await standIn(
    () => [
      200,
      {
        choices: Array.from({ length: 4 }, (_, i) => ({
          index: i,
          text: 'x',
          logprobs: { token_logprobs: [-1] },
          finish_reason: 'length',
        })),
      },
    ],
    calls,
  );
  const client = new RemoteRollouts({ servers: [url], api: 'openai', maxAttempts: 3, timeoutS: 10 });
  await assert.rejects(client.generate([[1, 2, 3]], request), (err: Error) => {
    assert.equal(
      err.message,
      `rollout: ${url}/v1/completions answered without choices[].token_ids: this vLLM returns no token_ids: vLLM ≥ 0.10.2 is needed (it returns them for return_token_ids: true)`,
    );
    return true;
  });
  assert.deepEqual(calls, ['POST /v1/completions']);
});

let raw: Served, processed: Served;
before(async () => {
  [raw, processed] = await Promise.all([
    startServer(FIX, ['--logprobs-mode', 'raw_logprobs']),
    startServer(FIX, ['--logprobs-mode', 'processed_logprobs']),
  ]);
});
after(async () => {
  await Promise.all([raw?.stop(), processed?.stop()]);
});

for (const api of ['openai', 'sglang'] as const) {
  test(`raw logprobs at temperature ≠ 1 or with top-k are refused naming --logprobs-mode; processed ones pass (${api})`, async () => {
    const lines: string[] = [];
    const check = (url: string, policy: { temperature: number; topP: number; topK: number }) =>
      new RemoteRollouts({
        servers: [url],
        api,
        maxAttempts: 1,
        timeoutS: 30,
        log: (l) => lines.push(l),
      }).checkLogprobs(policy);
    await assert.rejects(check(raw.url, { temperature: 0.6, topP: 1, topK: 0 }), (err: Error) => {
      assert.match(
        err.message,
        /reports raw logprobs \(they do not change with the temperature\), but rollout\.temperature is 0\.6/,
      );
      assert.match(err.message, /--logprobs-mode processed_logprobs/);
      return true;
    });
    await assert.rejects(check(raw.url, { temperature: 1, topP: 1, topK: 20 }), /from before top-k\/top-p/);
    await check(processed.url, { temperature: 0.6, topP: 0.9, topK: 20 });
    await check(raw.url, { temperature: 1, topP: 1, topK: 0 }); // raw = processed at T = 1 without truncation
    assert.deepEqual(lines, []);
  });
}
