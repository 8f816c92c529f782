// The SSE stream of a completion or chat request: a chunk per token whose text is held back while
// it may still become a stop string (or ends in half a UTF-8 character), the last token with the
// finish reason, and with stream_options.include_usage a last chunk of no choices and the usage.
// Chat opens with one chunk per choice carrying the assistant role, as OpenAI and vLLM do.
import type { ServerResponse } from 'node:http';
import type { TokenDecoder } from '../model/tokenizer.ts';
import type { Job } from './api.ts';
import { chatLogprobs, completionLogprobs, stopReason, usage, type Finished, type Formatting } from './responses.ts';
import { streamableLength } from './text.ts';

type Json = Record<string, unknown>;

/** What one choice has received and shown so far. */
interface ChoiceState {
  ids: number[];
  logprobs: number[];
  top: [number, number][][];
  shown: string;
  /** text_offset of the next token. */
  offset: number;
  /** Which prompt of the job (its stop strings and logprobs setting). */
  prompt: number;
}

export class SseStream {
  private readonly choices: ChoiceState[] = [];

  constructor(
    private readonly res: ServerResponse,
    private readonly job: Job,
    private readonly f: Formatting,
    private readonly kind: 'completion' | 'chat',
    private readonly tokenizer: TokenDecoder | undefined,
    private readonly weightVersion: () => string,
  ) {
    job.sampling.forEach((s, prompt) => {
      for (let j = 0; j < s.n; j++) this.choices.push({ ids: [], logprobs: [], top: [], shown: '', offset: 0, prompt });
    });
  }

  /** A token that did not end its sample: the text it makes safe to show. */
  token(index: number, id: number, logprob: number, top: [number, number][] | null): void {
    const c = this.choices[index];
    c.ids.push(id);
    c.logprobs.push(logprob);
    c.top.push(top ?? []);
    const text = this.tokenizer ? this.tokenizer.decode(c.ids) : '';
    const safe = text.slice(0, streamableLength(text, this.job.sampling[c.prompt].stop));
    const delta = safe.startsWith(c.shown) ? safe.slice(c.shown.length) : '';
    c.shown += delta;
    this.emit(index, c.ids.length - 1, delta, null);
  }

  /** The sample's end: its last token(s) and the rest of its final text, with the finish reason. */
  done(d: Finished): void {
    const c = this.choices[d.index],
      r = d.result;
    const from = c.ids.length;
    c.ids.push(...r.ids.slice(from));
    c.logprobs.push(...r.logprobs.slice(from));
    c.top.push(...r.top.slice(from));
    const text = r.text ?? '';
    this.emit(d.index, from, text.startsWith(c.shown) ? text.slice(c.shown.length) : '', d);
  }

  /** The usage chunk (when asked for) and [DONE]. */
  end(done: Finished[]): void {
    if (this.job.includeUsage) this.chunk([], { usage: usage(done) });
    else if (!this.res.headersSent) this.chunk([]);
    this.res.end('data: [DONE]\n\n');
  }

  /** Tokens [from, …) of choice `index` with their text, as one chunk. */
  private emit(index: number, from: number, text: string, finish: Finished | null): void {
    const c = this.choices[index],
      f = this.f,
      k = this.job.sampling[c.prompt].logprobs;
    const span = { ids: c.ids.slice(from), logprobs: c.logprobs.slice(from), top: c.top.slice(from) };
    let logprobs: Json | null = null;
    if (k !== null && span.ids.length > 0)
      logprobs = this.kind === 'completion' ? completionLogprobs(span, k, f, c.offset) : chatLogprobs(span, f);
    c.offset += span.ids.reduce((a, id) => a + f.tokenText(id).length, 0);
    const body = this.kind === 'completion' ? { text } : { delta: finish && text === '' ? {} : { content: text } };
    this.chunk([
      {
        index,
        ...body,
        logprobs,
        ...(this.job.returnTokenIds ? { token_ids: span.ids } : {}),
        finish_reason: finish?.result.finishReason ?? null,
        ...(finish ? { stop_reason: stopReason(finish) } : {}),
      },
    ]);
  }

  /** Writes one chunk; the first also writes the headers (and, for chat, the role of every choice). */
  private chunk(choices: Json[], extra: Json = {}): void {
    if (!this.res.headersSent) {
      // Only now: a request refused before its first token still gets its 400.
      this.res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      if (this.kind === 'chat') {
        const role = (index: number) => ({
          index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        });
        this.write({ choices: this.choices.map((_, index) => role(index)) });
      }
    }
    this.write({ choices, ...extra });
  }

  private write(fields: Json): void {
    const body = {
      id: this.f.id,
      object: this.kind === 'completion' ? 'text_completion' : 'chat.completion.chunk',
      created: this.f.created,
      model: this.f.model,
      ...(this.job.includeUsage ? { usage: null } : {}),
      ...fields,
      weight_version: this.weightVersion(),
    };
    this.res.write(`data: ${JSON.stringify(body)}\n\n`);
  }
}
