// `red serve`: an HTTP server (node:http) over the continuous-batching scheduler. OpenAI-style
// /v1/completions and /v1/chat/completions (with SSE streaming), SGLang's /generate, and
// SGLang-style weight control (/update_weights_from_disk, /pause_generation,
// /continue_generation). Every answer names the weight_version it was generated with. A bad
// request is a 400 with {error: {message}}; nothing a client sends takes the server down.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { readWeights, readWeightsBf16 } from '../model/io.ts';
import type { Qwen2Model } from '../model/qwen2.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import {
  BadRequest,
  asObject,
  chatResponse,
  completionResponse,
  generateResult,
  parseChat,
  parseCompletion,
  parseGenerate,
  type Finished,
  type Formatting,
  type Job,
  type Limits,
} from './api.ts';
import { Scheduler, type SeqRequest } from './scheduler.ts';

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
}

export interface RedServer {
  server: Server;
  scheduler: Scheduler;
  /** Resolves with the bound port. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

type Route = (req: IncomingMessage, res: ServerResponse) => Promise<void>;
type OnToken = (index: number, id: number, logprob: number) => void;

/** The HTTP layer over one Scheduler: routes, request encoding, and streaming. */
class Handlers {
  readonly scheduler: Scheduler;
  readonly routes: Record<string, Route>;
  private readonly limits: Limits;
  private modelDir: string;
  private readonly name: string;
  /** Token strings of logprobs are asked for every token: decoded once per id. */
  private readonly texts = new Map<number, string>();

  constructor(private readonly o: ServeOptions) {
    this.scheduler = new Scheduler(o.model, o.maxBatch, o.maxLen, o.tokenizer, o.weightVersion);
    this.limits = {
      vocabSize: o.model.config.vocabSize,
      maxLen: o.maxLen,
      maxTokens: Math.min(o.maxTokens ?? o.maxLen - 1, o.maxLen - 1),
      maxSequences: 1024,
    };
    this.modelDir = path.resolve(o.modelDir);
    this.name = o.servedName ?? path.basename(this.modelDir);
    this.routes = this.makeRoutes();
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

  private makeRoutes(): Record<string, Route> {
    const sch = this.scheduler,
      o = this.o;
    const body = (q: IncomingMessage) => readJson(q, o.maxBodyBytes);
    return {
      'GET /health': async (_q, res) =>
        send(res, 200, { status: 'ok', weight_version: sch.weightVersion, paused: sch.isPaused, ...sch.load }),
      'GET /get_weight_version': async (_q, res) => send(res, 200, { weight_version: sch.weightVersion }),
      'GET /get_model_info': async (_q, res) =>
        send(res, 200, { model_path: this.modelDir, weight_version: sch.weightVersion }),
      'GET /v1/models': async (_q, res) =>
        send(res, 200, {
          object: 'list',
          data: [
            {
              id: this.name,
              object: 'model',
              created: 0,
              owned_by: 'red',
              root: this.modelDir,
              max_model_len: o.maxLen,
            },
          ],
        }),
      'POST /v1/completions': async (q, res) => {
        const job = parseCompletion(await body(q), this.limits);
        const f = this.fmt();
        if (job.stream) return this.stream(res, job, f, 'completion');
        send(res, 200, completionResponse(job, await this.submit(job, res), f));
      },
      'POST /v1/chat/completions': async (q, res) => {
        const job = parseChat(await body(q), this.limits);
        const f = this.fmt('chatcmpl');
        if (job.stream) return this.stream(res, job, f, 'chat');
        send(res, 200, chatResponse(job, await this.submit(job, res), f));
      },
      'POST /generate': async (q, res) => {
        const { job, batched } = parseGenerate(await body(q), this.limits);
        const f = this.fmt();
        const out = (await this.submit(job, res)).map((d) => generateResult(job, d, f));
        send(res, 200, batched ? out : out[0]);
      },
      'POST /update_weights_from_disk': async (q, res) => this.updateWeights(asObject(await body(q)), res),
      'POST /pause_generation': async (_q, res) => {
        sch.pause();
        send(res, 200, { success: true, message: 'paused', weight_version: sch.weightVersion });
      },
      'POST /continue_generation': async (_q, res) => {
        sch.resume();
        send(res, 200, { success: true, message: 'continued', weight_version: sch.weightVersion });
      },
    };
  }

  /** Loads {model_path} into the served parameters between decode steps (SGLang's semantics). */
  private async updateWeights(b: Record<string, unknown>, res: ServerResponse): Promise<void> {
    if (typeof b.model_path !== 'string' || b.model_path === '')
      throw new BadRequest('model_path must be a model folder path');
    if (b.weight_version !== undefined && b.weight_version !== null && typeof b.weight_version !== 'string')
      throw new BadRequest('weight_version must be a string');
    const dir = path.resolve(b.model_path);
    const sch = this.scheduler,
      model = this.o.model;
    const t0 = performance.now();
    try {
      const version = await sch.updateWeights(() => {
        // readWeights checks every tensor's name and shape against this model before reading.
        model.writeWeights(
          model.precision === 'bf16'
            ? readWeightsBf16(dir, model.layout, model.config)
            : readWeights(dir, model.layout, model.config),
        );
        this.modelDir = dir;
        return (b.weight_version as string | undefined) ?? String(Number(sch.weightVersion) + 1 || 1);
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

  /** The job's prompts as ids, checked against the cache length. */
  private encode(job: Job): number[][] {
    const tk = this.o.tokenizer;
    let prompts = job.prompts;
    if (job.messages) {
      if (!tk?.hasChatTemplate) throw new BadRequest(`${this.modelDir} has no chat template; use /v1/completions`);
      prompts = [tk.applyChatTemplate(job.messages, true)];
    }
    return prompts.map((p, i) => {
      if (typeof p === 'string' && !tk)
        throw new BadRequest(`${this.modelDir} has no tokenizer.json: send prompts as token ids`);
      const ids = typeof p === 'string' ? tk!.encode(p) : p;
      if (ids.length === 0) throw new BadRequest(`prompt ${i} encodes to no tokens`);
      if (ids.length + job.maxTokens > this.o.maxLen)
        throw new BadRequest(
          `prompt ${i} has ${ids.length} tokens; with max_tokens ${job.maxTokens} it exceeds this server's --max-len ${this.o.maxLen}`,
        );
      return ids;
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
    if (job.stop.length > 0 && !this.o.tokenizer)
      throw new BadRequest("stop strings need the model folder's tokenizer.json");
    const stopIds = new Set([...(job.ignoreEos ? [] : this.o.eosIds), ...job.stopTokenIds]);
    const seed = job.seed ?? Math.floor(Math.random() * 2 ** 32);
    const reqs: SeqRequest[] = [];
    return new Promise((resolve) => {
      const done: Finished[] = new Array(prompts.length * job.n);
      let left = done.length;
      const cancelAll = () => {
        if (!res.writableFinished) for (const r of reqs) this.scheduler.cancel(r);
      };
      prompts.forEach((prompt, p) => {
        const group = {};
        for (let j = 0; j < job.n; j++) {
          const index = p * job.n + j;
          reqs.push({
            prompt,
            policy: job.policy,
            seed,
            sampleIndex: j,
            maxTokens: job.maxTokens,
            stopIds,
            stopStrings: job.stop,
            topLogprobs: job.logprobs ?? 0,
            group,
            onToken: onToken ? (id, lp) => onToken(index, id, lp) : undefined,
            onDone: (result) => {
              done[index] = { index, promptIds: prompt, result };
              onDone?.(done[index]);
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

  /** Server-sent events: a chunk per token (text held back while it may end in a stop string). */
  private async stream(res: ServerResponse, job: Job, f: Formatting, kind: 'completion' | 'chat'): Promise<void> {
    const holdBack = Math.max(0, ...job.stop.map((s) => s.length - 1));
    const ids: number[][] = [],
      shown: string[] = [];
    const emit = (index: number, text: string, extra: Record<string, unknown>, finish: string | null) => {
      if (!res.headersSent)
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-cache',
          connection: 'keep-alive',
        });
      const choice =
        kind === 'completion'
          ? { index, text, ...extra, finish_reason: finish }
          : { index, delta: { role: 'assistant', content: text }, ...extra, finish_reason: finish };
      const chunk = {
        id: f.id,
        object: kind === 'completion' ? 'text_completion' : 'chat.completion.chunk',
        created: f.created,
        model: f.model,
        choices: [choice],
        weight_version: this.scheduler.weightVersion,
      };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    await this.submit(
      job,
      res,
      (index, id, lp) => {
        (ids[index] ??= []).push(id);
        shown[index] ??= '';
        const text = this.o.tokenizer ? this.o.tokenizer.decode(ids[index]) : '';
        const safe = text.endsWith('\uFFFD')
          ? shown[index]
          : text.slice(0, Math.max(shown[index].length, text.length - holdBack));
        const delta = safe.startsWith(shown[index]) ? safe.slice(shown[index].length) : '';
        shown[index] += delta;
        const extra: Record<string, unknown> = {};
        if (job.returnTokenIds) extra.token_ids = [id];
        if (job.logprobs !== null) {
          const token = this.tokenText(id);
          extra.logprobs =
            kind === 'completion'
              ? { tokens: [token], token_logprobs: [lp], top_logprobs: null }
              : { content: [{ token, logprob: lp, bytes: null, top_logprobs: [] }] };
        }
        emit(index, delta, extra, null);
      },
      (d) => {
        const before = shown[d.index] ?? '',
          final = d.result.text ?? '';
        emit(d.index, final.startsWith(before) ? final.slice(before.length) : '', {}, d.result.finishReason);
      },
    );
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.end('data: [DONE]\n\n');
  }
}

export function createRedServer(o: ServeOptions): RedServer {
  const h = new Handlers(o);
  const server = createServer((req, res) => {
    const route = h.routes[`${req.method} ${(req.url ?? '').split('?')[0]}`];
    const handle =
      route ??
      (async () =>
        send(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'not_found', code: 404 } }));
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof BadRequest ? err.status : 500;
      if (status === 500)
        process.stderr.write(`red serve: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}\n`);
      if (res.headersSent) {
        res.end();
        return;
      }
      send(res, status, {
        error: {
          message: (err as Error).message,
          type: status === 500 ? 'internal_error' : 'invalid_request_error',
          code: status,
        },
      });
      if (status === 413) req.destroy();
    });
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

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The request body as JSON, at most `limit` bytes (413 beyond, 400 when it is not JSON). */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
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
        req.pause();
        return;
      }
      parts.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > limit) return;
      const text = Buffer.concat(parts).toString('utf8');
      if (text.trim() === '') {
        resolve({});
        return;
      }
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new BadRequest(`the request body is not valid JSON (${(err as Error).message})`));
      }
    });
  });
}
