// `red bench serve`: the rollout server's cost. Throughput of one `red serve` process with 64
// concurrent clients beside the in-process sampler on the same 64 prompts at batch 64; time to
// first token and inter-token latency of 64 concurrent streams through the official `openai`
// client beside the same sampler's (its per-token callback); and the weight-sync time of a step
// (write the policy folder + /update_weights_from_disk) for the Qwen2.5-0.5B shape (random
// weights: speed does not depend on the values).
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BenchOptions } from './options.ts';
import { getBackend } from '../engine/index.ts';
import { generate } from '../rollout/sampler.ts';
import { fail } from '../util/errors.ts';
import { atExit, makeTempDir } from '../util/exit.ts';
import { Rng } from '../util/rng.ts';
import type { Qwen2Model } from '../model/qwen2.ts';
import { SHAPE_05B, SHAPE_20M, configOf, randomModel, type Shape } from './shapes.ts';

const bin = fileURLToPath(new URL('../../bin/red.js', import.meta.url));
const now = () => performance.now() / 1000;

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'serve', ...fields, load_avg_1m: +loadavg()[0].toFixed(2) }));
}

/** Starts `red serve` on a free loopback port; resolves with its URL once it listens. */
function serve(model: string, args: string[], backend: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--model', model, '--port', '0', '--backend', backend, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '',
    err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1], child });
    });
    child.once('exit', (code) => reject(new Error(`red serve exited (${code}): ${err.trim()}`)));
  });
}

async function post(url: string, body: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as Record<string, unknown>;
  if (!r.ok) fail(`${url}: HTTP ${r.status} ${JSON.stringify(json)}`);
  return json;
}

export async function run(opts: BenchOptions): Promise<void> {
  const backend = opts.backend ?? 'auto';
  const be = getBackend(backend as 'auto');
  const scratch = makeTempDir('red-bench-serve-');
  const children: ChildProcess[] = [];
  // The servers go too when this process is stopped (Ctrl-C, SIGTERM) before the finally runs.
  const killServers = atExit(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  try {
    emit({ name: 'machine', backend: be.name, threads: be.threads, cpus: availableParallelism() });
    const bench: ServeBench = { dir: scratch.path, backend, quick: !!opts.quick, children };
    const model = randomModel(configOf(SHAPE_20M), be);
    await benchClients(model, SHAPE_20M, bench);
    const syncShape = opts.quick ? SHAPE_20M : SHAPE_05B;
    await benchWeightSync(syncShape === SHAPE_20M ? model : randomModel(configOf(syncShape), be), syncShape, bench);
  } finally {
    killServers();
    scratch.remove();
  }
}

/** Where the benchmarks work: a scratch folder, the backend for the servers, and the children to kill at the end. */
interface ServeBench {
  dir: string;
  backend: string;
  quick: boolean;
  children: ChildProcess[];
}

/** 64 clients, one completion each, against the sampler with the same 64 prompts at batch 64. */
async function benchClients(model: Qwen2Model, shape: Shape, b: ServeBench): Promise<void> {
  const modelDir = path.join(b.dir, shape.name);
  model.save(modelDir);
  const rng = new Rng(3);
  const prompts = Array.from({ length: 64 }, () => Array.from({ length: 32 }, () => rng.int(shape.vocab)));
  const maxTokens = b.quick ? 16 : 64;
  const t0 = now();
  const local = await generate(model, prompts, { temperature: 1, maxTokens, seed: 0, eosIds: [], maxBatch: 64 });
  const localS = now() - t0;
  const localTokens = local.flat().reduce((a, s) => a + s.ids.length, 0);
  const server = await serve(modelDir, ['--max-batch', '64', '--max-len', '256'], b.backend);
  b.children.push(server.child);
  await post(`${server.url}/v1/completions`, { prompt: prompts[0], max_tokens: 2 }); // warm-up
  const t1 = now();
  const answers = await Promise.all(
    prompts.map((p, i) =>
      post(`${server.url}/v1/completions`, {
        prompt: p,
        max_tokens: maxTokens,
        temperature: 1,
        seed: i,
        ignore_eos: true,
      }),
    ),
  );
  const serveS = now() - t1;
  const serveTokens = answers.reduce((a, r) => a + (r.usage as { completion_tokens: number }).completion_tokens, 0);
  const ratio = serveTokens / serveS / (localTokens / localS);
  emit({
    name: 'serve_64_clients_tokens_per_s',
    model: shape.name,
    value: +(serveTokens / serveS).toFixed(1),
    clients: 64,
    max_tokens: maxTokens,
    local_batch64_tokens_per_s: +(localTokens / localS).toFixed(1),
    ratio: +ratio.toFixed(3),
    target: 'ratio ≥ 0.9',
    target_met: ratio >= 0.9,
  });
  await benchStreams(model, prompts, maxTokens, server.url, shape.name);
  server.child.kill('SIGKILL');
}

const percentile = (xs: number[], q: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const ms = (x: number) => +(x * 1000).toFixed(2);

/** Per-token arrival times → time to first token (from `start`) and every gap between two tokens. */
function latencies(start: number, arrivals: number[][]): { ttft: number[]; itl: number[] } {
  const ttft = arrivals.map((a) => a[0] - start);
  const itl = arrivals.flatMap((a) => a.slice(1).map((t, i) => t - a[i]));
  return { ttft, itl };
}

/**
 * 64 concurrent streams through the `openai` client (one chunk per token) beside the in-process
 * sampler on the same prompts at batch 64, timing each token by its onToken callback.
 */
async function benchStreams(
  model: Qwen2Model,
  prompts: number[][],
  maxTokens: number,
  url: string,
  served: string,
): Promise<void> {
  let OpenAI: typeof import('openai').default;
  try {
    OpenAI = (await import('openai')).default;
  } catch {
    emit({ name: 'serve_64_streams', skipped: 'the openai npm package is not installed (a devDependency of red)' });
    return;
  }
  const local: number[][] = prompts.map(() => []);
  const t0 = now();
  await generate(model, prompts, {
    temperature: 1,
    maxTokens,
    seed: 0,
    eosIds: [],
    maxBatch: 64,
    onToken: (i) => local[i].push(now()),
  });
  const mine = latencies(t0, local);
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  const arrivals: number[][] = prompts.map(() => []);
  const t1 = now();
  await Promise.all(
    prompts.map(async (p, i) => {
      const stream = await client.completions.create({
        model: served,
        prompt: p,
        max_tokens: maxTokens,
        temperature: 1,
        seed: i,
        stream: true,
        ignore_eos: true,
      } as import('openai').OpenAI.Completions.CompletionCreateParamsStreaming);
      for await (const chunk of stream) if (chunk.choices.length > 0) arrivals[i].push(now());
    }),
  );
  const theirs = latencies(t1, arrivals);
  for (const [name, a, b] of [
    ['serve_64_streams_ttft_ms', theirs.ttft, mine.ttft],
    ['serve_64_streams_itl_ms', theirs.itl, mine.itl],
  ] as const)
    emit({
      name,
      value: ms(percentile(a, 0.5)),
      p99: ms(percentile(a, 0.99)),
      local_batch64_p50: ms(percentile(b, 0.5)),
      local_batch64_p99: ms(percentile(b, 0.99)),
      streams: prompts.length,
      max_tokens: maxTokens,
      client: 'openai npm',
    });
}

/** Weight sync of one step: the trainer writes the policy folder, the server loads it (median of 3). */
async function benchWeightSync(big: Qwen2Model, syncShape: Shape, b: ServeBench): Promise<void> {
  const syncDir = path.join(b.dir, `${syncShape.name}-policy`);
  big.save(syncDir);
  const s2 = await serve(syncDir, ['--max-batch', '1', '--max-len', '64'], b.backend);
  b.children.push(s2.child);
  let version = 0;
  // rollout.syncDtype: bf16 (the default) writes and loads half the bytes of fp32.
  for (const dtype of ['fp32', 'bf16'] as const) {
    const times: { save: number; load: number }[] = [];
    for (let k = 1; k <= 3; k++) {
      const w = big.readParams();
      w[0] += 1e-3; // a new step's weights
      big.writeWeights(w);
      const a = now();
      big.save(syncDir, dtype);
      const t = now();
      const v = String(++version);
      const r = await post(`${s2.url}/update_weights_from_disk`, { model_path: syncDir, weight_version: v });
      if (r.weight_version !== v)
        fail(`weight sync: the server answered version ${String(r.weight_version)}, expected ${v}`);
      times.push({ save: t - a, load: now() - t });
    }
    times.sort((x, y) => x.save + x.load - (y.save + y.load));
    const med = times[1];
    emit({
      name: 'weight_sync_s_per_step',
      model: syncShape.name,
      params: big.layout.total,
      value: +(med.save + med.load).toFixed(3),
      write_s: +med.save.toFixed(3),
      load_s: +med.load.toFixed(3),
      bytes: big.layout.total * (dtype === 'bf16' ? 2 : 4),
      dtype,
      repeats: times.length,
    });
  }
}
