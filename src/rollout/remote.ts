// Rollouts on inference servers the trainer does not own (red serve, SGLang, vLLM): prompts go out
// as token ids, one request per prompt with n samples; token ids and their logprobs (the behaviour
// policy) come back. Requests go to the server with the least outstanding work; a failed, timed-out
// or malformed answer is retried on another server a bounded number of times (after a wait when the
// server said it is busy: HTTP 429/5xx, honouring Retry-After), then the step stops with one clear
// error; a request the server refuses as malformed (any other 4xx) stops at once. Weight sync asks
// every server to load a folder and checks the version.
import { fail } from '../util/errors.ts';

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

  private async request(
    s: Server,
    prompt: number[],
    req: RemoteRequest,
    version: string | null,
  ): Promise<RemoteSample[]> {
    const [route, body] =
      this.o.api === 'openai'
        ? [
            '/v1/completions',
            {
              prompt,
              n: req.n,
              max_tokens: req.maxTokens,
              temperature: req.temperature,
              top_p: req.topP,
              top_k: req.topK > 0 ? req.topK : -1,
              seed: req.seed,
              stop: req.stopStrings,
              stop_token_ids: req.stopTokenIds,
              logprobs: 0,
              return_token_ids: true,
            },
          ]
        : [
            '/generate',
            {
              input_ids: prompt,
              return_logprob: true,
              sampling_params: {
                n: req.n,
                max_new_tokens: req.maxTokens,
                temperature: req.temperature,
                top_p: req.topP,
                top_k: req.topK > 0 ? req.topK : -1,
                sampling_seed: req.seed,
                stop: req.stopStrings,
                stop_token_ids: req.stopTokenIds,
              },
            },
          ];
    const json = await this.post(s, route, body);
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
    if (!r.ok) {
      const what = `HTTP ${r.status} ${text.slice(0, 200)}`;
      // 429 and 5xx: busy or broken for now, worth another try after a wait. Any other 4xx: the
      // request itself is wrong, and every server would say the same.
      if (r.status === 429 || r.status >= 500)
        throw new AttemptError(what, false, { retryAfterS: retryAfterSeconds(r) });
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
