// `red serve`: an HTTP server (node:http) over the continuous-batching scheduler. OpenAI-style
// /v1/completions and /v1/chat/completions (with SSE streaming), SGLang's /generate, and
// SGLang-style weight control (/update_weights_from_disk, /pause_generation,
// /continue_generation). Every answer names the weight_version it was generated with. A bad
// request is a 400 with {error: {message}}; nothing a client sends takes the server down.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { readWeights } from '../model/io.ts';
import type { Qwen2Model } from '../model/qwen2.ts';
import type { Tokenizer } from '../model/tokenizer.ts';
import {
  BadRequest, asObject, chatResponse, completionResponse, generateResult, parseChat, parseCompletion, parseGenerate,
  type Finished, type Formatting, type Job, type Limits,
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

export function createRedServer(o: ServeOptions): RedServer {
  const scheduler = new Scheduler(o.model, o.maxBatch, o.maxLen, o.tokenizer, o.weightVersion);
  const limits: Limits = {
    vocabSize: o.model.config.vocabSize, maxLen: o.maxLen, maxTokens: Math.min(o.maxTokens ?? o.maxLen - 1, o.maxLen - 1), maxSequences: 1024,
  };
  let modelDir = path.resolve(o.modelDir);
  const name = o.servedName ?? path.basename(modelDir);
  // Token strings of logprobs are asked for every token: decoded once per id.
  const texts = new Map<number, string>();
  const tokenText = (id: number) => {
    let t = texts.get(id);
    if (t === undefined) texts.set(id, t = o.tokenizer ? o.tokenizer.decode([id], false) : String(id));
    return t;
  };
  const fmt = (): Formatting => ({ id: `cmpl-${randomUUID()}`, created: Math.floor(Date.now() / 1000), model: name, tokenText });

  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    'GET /health': async (_q, res) => send(res, 200, { status: 'ok', weight_version: scheduler.weightVersion, paused: scheduler.isPaused, ...scheduler.load }),
    'GET /get_weight_version': async (_q, res) => send(res, 200, { weight_version: scheduler.weightVersion }),
    'GET /get_model_info': async (_q, res) => send(res, 200, { model_path: modelDir, weight_version: scheduler.weightVersion }),
    'GET /v1/models': async (_q, res) => send(res, 200, {
      object: 'list', data: [{ id: name, object: 'model', created: 0, owned_by: 'red', root: modelDir, max_model_len: o.maxLen }],
    }),
    'POST /v1/completions': async (q, res) => {
      const job = parseCompletion(await readJson(q, o.maxBodyBytes), limits);
      const f = fmt();
      if (job.stream) return stream(res, job, f, 'completion');
      send(res, 200, completionResponse(job, await run(job, res), f));
    },
    'POST /v1/chat/completions': async (q, res) => {
      const job = parseChat(await readJson(q, o.maxBodyBytes), limits);
      const f = { ...fmt(), id: `chatcmpl-${randomUUID()}` };
      if (job.stream) return stream(res, job, f, 'chat');
      send(res, 200, chatResponse(job, await run(job, res), f));
    },
    'POST /generate': async (q, res) => {
      const { job, batched } = parseGenerate(await readJson(q, o.maxBodyBytes), limits);
      const f = fmt();
      const out = (await run(job, res)).map((d) => generateResult(job, d, f));
      send(res, 200, batched ? out : out[0]);
    },
    'POST /update_weights_from_disk': async (q, res) => {
      const b = asObject(await readJson(q, o.maxBodyBytes));
      if (typeof b.model_path !== 'string' || b.model_path === '') throw new BadRequest('model_path must be a model folder path');
      if (b.weight_version !== undefined && b.weight_version !== null && typeof b.weight_version !== 'string') throw new BadRequest('weight_version must be a string');
      const dir = path.resolve(b.model_path);
      const t0 = performance.now();
      try {
        const version = await scheduler.updateWeights(() => {
          const params = readWeights(dir, o.model.layout, o.model.config);
          o.model.params.set(params);
          modelDir = dir;
          return (b.weight_version as string | undefined) ?? String(Number(scheduler.weightVersion) + 1 || 1);
        }, b.abort_all_requests === true);
        const seconds = (performance.now() - t0) / 1000;
        send(res, 200, { success: true, message: `loaded ${dir} in ${seconds.toFixed(2)} s`, num_paused_requests: 0, weight_version: version });
      } catch (err) {
        send(res, 400, { success: false, message: `cannot load ${dir}: ${(err as Error).message}`, weight_version: scheduler.weightVersion });
      }
    },
    'POST /pause_generation': async (_q, res) => { scheduler.pause(); send(res, 200, { success: true, message: 'paused', weight_version: scheduler.weightVersion }); },
    'POST /continue_generation': async (_q, res) => { scheduler.resume(); send(res, 200, { success: true, message: 'continued', weight_version: scheduler.weightVersion }); },
  };

  /** The job's prompts as ids, checked against the cache length. */
  const encode = (job: Job): number[][] => {
    let prompts = job.prompts;
    if (job.messages) {
      if (!o.tokenizer?.hasChatTemplate) throw new BadRequest(`${modelDir} has no chat template; use /v1/completions`);
      prompts = [o.tokenizer.applyChatTemplate(job.messages, true)];
    }
    return prompts.map((p, i) => {
      if (typeof p === 'string' && !o.tokenizer) throw new BadRequest(`${modelDir} has no tokenizer.json: send prompts as token ids`);
      const ids = typeof p === 'string' ? o.tokenizer!.encode(p) : p;
      if (ids.length === 0) throw new BadRequest(`prompt ${i} encodes to no tokens`);
      if (ids.length + job.maxTokens > o.maxLen) throw new BadRequest(`prompt ${i} has ${ids.length} tokens; with max_tokens ${job.maxTokens} it exceeds this server's --max-len ${o.maxLen}`);
      return ids;
    });
  };

  /** Submits every sequence of a job; `onToken` streams. Resolves with the samples in choice order. */
  const submit = (job: Job, res: ServerResponse, onToken?: (index: number, id: number, logprob: number, top?: [number, number][]) => void,
    onDone?: (d: Finished) => void): Promise<Finished[]> => {
    const prompts = encode(job);
    if (job.stop.length > 0 && !o.tokenizer) throw new BadRequest('stop strings need the model folder\'s tokenizer.json');
    const stopIds = new Set([...(job.ignoreEos ? [] : o.eosIds), ...job.stopTokenIds]);
    const seed = job.seed ?? Math.floor(Math.random() * 2 ** 32);
    const reqs: SeqRequest[] = [];
    return new Promise((resolve) => {
      const done: Finished[] = new Array(prompts.length * job.n);
      let left = done.length;
      prompts.forEach((prompt, p) => {
        const group = {};
        for (let j = 0; j < job.n; j++) {
          const index = p * job.n + j;
          const r: SeqRequest = {
            prompt, policy: job.policy, seed, sampleIndex: j, maxTokens: job.maxTokens, stopIds, stopStrings: job.stop,
            topLogprobs: job.logprobs ?? 0, group,
            onToken: onToken ? (id, lp) => onToken(index, id, lp) : undefined,
            onDone: (result) => {
              done[index] = { index, promptIds: prompt, result };
              onDone?.(done[index]);
              if (--left === 0) { res.off('close', cancelAll); resolve(done); }
            },
          };
          reqs.push(r);
        }
      });
      // A client that goes away frees its slots.
      const cancelAll = () => { if (!res.writableFinished) for (const r of reqs) scheduler.cancel(r); };
      res.on('close', cancelAll);
      for (const r of reqs) scheduler.submit(r);
    });
  };
  const run = (job: Job, res: ServerResponse) => submit(job, res);

  /** Server-sent events: a chunk per token (text held back while it may end in a stop string). */
  const stream = async (res: ServerResponse, job: Job, f: Formatting, kind: 'completion' | 'chat'): Promise<void> => {
    const holdBack = Math.max(0, ...job.stop.map((s) => s.length - 1));
    const ids: number[][] = [], shown: string[] = [];
    const write = (choice: Record<string, unknown>) => {
      const chunk = kind === 'completion'
        ? { id: f.id, object: 'text_completion', created: f.created, model: f.model, choices: [choice], weight_version: scheduler.weightVersion }
        : { id: f.id, object: 'chat.completion.chunk', created: f.created, model: f.model, choices: [choice], weight_version: scheduler.weightVersion };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    };
    const emit = (index: number, text: string, extra: Record<string, unknown>, finish: string | null) => {
      const choice = kind === 'completion' ? { index, text, ...extra, finish_reason: finish } : { index, delta: { role: 'assistant', content: text }, ...extra, finish_reason: finish };
      write(choice);
    };
    let headers = false;
    const start = () => {
      if (headers) return;
      headers = true;
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
    };
    const done = submit(job, res, (index, id, lp) => {
      start();
      (ids[index] ??= []).push(id);
      shown[index] ??= '';
      const text = o.tokenizer ? o.tokenizer.decode(ids[index]) : '';
      const safe = text.endsWith('\uFFFD') ? shown[index] : text.slice(0, Math.max(shown[index].length, text.length - holdBack));
      const delta = safe.startsWith(shown[index]) ? safe.slice(shown[index].length) : '';
      shown[index] += delta;
      const extra: Record<string, unknown> = {};
      if (job.returnTokenIds) extra.token_ids = [id];
      if (job.logprobs !== null) extra.logprobs = kind === 'completion' ? { tokens: [tokenText(id)], token_logprobs: [lp], top_logprobs: null } : { content: [{ token: tokenText(id), logprob: lp, bytes: null, top_logprobs: [] }] };
      emit(index, delta, extra, null);
    }, (d) => {
      start();
      const final = d.result.text ?? '';
      const rest = final.startsWith(shown[d.index] ?? '') ? final.slice((shown[d.index] ?? '').length) : '';
      emit(d.index, rest, {}, d.result.finishReason);
    });
    await done;
    start();
    res.end('data: [DONE]\n\n');
  };

  const server = createServer((req, res) => {
    const route = routes[`${req.method} ${(req.url ?? '').split('?')[0]}`];
    const handle = route ?? (async () => send(res, 404, { error: { message: `no route ${req.method} ${req.url}`, type: 'not_found', code: 404 } }));
    handle(req, res).catch((err: unknown) => {
      const status = err instanceof BadRequest ? err.status : 500;
      if (status === 500) process.stderr.write(`red serve: ${req.method} ${req.url}: ${(err as Error).stack ?? String(err)}\n`);
      if (res.headersSent) { res.end(); return; }
      send(res, status, { error: { message: (err as Error).message, type: status === 500 ? 'internal_error' : 'invalid_request_error', code: status } });
      if (status === 413) req.destroy();
    });
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;

  return {
    server, scheduler,
    listen: (host, port) => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const addr = server.address();
        resolve(typeof addr === 'object' && addr ? addr.port : port);
      });
    }),
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
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
    if (declared > limit) { reject(new BadRequest(`the request body is ${declared} bytes; this server accepts at most ${limit}`, 413)); return; }
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) { reject(new BadRequest(`the request body exceeds ${limit} bytes`, 413)); req.pause(); return; }
      parts.push(chunk);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size > limit) return;
      const text = Buffer.concat(parts).toString('utf8');
      if (text.trim() === '') { resolve({}); return; }
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new BadRequest(`the request body is not valid JSON (${(err as Error).message})`));
      }
    });
  });
}
