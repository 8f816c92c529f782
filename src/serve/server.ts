// `red serve`: an HTTP server (node:http) over the continuous-batching scheduler. OpenAI-style
// /v1/completions and /v1/chat/completions (with SSE streaming), SGLang's /generate, and
// SGLang-style weight control (/update_weights_from_disk, /pause_generation,
// /continue_generation). Every answer names the weight_version it was generated with. A bad
// request is a 400 with {error: {message, type, param, code}}; nothing a client sends takes the
// server down, and a client that goes away frees its slots without a word in the log.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { loadConfig, type ModelConfig } from '../model/config.ts';
import { readWeights, readWeightsBf16 } from '../model/io.ts';
import type { Qwen2Model } from '../model/qwen2.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import { BadRequest, asObject, parseChat, parseCompletion, parseGenerate, type Job } from './api.ts';
import type { LogprobsMode } from './logits.ts';
import { chatResponse, completionResponse, generateResult, type Finished, type Formatting } from './responses.ts';
import { Scheduler, type SeqRequest } from './scheduler.ts';
import { SseStream } from './stream.ts';

export interface ServeOptions {
  model: Qwen2Model;
  modelDir: string;
  tokenizer: Tokenizer | undefined;
  /** Token ids that end a sample unless the request sets ignore_eos. */
  eosIds: number[];
  /** Name in /v1/models and responses (default: the folder's name). */
  servedName?: string;
  maxBatch: number;
  maxLen: number;
  /** Bound on max_tokens (default maxLen − 1). */
  maxTokens?: number;
  /** Bound on a request body in bytes. */
  maxBodyBytes: number;
  weightVersion: string;
  /** What logprobs mean: vLLM's raw_logprobs or processed_logprobs (the default here; see logits.ts). */
  logprobsMode?: LogprobsMode;
}

export interface RedServer {
  server: Server;
  scheduler: Scheduler;
  /** Resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

type Route = (req: IncomingMessage, res: ServerResponse) => Promise<void>;
type OnToken = (index: number, id: number, logprob: number, top: [number, number][] | null) => void;

/** A request body as JSON and as its text (seeds beyond 2^53 are read from the text). */
interface Body {
  json: unknown;
  raw: string;
}

/** The request body ended early because the client went away: nothing to answer, nothing to log. */
class ClientGone extends Error {}

/** The config.json keys a weight update must leave as they are (the server cannot apply new ones). */
const FIXED_CONFIG: [keyof ModelConfig, string][] = [
  ['modelType', 'model_type'],
  ['vocabSize', 'vocab_size'],
  ['hiddenSize', 'hidden_size'],
  ['intermediateSize', 'intermediate_size'],
  ['numLayers', 'num_hidden_layers'],
  ['numHeads', 'num_attention_heads'],
  ['numKvHeads', 'num_key_value_heads'],
  ['headDim', 'head_dim'],
  ['ropeTheta', 'rope_theta'],
  ['rmsNormEps', 'rms_norm_eps'],
  ['tieWordEmbeddings', 'tie_word_embeddings'],
  ['attentionBias', 'attention_bias'],
  ['maxPositionEmbeddings', 'max_position_embeddings'],
  ['bosTokenId', 'bos_token_id'],
  ['eosTokenId', 'eos_token_id'],
];

/** The HTTP layer over one Scheduler: routes, request encoding, and streaming. */
class Handlers {
  readonly scheduler: Scheduler;
  readonly routes: Record<string, Route>;
  private readonly maxTokens: number;
  private modelDir: string;
  private readonly name: string;
  /** Token strings of logprobs are asked for every token: decoded once per id. */
  private readonly texts = new Map<number, string>();

  constructor(private readonly o: ServeOptions) {
    this.scheduler = new Scheduler(
      o.model,
      o.maxBatch,
      o.maxLen,
      o.tokenizer,
      o.weightVersion,
      o.logprobsMode ?? 'processed',
    );
    this.maxTokens = Math.min(o.maxTokens ?? o.maxLen - 1, o.maxLen - 1);
    this.modelDir = path.resolve(o.modelDir);
    this.name = o.servedName ?? path.basename(this.modelDir);
    this.routes = this.makeRoutes();
  }

  private get limits() {
    return {
      vocabSize: this.o.model.config.vocabSize,
      maxLen: this.o.maxLen,
      maxTokens: this.maxTokens,
      maxSequences: 1024,
    };
  }

  private tokenText = (id: number): string => {
    let t = this.texts.get(id);
    if (t === undefined) this.texts.set(id, (t = this.o.tokenizer ? this.o.tokenizer.decode([id], false) : String(id)));
    return t;
  };

  private fmt(prefix = 'cmpl'): Formatting {
    return {
      id: `${prefix}-${randomUUID()}`,
      created: Math.floor(Date.now() / 1000),
      model: this.name,
      tokenText: this.tokenText,
    };
  }

  private modelCard() {
    return {
      id: this.name,
      object: 'model',
      created: 0,
      owned_by: 'red',
      root: this.modelDir,
      max_model_len: this.o.maxLen,
    };
  }

  /** vLLM answers a request for another model than the one served with a 404 naming it. */
  private checkModel(job: Job): Job {
    if (job.model !== null && job.model !== this.name)
      throw new BadRequest(`The model \`${job.model}\` does not exist.`, 404, 'model');
    return job;
  }

  /** GET /v1/models/{id}. */
  modelRoute(id: string): Route {
    return async (_q, res) => {
      if (decodeURIComponent(id) !== this.name)
        throw new BadRequest(`The model \`${id}\` does not exist.`, 404, 'model');
      send(res, 200, this.modelCard());
    };
  }

  private makeRoutes(): Record<string, Route> {
    const sch = this.scheduler,
      o = this.o;
    const body = (q: IncomingMessage) => readBody(q, o.maxBodyBytes);
    return {
      'GET /health': async (_q, res) =>
        send(res, 200, { status: 'ok', weight_version: sch.weightVersion, paused: sch.isPaused, ...sch.load }),
      'GET /get_weight_version': async (_q, res) => send(res, 200, { weight_version: sch.weightVersion }),
      'GET /get_model_info': async (_q, res) =>
        send(res, 200, { model_path: this.modelDir, weight_version: sch.weightVersion }),
      'GET /get_server_info': async (_q, res) =>
        send(res, 200, {
          model_path: this.modelDir,
          served_model_name: this.name,
          max_model_len: o.maxLen,
          max_batch: o.maxBatch,
          max_tokens: this.maxTokens,
          logprobs_mode: `${sch.logprobsMode}_logprobs`,
          weight_version: sch.weightVersion,
        }),
      'GET /v1/models': async (_q, res) => send(res, 200, { object: 'list', data: [this.modelCard()] }),
      'POST /v1/completions': async (q, res) => {
        const b = await body(q);
        const job = this.checkModel(parseCompletion(b.json, this.limits, b.raw));
        const f = this.fmt();
        if (job.stream) return this.stream(res, job, f, 'completion');
        send(res, 200, completionResponse(job, await this.submit(job, res), f));
      },
      'POST /v1/chat/completions': async (q, res) => {
        const b = await body(q);
        const job = this.checkModel(parseChat(b.json, this.limits, b.raw));
        const f = this.fmt('chatcmpl');
        if (job.stream) return this.stream(res, job, f, 'chat');
        send(res, 200, chatResponse(job, await this.submit(job, res), f));
      },
      'POST /generate': async (q, res) => {
        const b = await body(q);
        const { job, batched } = parseGenerate(b.json, this.limits, b.raw);
        const f = this.fmt();
        const out = (await this.submit(job, res)).map((d) => generateResult(job, d, f));
        send(res, 200, batched ? out : out[0]);
      },
      'POST /update_weights_from_disk': async (q, res) => this.updateWeights(asObject((await body(q)).json), res),
      'POST /pause_generation': async (q, res) => {
        const b = asObject((await body(q)).json);
        const mode = b.mode ?? 'abort';
        if (mode !== 'abort' && mode !== 'in_place')
          throw new BadRequest(
            `mode must be abort (the default) or in_place; red serve has no ${JSON.stringify(mode)}`,
            400,
            'mode',
          );
        const aborted = sch.pause(mode);
        send(res, 200, {
          success: true,
          message: `paused (${mode}: ${aborted} aborted)`,
          weight_version: sch.weightVersion,
        });
      },
      'POST /continue_generation': async (_q, res) => {
        sch.resume();
        send(res, 200, { success: true, message: 'continued', weight_version: sch.weightVersion });
      },
    };
  }

  /**
   * Loads {model_path} into the served parameters between decode steps (SGLang's semantics: the
   * weight_version is the one given, or stays as it was). A folder whose config.json changes the
   * architecture is refused: the server cannot apply it, so it keeps serving the old weights.
   */
  private async updateWeights(b: Record<string, unknown>, res: ServerResponse): Promise<void> {
    if (typeof b.model_path !== 'string' || b.model_path === '')
      throw new BadRequest('model_path must be a model folder path', 400, 'model_path');
    if (b.weight_version !== undefined && b.weight_version !== null && typeof b.weight_version !== 'string')
      throw new BadRequest('weight_version must be a string', 400, 'weight_version');
    const dir = path.resolve(b.model_path);
    const sch = this.scheduler,
      model = this.o.model;
    const t0 = performance.now();
    try {
      checkSameConfig(model.config, loadConfig(path.join(dir, 'config.json')));
      const version = await sch.updateWeights(() => {
        // readWeights checks every tensor's name and shape against this model before reading.
        model.writeWeights(
          model.precision === 'bf16'
            ? readWeightsBf16(dir, model.layout, model.config)
            : readWeights(dir, model.layout, model.config),
        );
        this.modelDir = dir;
        return (b.weight_version as string | null | undefined) ?? sch.weightVersion;
      }, b.abort_all_requests === true);
      const seconds = (performance.now() - t0) / 1000;
      send(res, 200, {
        success: true,
        message: `loaded ${dir} in ${seconds.toFixed(2)} s`,
        num_paused_requests: 0,
        weight_version: version,
      });
    } catch (err) {
      send(res, 400, {
        success: false,
        message: `cannot load ${dir}: ${(err as Error).message}`,
        weight_version: sch.weightVersion,
      });
    }
  }

  /** The job's prompts as ids, and each one's max_tokens (the room left when the request gave none). */
  private encode(job: Job): { ids: number[]; maxTokens: number }[] {
    const tk = this.o.tokenizer,
      maxLen = this.o.maxLen;
    let prompts = job.prompts;
    if (job.messages) {
      if (!tk?.hasChatTemplate) throw new BadRequest(`${this.modelDir} has no chat template; use /v1/completions`);
      prompts = [tk.applyChatTemplate(job.messages, true)];
    }
    return prompts.map((p, i) => {
      if (typeof p === 'string' && !tk)
        throw new BadRequest(`${this.modelDir} has no tokenizer.json: send prompts as token ids`, 400, 'prompt');
      const ids = typeof p === 'string' ? tk!.encode(p) : p;
      if (ids.length === 0) throw new BadRequest(`prompt ${i} encodes to no tokens`, 400, 'prompt');
      const asked = job.sampling[i].maxTokens;
      const maxTokens = asked ?? Math.min(this.maxTokens, maxLen - ids.length);
      if (asked === null && maxTokens < 1)
        throw new BadRequest(
          `prompt ${i} has ${ids.length} tokens; this server's --max-len ${maxLen} leaves no room for a completion`,
          400,
          'messages',
        );
      if (ids.length + maxTokens > maxLen)
        throw new BadRequest(
          `prompt ${i} has ${ids.length} tokens; with max_tokens ${maxTokens} it exceeds this server's --max-len ${maxLen}`,
          400,
          'max_tokens',
        );
      return { ids, maxTokens };
    });
  }

  /** Submits every sequence of a job; resolves with the samples in choice order. A client that goes away frees its slots. */
  private submit(
    job: Job,
    res: ServerResponse,
    onToken?: OnToken,
    onDone?: (d: Finished) => void,
  ): Promise<Finished[]> {
    const prompts = this.encode(job);
    if (job.sampling.some((s) => s.stop.length > 0) && !this.o.tokenizer)
      throw new BadRequest("stop strings need the model folder's tokenizer.json", 400, 'stop');
    const reqs: SeqRequest[] = [];
    const groups = new Map<string, object>(); // samples of equal prompts share a prefill
    return new Promise((resolve) => {
      const done: Finished[] = new Array(job.sampling.reduce((a, s) => a + s.n, 0));
      let left = done.length;
      const cancelAll = () => {
        if (!res.writableFinished) for (const r of reqs) this.scheduler.cancel(r);
      };
      let index = 0;
      prompts.forEach(({ ids: prompt, maxTokens }, p) => {
        const s = job.sampling[p];
        const key = prompt.join(',');
        const group = groups.get(key) ?? groups.set(key, {}).get(key)!;
        const seed = s.seed ?? { lo: Math.floor(Math.random() * 2 ** 32), hi: 0 };
        for (let j = 0; j < s.n; j++, index++) {
          const i = index;
          reqs.push({
            prompt,
            policy: s.policy,
            // Sample j of seed s draws the stream of seed s + j·2³² (vLLM's children: s + j).
            seed: seed.lo,
            sampleIndex: (seed.hi + j) >>> 0,
            maxTokens,
            minTokens: s.minTokens,
            stopIds: new Set([...(s.ignoreEos ? [] : this.o.eosIds), ...s.stopTokenIds]),
            stopStrings: s.stop,
            includeStop: s.includeStop,
            logits: s.logits,
            logprobs: s.logprobs !== null,
            topLogprobs: s.logprobs ?? 0,
            group,
            onToken: onToken ? (id, lp, top) => onToken(i, id, lp, top) : undefined,
            onDone: (result) => {
              done[i] = { index: i, prompt: p, promptIds: prompt, sampling: s, result };
              onDone?.(done[i]);
              if (--left === 0) {
                res.off('close', cancelAll);
                resolve(done);
              }
            },
          });
        }
      });
      res.on('close', cancelAll);
      for (const r of reqs) this.scheduler.submit(r);
    });
  }

  /** Server-sent events (stream.ts), fed by the scheduler's per-token and per-sample callbacks. */
  private async stream(res: ServerResponse, job: Job, f: Formatting, kind: 'completion' | 'chat'): Promise<void> {
    const sse = new SseStream(res, job, f, kind, this.o.tokenizer, () => this.scheduler.weightVersion);
    const done = await this.submit(
      job,
      res,
      (index, id, lp, top) => sse.token(index, id, lp, top),
      (d) => sse.done(d),
    );
    sse.end(done);
  }
}

/** Fails naming every architecture key of config.json that `next` changes. */
function checkSameConfig(served: ModelConfig, next: ModelConfig): void {
  const changed = FIXED_CONFIG.filter(([k]) => JSON.stringify(served[k]) !== JSON.stringify(next[k])).map(
    ([k, key]) => `${key} (${JSON.stringify(served[k])} → ${JSON.stringify(next[k])})`,
  );
  if (changed.length > 0)
    throw new Error(
      `its config.json changes ${changed.join(', ')}, which a running server cannot apply; restart red serve with --model on this folder`,
    );
}

export function createRedServer(o: ServeOptions): RedServer {
  const h = new Handlers(o);
  const server = createServer();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const [route, method] = [(req.url ?? '').split('?')[0], req.method ?? 'GET'];
    const models = method === 'GET' && route.startsWith('/v1/models/') ? h.modelRoute(route.slice(11)) : undefined;
    const handler =
      h.routes[`${method} ${route}`] ??
      models ??
      (async () => {
        throw new BadRequest(`no route ${method} ${req.url}`, 404);
      });
    handler(req, res).catch((err: unknown) => answerError(req, res, err));
  };
  server.on('request', handle);
  // Expect: 100-continue: an over-size body is refused before the client sends it.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > o.maxBodyBytes) {
      const message = `the request body is ${declared} bytes; this server accepts at most ${o.maxBodyBytes}`;
      send(res, 413, errorBody(new BadRequest(message, 413)), true);
      return;
    }
    res.writeContinue();
    handle(req, res);
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
  return {
    server,
    scheduler: h.scheduler,
    listen: (host, port) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const addr = server.address();
          resolve(typeof addr === 'object' && addr ? addr.port : port);
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function errorBody(err: BadRequest | Error): Record<string, unknown> {
  const status = err instanceof BadRequest ? err.status : 500;
  const type = status === 404 ? 'NotFoundError' : status === 500 ? 'internal_error' : 'invalid_request_error';
  return { error: { message: err.message, type, param: err instanceof BadRequest ? err.param : null, code: status } };
}

/** The error as the client's answer; only a fault of the server itself is logged (with its stack). */
function answerError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
  if (err instanceof ClientGone) {
    res.destroy();
    return;
  }
  const status = err instanceof BadRequest ? err.status : 500;
  if (status === 500)
    process.stderr.write(`red serve: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}\n`);
  if (res.headersSent) {
    res.end();
    return;
  }
  send(res, status, errorBody(err as Error), status === 413);
  if (status === 413) {
    // The rest of the body is read and dropped so that the client sees the answer, not a reset.
    req.resume();
    setTimeout(() => req.destroy(), 10_000).unref();
  }
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** The request body as JSON and text, at most `limit` bytes (413 beyond, 400 when it is not JSON). */
function readBody(req: IncomingMessage, limit: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new BadRequest(`the request body is ${declared} bytes; this server accepts at most ${limit}`, 413));
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        reject(new BadRequest(`the request body exceeds ${limit} bytes`, 413));
        return;
      }
      parts.push(chunk);
    });
    // The connection broke before the body ended ("aborted"): the client is gone.
    req.on('error', () => reject(new ClientGone()));
    req.on('end', () => {
      if (size > limit) return;
      const raw = Buffer.concat(parts).toString('utf8');
      if (raw.trim() === '') {
        resolve({ json: {}, raw });
        return;
      }
      try {
        resolve({ json: JSON.parse(raw), raw });
      } catch (err) {
        reject(new BadRequest(`the request body is not valid JSON (${(err as Error).message})`));
      }
    });
  });
}
