// Continuous batching for `red serve`: sequences from any number of HTTP requests share one KV
// cache and one decode step. Between steps the loop admits waiting sequences into free slots
// (prefilled together in one packed pass), and applies weight updates once the sequences running
// on the old weights have finished (or were aborted). Token choice is rollout/sampling.ts's, so a
// seeded request draws exactly what `red generate` draws for the same prompt and seed.
// Simplified: samples of one request share a prefill only when they are admitted together.
import type { Backend, Tensor } from '../engine/backend.ts';
import type { ModelConfig } from '../model/config.ts';
import { KvDecoder } from '../model/decode.ts';
import type { ModelViews, Weight } from '../model/params.ts';
import type { TokenDecoder } from '../model/tokenizer.ts';
import { TokenChooser, sampleRng, type TokenPolicy } from '../rollout/sampling.ts';
import type { Rng } from '../util/rng.ts';

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
  maxTokens: number;
  stopIds: ReadonlySet<number>;
  stopStrings: string[];
  /** > 0: the `topLogprobs` most likely tokens of each step are reported too. */
  topLogprobs: number;
  /** Samples of one request share this key, so their prompt is prefilled once when admitted together. */
  group: object;
  onToken?: (id: number, logprob: number) => void;
  onDone: (result: SeqResult) => void;
}

export interface SeqResult {
  ids: number[];
  logprobs: number[];
  /** Per step: [id, logprob] of the most likely tokens (only when topLogprobs > 0). */
  top: [number, number][][];
  finishReason: SeqFinish;
  /** Text cut before a stop string; only with a tokenizer. */
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
  ) {
    this.V = model.config.vocabSize;
    this.dec = new KvDecoder(model.backend, model.config, model.w, maxBatch, maxLen);
    this.chooser = new TokenChooser(this.V, model.backend); // the same token choice as red generate
    for (let s = maxBatch - 1; s >= 0; s--) this.freeSlots.push(s);
  }

  get load(): { running: number; waiting: number } {
    return { running: this.active.length, waiting: this.waiting.length };
  }

  submit(req: SeqRequest): void {
    this.waiting.push(req);
    this.kick();
  }

  /** Ends a sequence early (its client went away); it finishes with 'abort'. */
  cancel(req: SeqRequest): void {
    const w = this.waiting.indexOf(req);
    if (w >= 0) {
      this.waiting.splice(w, 1);
      req.onDone({ ids: [], logprobs: [], top: [], finishReason: 'abort', weightVersion: this.weightVersion });
      return;
    }
    const r = this.active.find((x) => x.req === req);
    if (r) this.finish(r, 'abort');
  }

  pause(): void {
    this.paused = true;
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
      for (const req of this.waiting.splice(0))
        req.onDone({ ids: [], logprobs: [], top: [], finishReason: 'abort', weightVersion: this.weightVersion });
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
    const t = this.chooser.choose(logits, off, req.policy, r.rng);
    r.ids.push(t.id);
    r.logprobs.push(t.logprob);
    if (req.topLogprobs > 0) r.top.push(topLogprobs(this.chooser.download(logits, off), 0, this.V, req.topLogprobs));
    this.generatedTokens++;
    req.onToken?.(t.id, t.logprob);
    let reason: SeqFinish | null = null;
    if (req.stopIds.has(t.id)) {
      reason = 'stop';
      r.matched = t.id;
    } else if (req.stopStrings.length > 0 && this.tokenizer) {
      const window = 4 * Math.max(...req.stopStrings.map((s) => s.length)) + 2;
      const tail = this.tokenizer.decode(r.ids.slice(Math.max(0, r.ids.length - window)));
      const hit = req.stopStrings.find((s) => tail.includes(s));
      if (hit !== undefined) {
        reason = 'stop';
        r.matched = hit;
      }
    }
    if (!reason && (r.ids.length >= req.maxTokens || r.pos + 1 >= this.maxLen)) reason = 'length';
    if (reason) this.finish(r, reason);
    else this.active.push(r);
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
    if (this.tokenizer) {
      let text = this.tokenizer.decode(r.ids);
      if (reason === 'stop' && typeof r.matched === 'string')
        text = text.slice(0, Math.max(0, text.indexOf(r.matched)));
      result.text = text;
    }
    r.req.onDone(result);
  }
}

/** The k most likely tokens of a logits row as [id, log-softmax], most likely first. O(V·k). */
export function topLogprobs(logits: Float32Array, off: number, V: number, k: number): [number, number][] {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[off + v]);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[off + v] - max);
  const lse = max + Math.log(sum);
  const best: [number, number][] = [];
  for (let v = 0; v < V; v++) {
    const z = logits[off + v];
    if (best.length === k && z <= best[k - 1][1]) continue;
    let i = best.length;
    while (i > 0 && best[i - 1][1] < z) i--;
    best.splice(i, 0, [v, z]);
    if (best.length > k) best.pop();
  }
  return best.map(([id, z]) => [id, z - lse]);
}
