// Rollouts on inference servers the trainer does not own (red serve, SGLang, vLLM): prompts go out
// as token ids, one request per prompt with n samples; token ids and their logprobs (the behaviour
// policy) come back. Requests go to the server with the least outstanding work; a failed, timed-out
// or malformed answer is retried on another server a bounded number of times (after a wait when the
// server said it is busy: HTTP 429/5xx, honouring Retry-After), then the step stops with one clear
// error; a request the server refuses as malformed (any other 4xx) stops at once. Weight sync asks
// every server to load a folder and checks the version. Each sample of a prompt has its own seed
// (a server such as SGLang with deterministic inference gives the n samples of one request the
// same one), and the servers' logprobs are checked to be those of the distribution the tokens were
// drawn from (vLLM's default reports the model's raw ones), since importance sampling needs that.
import { RedError, fail } from '../util/errors.ts';

export type RemoteApi = 'openai' | 'sglang';

export interface RemoteOptions {
  servers: string[];
  api: RemoteApi;
  /** Tries per prompt, across servers, before the step fails. */
  maxAttempts: number;
  /** Seconds one request may take. */
  timeoutS: number;
  /** Told when a server is taken out of (or back into) the pool. */
  log?: (line: string) => void;
}

/** The sampling request for every prompt of a batch (the trainer's RolloutRequest plus stop ids). */
export interface RemoteRequest {
  n: number;
  seed: number;
  temperature: number;
  topP: number;
  topK: number;
  maxTokens: number;
  stopStrings: string[];
  stopTokenIds: number[];
}

export interface RemoteSample {
  ids: number[];
  /** logprobs[t]: the server's log-prob of ids[t] (the behaviour policy). */
  logprobs: number[];
  text: string | null;
  finishReason: 'stop' | 'length';
}

interface Server {
  url: string;
  /** Tokens requested and not yet answered (n × maxTokens per request). */
  outstanding: number;
  down: boolean;
}

/**
 * A request that failed in a way worth retrying; `down`: the server did not answer at all;
 * `busy`: it answered HTTP 429 or 5xx, so the next try waits (its Retry-After in seconds, when it
 * gave one, else a doubling backoff).
 */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly down = false,
    readonly busy: { retryAfterS: number | null } | null = null,
  ) {
    super(message);
  }
}

/** The longest wait for a busy server before the next try (a longer Retry-After is capped). */
const MAX_BACKOFF_S = 30;

/** A Retry-After header in seconds (it may be a number of seconds or an HTTP date); null when absent or unreadable. */
function retryAfterSeconds(r: Response): number | null {
  const header = r.headers.get('retry-after');
  if (header === null) return null;
  const s = /^\d+(\.\d+)?$/.test(header.trim()) ? Number(header) : (Date.parse(header) - Date.now()) / 1000;
  return Number.isFinite(s) ? Math.max(0, s) : null;
}

export class RemoteRollouts {
  private readonly servers: Server[];
  /** The version every server must answer with (set by syncWeights); null: not checked yet. */
  expectedVersion: string | null = null;

  constructor(private readonly o: RemoteOptions) {
    if (o.servers.length === 0) fail('rollout.servers: remote rollouts need at least one server URL');
    this.servers = o.servers.map((url) => ({ url: url.replace(/\/+$/, ''), outstanding: 0, down: false }));
  }

  /** GET /health on every server; fails naming each one that does not answer. */
  async checkHealth(): Promise<void> {
    const bad: string[] = [];
    await Promise.all(
      this.servers.map(async (s) => {
        try {
          const r = await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(10_000) });
          if (!r.ok) bad.push(`${s.url} (HTTP ${r.status})`);
          await r.body?.cancel();
        } catch (err) {
          bad.push(`${s.url} (${cause(err)})`);
        }
      }),
    );
    if (bad.length > 0)
      fail(
        `rollout.servers: no healthy answer to GET /health from ${bad.join(', ')}; start them (red serve --model DIR --port N) or fix the URLs`,
      );
  }

  /**
   * Checks that every server reports the logprobs of the distribution its tokens are drawn from at
   * these settings (importance sampling needs them). Two one-token probes per setting in use: with
   * temperature T the gaps between the top logprobs scale by 1/T, and with top-k 1 every token but
   * the first has −∞; a server whose logprobs stay the model's raw ones (vLLM's default) stops the
   * run naming the fix. A model whose probe distribution is too flat to tell is let through, said.
   */
  async checkLogprobs(policy: { temperature: number; topP: number; topK: number }): Promise<void> {
    const T = policy.temperature;
    if (T === 0) return; // greedy: every server reports the model's log-softmax
    const fix = `start vLLM with --logprobs-mode processed_logprobs (red-vllm does so by default), or red serve with --logprobs-mode processed_logprobs`;
    await Promise.all(
      this.servers.map(async (s) => {
        const neutral = await this.topRow(s, { temperature: 1, topP: 1, topK: 0 }).catch((err: unknown) => {
          if (err instanceof AttemptError) fail(`rollout: ${s.url} did not answer the logprob probe: ${err.message}`);
          throw err;
        });
        if (neutral === null) {
          this.o.log?.(`rollout: ${s.url} reports no top logprobs; its logprobs could not be checked`);
          return;
        }
        if (T !== 1) {
          const scaled = (await this.topRow(s, { temperature: T, topP: 1, topK: 0 })) ?? [];
          const n = Math.min(neutral.length, scaled.length) - 1;
          const gap = neutral[0] - neutral[n],
            gapT = scaled[0] - scaled[n];
          if (n < 1 || Math.abs(gap / T - gap) < 1e-3)
            this.o.log?.(
              `rollout: ${s.url}: the probe's distribution is too flat to check its logprobs at temperature ${T}`,
            );
          else if (Math.abs(gapT - gap) < Math.abs(gapT - gap / T))
            fail(
              `rollout: ${s.url} reports raw logprobs (they do not change with the temperature), but rollout.temperature is ${T}: TIS and rollout/logprob_diff need those of the distribution each token was drawn from; ${fix}`,
            );
        }
        if (policy.topK > 0 || policy.topP < 1) {
          const cut = (await this.topRow(s, { temperature: 1, topP: 1, topK: 1 })) ?? [];
          if (cut.length > 1 && cut[1] > -1000)
            fail(
              `rollout: ${s.url} reports logprobs from before top-k/top-p (with top_k 1 its second token keeps logprob ${cut[1].toFixed(2)}), but rollout.topK is ${policy.topK} and rollout.topP ${policy.topP}: TIS needs those of the distribution each token was drawn from; ${fix}, or set rollout.topK 0 and rollout.topP 1`,
            );
        }
      }),
    );
  }

  /** The top-5 logprobs of one token after a fixed prompt, most likely first (null: the server gives none). */
  private async topRow(s: Server, p: { temperature: number; topP: number; topK: number }): Promise<number[] | null> {
    const prompt = [1, 2, 3];
    const sampling = { temperature: p.temperature, top_p: p.topP, top_k: p.topK > 0 ? p.topK : -1 };
    const json = (
      this.o.api === 'openai'
        ? await this.post(s, '/v1/completions', { prompt, max_tokens: 1, seed: 0, logprobs: 5, ...sampling })
        : await this.post(s, '/generate', {
            input_ids: prompt,
            return_logprob: true,
            top_logprobs_num: 5,
            sampling_params: { max_new_tokens: 1, sampling_seed: 0, ...sampling },
          })
    ) as {
      choices?: { logprobs?: { top_logprobs?: Record<string, unknown>[] } }[];
      meta_info?: { output_top_logprobs?: unknown[][][] };
    };
    const row =
      this.o.api === 'openai'
        ? Object.values(json.choices?.[0]?.logprobs?.top_logprobs?.[0] ?? {})
        : (json.meta_info?.output_top_logprobs?.[0] ?? []).map((entry) => entry[0]);
    if (row.length === 0) return null;
    // −∞ comes as vLLM's −9999, as null, or not at all.
    return row.map((x) => (typeof x === 'number' && Number.isFinite(x) ? x : -Infinity)).sort((a, b) => b - a);
  }

  /** n samples for each prompt; samples[i][j] is sample j of prompt i. */
  async generate(prompts: number[][], req: RemoteRequest): Promise<RemoteSample[][]> {
    // The version the samples must come from is the one current when they were asked for.
    const version = this.expectedVersion;
    return Promise.all(
      prompts.map((p, i) =>
        this.withRetries(i, req, (s) => this.request(s, p, { ...req, seed: promptSeed(req.seed, i) }, version)),
      ),
    );
  }

  private async withRetries(
    index: number,
    req: RemoteRequest,
    send: (s: Server) => Promise<RemoteSample[]>,
  ): Promise<RemoteSample[]> {
    const tried = new Set<Server>();
    const errors: string[] = [];
    for (let attempt = 0; attempt < this.o.maxAttempts; attempt++) {
      const s = this.pick(tried);
      if (!s) break;
      tried.add(s);
      const work = req.n * req.maxTokens;
      s.outstanding += work;
      try {
        return await send(s);
      } catch (err) {
        if (!(err instanceof AttemptError)) throw err;
        errors.push(`${s.url}: ${err.message}`);
        if (err.down && !s.down) {
          s.down = true;
          this.o.log?.(`rollout: ${s.url} does not answer (${err.message}); using the other servers`);
        }
        if (err.busy && attempt + 1 < this.o.maxAttempts) {
          const waitS = Math.min(err.busy.retryAfterS ?? 0.5 * 2 ** attempt, MAX_BACKOFF_S);
          await new Promise((r) => setTimeout(r, waitS * 1000));
        }
      } finally {
        s.outstanding -= work;
      }
    }
    return fail(
      `rollout: prompt ${index} failed after ${errors.length} attempt(s) (rollout.maxAttempts = ${this.o.maxAttempts}): ${errors.join('; ') || 'no server is up'}`,
    );
  }

  /** The live server with the least outstanding work, preferring ones not tried for this prompt. */
  private pick(tried: Set<Server>): Server | null {
    const live = this.servers.filter((s) => !s.down);
    const fresh = live.filter((s) => !tried.has(s));
    const pool = fresh.length > 0 ? fresh : live;
    if (pool.length === 0) return null;
    return pool.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
  }

  /**
   * One prompt's n samples. OpenAI API: one request with n (vLLM seeds sample j with seed + j, red
   * serve with seed + j·2³²). SGLang: one batched request with n items, each with its own seed
   * (SGLang with --enable-deterministic-inference gives the n samples of one item the same seed,
   * so a group would come back identical: zero advantage and no error).
   */
  private async request(
    s: Server,
    prompt: number[],
    req: RemoteRequest,
    version: string | null,
  ): Promise<RemoteSample[]> {
    const sampling = {
      temperature: req.temperature,
      top_p: req.topP,
      top_k: req.topK > 0 ? req.topK : -1,
      stop: req.stopStrings,
      stop_token_ids: req.stopTokenIds,
    };
    const [route, body] =
      this.o.api === 'openai'
        ? [
            '/v1/completions',
            {
              prompt,
              n: req.n,
              max_tokens: req.maxTokens,
              seed: req.seed,
              logprobs: 0,
              return_token_ids: true,
              ...sampling,
            },
          ]
        : [
            '/generate',
            {
              input_ids: Array.from({ length: req.n }, () => prompt),
              return_logprob: true,
              sampling_params: Array.from({ length: req.n }, (_, j) => ({
                n: 1,
                max_new_tokens: req.maxTokens,
                sampling_seed: sampleSeed(req.seed, j),
                ...sampling,
              })),
            },
          ];
    const json = await this.post(s, route, body);
    if (this.o.api === 'openai') noTokenIds(json, `${s.url}${route}`);
    const samples = this.o.api === 'openai' ? readCompletion(json, req.n) : readGenerate(json, req.n);
    if (version !== null && samples.version !== undefined && olderVersion(samples.version, version)) {
      throw new AttemptError(`answered with weight_version ${samples.version}, older than ${version} (a stale policy)`);
    }
    return samples.samples;
  }

  private async post(s: Server, route: string, body: unknown, timeoutS = this.o.timeoutS): Promise<unknown> {
    let r: Response;
    try {
      r = await fetch(`${s.url}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutS * 1000),
      });
    } catch (err) {
      const timedOut = (err as Error).name === 'TimeoutError';
      throw new AttemptError(timedOut ? `no answer within ${timeoutS} s` : cause(err), !timedOut);
    }
    let text: string;
    try {
      text = await r.text();
    } catch (err) {
      throw new AttemptError(`the answer broke off (${cause(err)})`, true);
    }
    // A weight load that failed answers 400 {success: false, message}: syncWeights reports the message.
    const failedLoad = r.status === 400 && route === '/update_weights_from_disk';
    if (!r.ok && !failedLoad) {
      const what = `HTTP ${r.status} ${text.slice(0, 200)}`;
      // 429 and 5xx: busy or broken for now, worth another try after a wait. Any other 4xx: the
      // request itself is wrong, and every server would say the same.
      if (r.status === 429 || r.status >= 500)
        throw new AttemptError(what, false, { retryAfterS: retryAfterSeconds(r) });
      if (r.status === 404 && route === '/update_weights_from_disk')
        fail(
          `rollout: ${s.url} has no /update_weights_from_disk: start vLLM through red-vllm (\`red-vllm MODEL …\` with vllm serve's arguments, or \`python -m red_vllm MODEL …\`; see the README) or use SGLang`,
        );
      if (r.status !== 408)
        fail(
          `rollout: ${s.url}${route} refused the request (${what}); check that rollout.api (${this.o.api}) is the API this server speaks`,
        );
      throw new AttemptError(what);
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new AttemptError(`the answer is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
    }
  }

  /**
   * Every server loads the model folder `dir` (a path they can all read) as `version`; a server
   * that is down is probed again and skipped when it still does not answer. Returns the seconds taken.
   */
  async syncWeights(dir: string, version: string): Promise<number> {
    const t0 = performance.now();
    let updated = 0;
    await Promise.all(
      this.servers.map(async (s) => {
        let json: unknown;
        try {
          json = await this.post(s, '/update_weights_from_disk', {
            model_path: dir,
            weight_version: version,
            abort_all_requests: false,
          });
        } catch (err) {
          if (err instanceof AttemptError && err.down) {
            if (!s.down) this.o.log?.(`rollout: ${s.url} does not answer; it is left out until it does`);
            s.down = true;
            return;
          }
          if (err instanceof RedError) throw err;
          fail(`rollout: ${s.url} could not load the weights in ${dir}: ${(err as Error).message}`);
        }
        const o = json as { success?: unknown; message?: unknown; weight_version?: unknown };
        if (o?.success !== true)
          fail(`rollout: ${s.url} could not load the weights in ${dir}: ${String(o?.message ?? JSON.stringify(json))}`);
        if (o.weight_version !== undefined && String(o.weight_version) !== version) {
          fail(`rollout: ${s.url} reports weight_version ${String(o.weight_version)} after loading version ${version}`);
        }
        if (s.down) this.o.log?.(`rollout: ${s.url} answers again; back in the pool`);
        s.down = false;
        updated++;
      }),
    );
    if (updated === 0)
      fail(`rollout: no server could load the weights in ${dir}; every server in rollout.servers is down`);
    this.expectedVersion = version;
    return (performance.now() - t0) / 1000;
  }
}

/**
 * Whether `got` is older than `want`. Versions are step numbers; a newer one is fine (a request
 * still queued when the weights changed runs on the newer ones); non-numbers must match exactly.
 */
function olderVersion(got: string, want: string): boolean {
  const g = Number(got),
    w = Number(want);
  return Number.isFinite(g) && Number.isFinite(w) ? g < w : got !== want;
}

/**
 * The seed of prompt `index` of a rollout batch: sample j then draws from sampleRng(seed', 0, j),
 * on a server (one request per prompt) as in the local sampler given these as promptSeeds, so
 * both engines draw the same tokens from the same weights.
 */
export function promptSeed(seed: number, index: number): number {
  return (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
}

/**
 * Sample j's seed on SGLang: below 2³¹, since SGLang versions of late 2025 hold sampling_seed in
 * an int32 tensor.
 */
export function sampleSeed(seed: number, j: number): number {
  return ((seed ^ Math.imul(j + 1, 0x85ebca77)) >>> 0) % 2 ** 31;
}

function cause(err: unknown): string {
  const e = err as { cause?: { code?: string; message?: string }; message?: string };
  return e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
}

type Parsed = { samples: RemoteSample[]; version: string | undefined };

function finish(reason: unknown, where: string): 'stop' | 'length' {
  if (reason === 'stop' || reason === 'length') return reason;
  throw new AttemptError(`${where}: finish_reason ${JSON.stringify(reason)} (expected stop or length)`);
}

function ids(v: unknown, where: string): number[] {
  if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x)))
    throw new AttemptError(`${where} is not a list of token ids`);
  return v as number[];
}

function logprobList(v: unknown, n: number, where: string): number[] {
  if (!Array.isArray(v) || v.length !== n || v.some((x) => typeof x !== 'number'))
    throw new AttemptError(`${where} is not a list of ${n} logprobs`);
  return v as number[];
}

/** vLLM before 0.10.2 ignores return_token_ids: every try would fail the same way, so the run stops at once. */
function noTokenIds(json: unknown, where: string): void {
  const choices = (json as { choices?: unknown })?.choices;
  if (Array.isArray(choices) && choices.some((c) => typeof c === 'object' && c !== null && !('token_ids' in c)))
    fail(
      `rollout: ${where} answered without choices[].token_ids: this vLLM returns no token_ids: vLLM ≥ 0.10.2 is needed (it returns them for return_token_ids: true)`,
    );
}

/** An OpenAI /v1/completions answer (vLLM's token_ids with return_token_ids). */
function readCompletion(json: unknown, n: number): Parsed {
  const o = json as { choices?: unknown; weight_version?: unknown };
  if (!Array.isArray(o?.choices) || o.choices.length !== n) throw new AttemptError(`the answer has no ${n} choices`);
  const samples = (o.choices as Record<string, unknown>[]).map((c, j) => {
    const tok = ids(c?.token_ids, `choices[${j}].token_ids`);
    const lp = logprobList(
      (c?.logprobs as { token_logprobs?: unknown } | null)?.token_logprobs,
      tok.length,
      `choices[${j}].logprobs.token_logprobs`,
    );
    return {
      ids: tok,
      logprobs: lp,
      text: typeof c.text === 'string' ? c.text : null,
      finishReason: finish(c.finish_reason, `choices[${j}]`),
    };
  });
  return { samples, version: o.weight_version === undefined ? undefined : String(o.weight_version) };
}

/** SGLang's /generate answer: one object, or a list of n. */
function readGenerate(json: unknown, n: number): Parsed {
  const list = Array.isArray(json) ? json : [json];
  if (list.length !== n) throw new AttemptError(`the answer has ${list.length} results, expected ${n}`);
  let version: string | undefined;
  const samples = (list as Record<string, unknown>[]).map((r, j) => {
    const meta = r?.meta_info as Record<string, unknown> | undefined;
    if (!meta) throw new AttemptError(`result ${j} has no meta_info`);
    const tok = ids(r.output_ids, `result ${j} output_ids`);
    const lpRows = meta.output_token_logprobs;
    if (!Array.isArray(lpRows)) throw new AttemptError(`result ${j} has no meta_info.output_token_logprobs`);
    const lp = logprobList(
      lpRows.map((row: unknown) => (Array.isArray(row) ? row[0] : undefined)),
      tok.length,
      `result ${j} output_token_logprobs`,
    );
    if (meta.weight_version !== undefined) version = String(meta.weight_version);
    const reason = (meta.finish_reason as { type?: unknown } | undefined)?.type;
    return {
      ids: tok,
      logprobs: lp,
      text: typeof r.text === 'string' ? r.text : null,
      finishReason: finish(reason, `result ${j}`),
    };
  });
  return { samples, version };
}
