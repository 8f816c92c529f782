// Continuous batching for `red serve`: sequences from any number of HTTP requests share one KV
// cache and one decode step. Between steps the loop admits waiting sequences into free slots
// (prefilled together in one packed pass), and applies weight updates once the sequences running
// on the old weights have finished (or were aborted). Token choice is rollout/sampling.ts's, so a
// seeded request draws exactly what `red generate` draws for the same prompt and seed.
// Logits that need more than the kernels do (penalties, logit_bias, min_tokens, min_p, top or raw
// logprobs) are downloaded, processed on the host (logits.ts) and drawn from a re-uploaded copy.
// Simplified: samples of one request share a prefill only when they are admitted together.
import type { Backend, Tensor } from '../engine/backend.ts';
import type { ModelConfig } from '../model/config.ts';
import { KvDecoder } from '../model/decode.ts';
import type { ModelViews, Weight } from '../model/params.ts';
import type { TokenDecoder } from '../model/tokenizer.ts';
import { TokenChooser, sampleRng, type TokenPolicy } from '../rollout/sampling.ts';
import type { Rng } from '../util/rng.ts';
import {
  SeenTokens,
  logSoftmaxAt,
  processLogits,
  topLogprobs,
  type LogitsProcessing,
  type LogprobsMode,
} from './logits.ts';
import { stopIn } from './text.ts';

/** What the scheduler needs of the served model (a Qwen2Model fits); params are updated in place. */
export interface ServedModel {
  readonly config: ModelConfig;
  readonly w: ModelViews<Weight>;
  readonly backend: Backend;
}

export type SeqFinish = 'stop' | 'length' | 'abort';

export interface SeqRequest {
  prompt: number[];
  policy: TokenPolicy;
  /** Sample j of a request with seed s draws from sampleRng(s, 0, j), as `red generate` does. */
  seed: number;
  sampleIndex: number;
  /** New tokens at most (0: the sample ends at once, empty). */
  maxTokens: number;
  /** Until this many tokens are out, stopIds cannot be drawn and stop strings are not checked. */
  minTokens: number;
  stopIds: ReadonlySet<number>;
  stopStrings: string[];
  /** The text keeps the stop string or stop token that ended the sample. */
  includeStop: boolean;
  /** Penalties, logit_bias, min_p (null: none). */
  logits: LogitsProcessing | null;
  /** Whether the response reports logprobs (in raw mode they cost a host pass). */
  logprobs: boolean;
  /** > 0: the `topLogprobs` most likely tokens of each step are reported too. */
  topLogprobs: number;
  /** Samples of one request share this key, so their prompt is prefilled once when admitted together. */
  group: object;
  /** Each token that does not end the sample (the last one is in onDone's result). */
  onToken?: (id: number, logprob: number, top: [number, number][] | null) => void;
  onDone: (result: SeqResult) => void;
}

export interface SeqResult {
  ids: number[];
  logprobs: number[];
  /** Per step: [id, logprob] of the most likely tokens (only when topLogprobs > 0). */
  top: [number, number][][];
  finishReason: SeqFinish;
  /** Text cut before a stop string, without a final stop token (unless includeStop); only with a tokenizer. */
  text?: string;
  /** The stop string or id that ended the sample. */
  matched?: string | number;
  weightVersion: string;
}

interface Running {
  req: SeqRequest;
  slot: number;
  rng: Rng;
  ids: number[];
  logprobs: number[];
  top: [number, number][][];
  pos: number;
  matched?: string | number;
  /** Token counts for the penalties (only when the request has some). */
  seen: SeenTokens | null;
}

interface PendingUpdate {
  apply: () => string;
  resolve: (version: string) => void;
  reject: (err: Error) => void;
}

const ADMISSION_WINDOW_MS = 3;
/** A burst that keeps arriving is gathered for at most this long before its first prefill. */
const ADMISSION_MAX_MS = 25;

export class Scheduler {
  private readonly dec: KvDecoder;
  private readonly chooser: TokenChooser;
  private readonly V: number;
  /** (V) a processed logits row, uploaded for the kernel to draw from. */
  private readonly processedRow: Tensor<'f32'>;
  private readonly backend: Backend;
  private waiting: SeqRequest[] = [];
  private active: Running[] = [];
  private freeSlots: number[] = [];
  private updates: PendingUpdate[] = [];
  private running = false;
  private paused = false;
  /** Tokens generated since start (for /health and benchmarks). */
  generatedTokens = 0;

  constructor(
    model: ServedModel,
    readonly maxBatch: number,
    readonly maxLen: number,
    private readonly tokenizer: TokenDecoder | undefined,
    public weightVersion: string,
    readonly logprobsMode: LogprobsMode = 'processed',
  ) {
    this.V = model.config.vocabSize;
    this.backend = model.backend;
    this.dec = new KvDecoder(model.backend, model.config, model.w, maxBatch, maxLen);
    this.chooser = new TokenChooser(this.V, model.backend); // the same token choice as red generate
    this.processedRow = model.backend.alloc('f32', this.V);
    for (let s = maxBatch - 1; s >= 0; s--) this.freeSlots.push(s);
  }

  get load(): { running: number; waiting: number } {
    return { running: this.active.length, waiting: this.waiting.length };
  }

  submit(req: SeqRequest): void {
    if (req.maxTokens === 0) {
      req.onDone(this.empty('length'));
      return;
    }
    this.waiting.push(req);
    this.kick();
  }

  private empty(finishReason: SeqFinish): SeqResult {
    return { ids: [], logprobs: [], top: [], finishReason, text: '', weightVersion: this.weightVersion };
  }

  /** Ends a sequence early (its client went away); it finishes with 'abort'. */
  cancel(req: SeqRequest): void {
    const w = this.waiting.indexOf(req);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      req.onDone(this.empty('abort'));
      return;
    }
    const r = this.active.find((x) => x.req === req);
    if (r) this.finish(r, 'abort');
  }

  /**
   * Stops generating until resume(). SGLang's modes: 'abort' (its default) ends every running
   * and waiting sequence with finish_reason abort; 'in_place' keeps them where they are.
   */
  pause(mode: 'abort' | 'in_place'): number {
    this.paused = true;
    if (mode === 'in_place') return 0;
    const ended = this.active.length + this.waiting.length;
    for (const r of [...this.active]) this.finish(r, 'abort');
    for (const req of this.waiting.splice(0)) req.onDone(this.empty('abort'));
    return ended;
  }
  resume(): void {
    this.paused = false;
    this.kick();
  }
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Runs `apply` (it replaces the parameters and returns the new version) between decode steps,
   * once no sequence runs on the old weights: running ones finish first, or are aborted with
   * `abortAll` (waiting ones then start on the new weights).
   */
  updateWeights(apply: () => string, abortAll: boolean): Promise<string> {
    if (abortAll) for (const r of [...this.active]) this.finish(r, 'abort');
    return new Promise((resolve, reject) => {
      this.updates.push({ apply, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.running) return;
    this.running = true;
    // From idle, gather a burst of requests (a trainer's prompts, or many clients, sent as separate
    // requests) so that it is prefilled and decoded as one batch rather than joining one by one:
    // wait while requests keep arriving (a quiet window of ADMISSION_WINDOW_MS), up to ADMISSION_MAX_MS.
    if (this.active.length > 0) {
      setTimeout(() => {
        void this.loop();
      }, 0);
      return;
    }
    const started = performance.now();
    let seen = this.waiting.length;
    const gather = () => {
      const more = this.waiting.length > seen && this.waiting.length < this.freeSlots.length;
      seen = this.waiting.length;
      if (more && performance.now() - started < ADMISSION_MAX_MS) setTimeout(gather, ADMISSION_WINDOW_MS);
      else void this.loop();
    };
    setTimeout(gather, ADMISSION_WINDOW_MS);
  }

  private async loop(): Promise<void> {
    try {
      for (;;) {
        if (this.updates.length > 0 && this.active.length === 0) {
          this.applyUpdates();
          continue;
        }
        if (this.paused && this.updates.length === 0) break;
        const admitting = this.updates.length === 0 && this.waiting.length > 0 && this.freeSlots.length > 0;
        if (admitting) this.admit();
        else if (this.active.length > 0) this.step();
        else break;
        // Let requests arrive (and responses stream out) between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (err) {
      // A fault of the engine must not take the server down: every sequence ends as aborted.
      process.stderr.write(
        `red serve: generation failed (${(err as Error).message}); aborting ${this.active.length + this.waiting.length} sequences\n`,
      );
      for (const r of [...this.active]) this.finish(r, 'abort');
      for (const req of this.waiting.splice(0)) req.onDone(this.empty('abort'));
    } finally {
      this.running = false;
    }
  }

  private applyUpdates(): void {
    for (const u of this.updates.splice(0)) {
      try {
        this.weightVersion = u.apply();
        u.resolve(this.weightVersion);
      } catch (err) {
        u.reject(err as Error);
      }
    }
  }

  /** Waiting sequences into free slots: one packed prefill of their prompts, then the first token. */
  private admit(): void {
    const admitted: Running[] = [];
    while (this.freeSlots.length > 0 && this.waiting.length > 0) {
      const req = this.waiting.shift()!;
      admitted.push({
        req,
        slot: this.freeSlots.pop()!,
        rng: sampleRng(req.seed, 0, req.sampleIndex),
        ids: [],
        logprobs: [],
        top: [],
        pos: req.prompt.length - 1,
        seen: req.logits && hasPenalties(req.logits) ? new SeenTokens(req.prompt) : null,
      });
    }
    // The first admitted sample of each group is prefilled; its siblings copy its cache rows.
    const home = new Map<object, number>();
    const prefilled: Running[] = [];
    for (const r of admitted) {
      if (!home.has(r.req.group)) {
        home.set(r.req.group, prefilled.length);
        prefilled.push(r);
      }
    }
    const tokens = prefilled.reduce((a, r) => a + r.req.prompt.length, 0);
    const ids = new Int32Array(tokens),
      cu = new Int32Array(prefilled.length + 1),
      slots = new Int32Array(prefilled.length);
    prefilled.forEach((r, g) => {
      ids.set(r.req.prompt, cu[g]);
      cu[g + 1] = cu[g] + r.req.prompt.length;
      slots[g] = r.slot;
    });
    const logits = this.dec.prefill(ids, cu, slots, prefilled.length);
    for (const r of admitted) {
      const g = home.get(r.req.group)!;
      if (prefilled[g] !== r) this.dec.cache.copySlot(prefilled[g].slot, r.slot, r.req.prompt.length);
    }
    const rows = admitted.map((r) => home.get(r.req.group)! * this.V);
    admitted.forEach((r, i) => this.advance(r, logits, rows[i]));
  }

  /** One decode step over every running sequence. */
  private step(): void {
    const B = this.active.length;
    const ids = new Int32Array(B),
      slots = new Int32Array(B),
      positions = new Int32Array(B);
    this.active.forEach((r, b) => {
      r.pos++;
      ids[b] = r.ids[r.ids.length - 1];
      slots[b] = r.slot;
      positions[b] = r.pos;
    });
    const running = this.active;
    this.active = [];
    const logits = this.dec.step(ids, slots, positions, B);
    running.forEach((r, b) => this.advance(r, logits, b * this.V));
  }

  /** Draws the next token of r from logits[off..off+V); keeps r running or finishes it. */
  private advance(r: Running, logits: Tensor<'f32'>, off: number): void {
    const req = r.req;
    const t = this.draw(r, logits, off);
    r.ids.push(t.id);
    r.logprobs.push(t.logprob);
    if (t.top) r.top.push(t.top);
    r.seen?.add(t.id);
    this.generatedTokens++;
    const reason = this.stopReason(r);
    if (reason) this.finish(r, reason);
    else {
      req.onToken?.(t.id, t.logprob, t.top);
      this.active.push(r);
    }
  }

  /**
   * The kernel's draw, from the logits row as it is or, when the request needs it, from a
   * host-processed copy; with the logprob (and top logprobs) in this server's logprobs mode.
   */
  private draw(r: Running, logits: Tensor<'f32'>, off: number) {
    const req = r.req;
    const banned = r.ids.length < req.minTokens && req.stopIds.size > 0 ? req.stopIds : noIds;
    const raw = this.logprobsMode === 'raw';
    const processing = req.logits !== null || banned !== noIds;
    if (!processing && req.topLogprobs === 0 && !(raw && req.logprobs))
      return { ...this.chooser.choose(logits, off, req.policy, r.rng), top: null };
    const row = this.chooser.download(logits, off).slice(); // (V) the model's logits
    let drawn = row;
    if (processing) {
      drawn = row.slice();
      processLogits(drawn, req.logits, r.seen, req.policy.temperature, banned);
      this.backend.upload(this.processedRow, drawn);
    }
    const t = processing
      ? this.chooser.choose(this.processedRow, 0, req.policy, r.rng)
      : this.chooser.choose(logits, off, req.policy, r.rng);
    const k = req.topLogprobs;
    const logprob = raw ? logSoftmaxAt(row, t.id) : t.logprob;
    const top = k > 0 ? (raw ? topLogprobs(row, k, null) : topLogprobs(drawn, k, req.policy)) : null;
    // The host's sum and the kernel's differ in the last bits: the sampled token shows one value.
    for (const entry of top ?? []) if (entry[0] === t.id) entry[1] = logprob;
    return { id: t.id, logprob, top };
  }

  /** Whether the token just drawn ends r: a stop id, a stop string completed by it, or the length. */
  private stopReason(r: Running): SeqFinish | null {
    const req = r.req,
      id = r.ids[r.ids.length - 1];
    if (req.stopIds.has(id)) {
      r.matched = id;
      return 'stop';
    }
    if (req.stopStrings.length > 0 && this.tokenizer && r.ids.length > req.minTokens) {
      // Only the text near the end can hold a stop string that the newest token completed.
      const window = r.ids.slice(Math.max(0, r.ids.length - 4 * Math.max(...req.stopStrings.map((s) => s.length)) - 2));
      const before = this.tokenizer.decode(window.slice(0, -1)).length;
      const hit = stopIn(this.tokenizer.decode(window), before, req.stopStrings);
      if (hit) {
        r.matched = hit.stop;
        return 'stop';
      }
    }
    return r.ids.length >= req.maxTokens || r.pos + 1 >= this.maxLen ? 'length' : null;
  }

  private finish(r: Running, reason: SeqFinish): void {
    this.active = this.active.filter((x) => x !== r);
    this.freeSlots.push(r.slot);
    const result: SeqResult = {
      ids: r.ids,
      logprobs: r.logprobs,
      top: r.top,
      finishReason: reason,
      matched: r.matched,
      weightVersion: this.weightVersion,
    };
    if (this.tokenizer) result.text = this.finalText(r, reason);
    r.req.onDone(result);
  }

  /** The sample's text: without the stop token that ended it, cut at the stop string (vLLM's rules). */
  private finalText(r: Running, reason: SeqFinish): string {
    const tk = this.tokenizer!,
      req = r.req;
    const stopToken = reason === 'stop' && typeof r.matched === 'number' && !req.includeStop;
    const text = tk.decode(stopToken ? r.ids.slice(0, -1) : r.ids);
    if (reason !== 'stop' || typeof r.matched !== 'string') return text;
    const hit = stopIn(text, tk.decode(r.ids.slice(0, -1)).length, req.stopStrings);
    if (!hit) return text;
    r.matched = hit.stop;
    return text.slice(0, hit.at + (req.includeStop ? hit.stop.length : 0));
  }
}

const noIds: ReadonlySet<number> = new Set();

function hasPenalties(p: LogitsProcessing): boolean {
  return p.presencePenalty !== 0 || p.frequencyPenalty !== 0 || p.repetitionPenalty !== 1;
}
