// Batched sampling with a KV cache and continuous batching: n samples for each prompt, every
// sample in its own cache slot; a sample that ends frees its slot and the next waiting one
// takes it. A prompt is prefilled once and its cached keys/values copied to its other samples.
// Used by the trainer (G samples per prompt) and the evaluator (all samples of all problems).
import type { Backend, Tensor } from '../engine/backend.ts';
import type { ModelConfig } from '../model/config.ts';
import { KvDecoder, type KvPrefix } from '../model/decode.ts';
import type { ModelViews, Weight } from '../model/params.ts';
import type { TokenDecoder } from '../model/tokenizer.ts';
import { fail } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';
import { TokenChooser, sampleRng } from './sampling.ts';

/** What generate() needs of a model (a Qwen2Model fits): shape, parameter views, backend. */
export interface GenerationModel {
  readonly config: ModelConfig;
  /**
   * Views of the current parameters (matrices fp32, or bf16 for a bf16 inference model); updated
   * in place by training, so rollouts see new weights.
   */
  readonly w: ModelViews<Weight>;
  readonly backend: Backend;
}

export interface GenerateParams {
  /** Samples per prompt (default 1), or one count per prompt. */
  n?: number | number[];
  /** 0 = greedy; default 1 (the model's own distribution, what RL wants). */
  temperature?: number;
  /** Nucleus sampling mass; default 1 (off). */
  topP?: number;
  /** Keep only the k most likely tokens; default 0 (off). */
  topK?: number;
  /** Maximum new tokens per sample (≥ 1). */
  maxTokens: number;
  /**
   * Sample j of prompt i draws from its own stream sampleRng(seed, i, j): same seed, same
   * prompts → same tokens, however the samples are batched. Pass a new seed per RL step.
   */
  seed?: number;
  /**
   * Per-prompt seeds: sample j of prompt i then draws from sampleRng(promptSeeds[i], 0, j), so
   * its tokens do not depend on where the prompt sits in this call (evaluation in chunks).
   */
  promptSeeds?: number[];
  /** Tokens that end a sample (finishReason 'stop'); the EOS token is kept in ids. */
  eosIds: number[];
  /**
   * Strings that end a sample (finishReason 'stop'; needs `tokenizer`). ids keep every token up
   * to the one that completed the string; text is cut before it.
   */
  stopStrings?: string[];
  /** Turns ids into Sample.text (and is needed for stopStrings). */
  tokenizer?: TokenDecoder;
  /** Concurrent sequences (cache slots); default 64. */
  maxBatch?: number;
  /** Prompt tokens per prefill pass (several prompts packed); default 4096. */
  maxPrefillTokens?: number;
  /** Called after each sampled token (streaming). */
  onToken?: (promptIndex: number, sampleIndex: number, tokenId: number) => void;
  /** Filled with counts and timings when given. */
  stats?: GenerateStats;
}

export interface GenerateStats {
  prefillTokens: number;
  prefillSeconds: number;
  /** Tokens produced by decode steps (the first token of each sample comes from its prefill). */
  decodeTokens: number;
  decodeSeconds: number;
  decodeSteps: number;
  /** Time spent choosing tokens and checking stops (included in decodeSeconds). */
  sampleSeconds: number;
}

export type FinishReason = 'stop' | 'length';

export interface Sample {
  /** The generated token ids (prompt excluded; a final EOS included). */
  ids: number[];
  /** Decoded text without special tokens, cut before a stop string; only with a tokenizer. */
  text?: string;
  /**
   * logprobs[t] = log-prob of ids[t] under the distribution it was drawn from:
   * softmax(logits/T) restricted to top-k/top-p and renormalised (with T = 1 and no truncation,
   * the RL default, exactly the model's log π). For greedy (T = 0): the model's log-softmax.
   */
  logprobs: number[];
  finishReason: FinishReason;
}

export type OnSample = (promptIndex: number, sampleIndex: number, sample: Sample) => void;

/** An empty stats record to pass as params.stats. */
export function newGenerateStats(): GenerateStats {
  return { prefillTokens: 0, prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0, decodeSteps: 0, sampleSeconds: 0 };
}

// A decoder (and its cache) is kept per parameter-view object and reused while it is big enough,
// so repeated rollouts do not reallocate hundreds of MB of cache every step.
// A decoder in use by a running generate() (calls interleave at their awaits) is never shared:
// a concurrent call on the same model gets a decoder of its own.
const decoders = new WeakMap<ModelViews<Weight>, KvDecoder>();
const busy = new WeakSet<KvDecoder>();

function acquireDecoder(model: GenerationModel, slots: number, maxLen: number): KvDecoder {
  const d = decoders.get(model.w);
  if (d && busy.has(d)) return claim(new KvDecoder(model.backend, model.config, model.w, slots, maxLen));
  if (d && d.backend === model.backend && d.cache.slots >= slots && d.cache.maxLen >= maxLen) return claim(d);
  decoders.delete(model.w); // release the old cache before allocating the new one
  const fresh = new KvDecoder(model.backend, model.config, model.w, slots, maxLen);
  decoders.set(model.w, fresh);
  return claim(fresh);
}

function claim(d: KvDecoder): KvDecoder {
  busy.add(d);
  return d;
}

/** Drops the KV cache kept for this model between generate() calls (e.g. before training). */
export function releaseGenerationCache(model: GenerationModel): void {
  decoders.delete(model.w);
}

interface Running {
  prompt: number;
  sample: number;
  slot: number;
  rng: Rng;
  ids: number[];
  logprobs: number[];
  /** Position of the last sampled token (fed at the next step). */
  pos: number;
}

interface PromptState {
  /** Samples admitted so far. */
  started: number;
  /** Next-token logits after the prompt (V), kept until every sample has drawn its first token. */
  logits: Tensor<'f32'> | null;
  /** Cached keys/values of the prompt, kept while samples are still waiting for a slot. */
  prefix: KvPrefix | null;
}

/** generate()'s parameters checked and defaulted (the sampling policy, limits, stop strings). */
interface GenerateSettings {
  counts: number[];
  policy: { temperature: number; topP: number; topK: number };
  seed: number;
  maxTokens: number;
  maxBatch: number;
  maxPrefill: number;
  stopStrings: string[];
  longestPrompt: number;
}

/** Checks every parameter and prompt id against the model; one line naming the first problem. */
function checkedSettings(V: number, prompts: number[][], params: GenerateParams): GenerateSettings {
  const counts = typeof params.n === 'object' ? params.n : prompts.map(() => (params.n as number | undefined) ?? 1);
  const temperature = params.temperature ?? 1;
  const policy = { temperature, topP: params.topP ?? 1, topK: params.topK ?? 0 };
  const maxTokens = params.maxTokens;
  const maxBatch = params.maxBatch ?? 64;
  const stopStrings = (params.stopStrings ?? []).filter((s) => s.length > 0);
  if (counts.length !== prompts.length) fail(`generate: n has ${counts.length} counts for ${prompts.length} prompts`);
  for (const c of counts) if (!Number.isInteger(c) || c < 1) fail(`generate: n must be a positive integer, got ${c}`);
  const promptSeeds = params.promptSeeds;
  if (promptSeeds && promptSeeds.length !== prompts.length)
    fail(`generate: promptSeeds has ${promptSeeds.length} seeds for ${prompts.length} prompts`);
  if (!Number.isInteger(maxTokens) || maxTokens < 1)
    fail(`generate: maxTokens must be a positive integer, got ${maxTokens}`);
  if (!(temperature >= 0)) fail(`generate: temperature must be ≥ 0, got ${temperature}`);
  if (!(policy.topP > 0 && policy.topP <= 1)) fail(`generate: topP must be in (0, 1], got ${policy.topP}`);
  if (!Number.isInteger(policy.topK) || policy.topK < 0)
    fail(`generate: topK must be a non-negative integer, got ${policy.topK}`);
  if (!Number.isInteger(maxBatch) || maxBatch < 1)
    fail(`generate: maxBatch must be a positive integer, got ${maxBatch}`);
  if (stopStrings.length > 0 && !params.tokenizer) fail('generate: stop strings need a tokenizer');
  for (const id of params.eosIds)
    if (!Number.isInteger(id) || id < 0 || id >= V) fail(`generate: EOS id ${id} outside the vocabulary (0..${V - 1})`);
  let longestPrompt = 0;
  prompts.forEach((p, i) => {
    if (p.length === 0) fail(`generate: prompt ${i} is empty`);
    for (const id of p)
      if (!Number.isInteger(id) || id < 0 || id >= V)
        fail(`generate: prompt ${i} has token id ${id} outside the vocabulary (0..${V - 1})`);
    longestPrompt = Math.max(longestPrompt, p.length);
  });
  const seed = params.seed ?? 0;
  const maxPrefill = params.maxPrefillTokens ?? 4096;
  return { counts, policy, seed, maxTokens, maxBatch, maxPrefill, stopStrings, longestPrompt };
}

/**
 * n samples for every prompt (token ids). Returns samples[promptIndex][sampleIndex], and calls
 * onSample as each one finishes (in finishing order) so rewards can start early.
 */
export async function generate(
  model: GenerationModel,
  prompts: number[][],
  params: GenerateParams,
  onSample?: OnSample,
): Promise<Sample[][]> {
  const settings = checkedSettings(model.config.vocabSize, prompts, params);
  if (prompts.length === 0) return [];
  const run = new GenerationRun(model, prompts, params, settings, onSample);
  try {
    while (run.pending()) {
      // Samples that end at once free their slots: admit again before stepping.
      if (run.canAdmit()) run.admit();
      else {
        run.step();
        // Let timers, signals and progress output run between steps.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    run.release();
  }
  return run.results;
}

/** One generate() call: its work queue, KV-cache slots, prompts' cached prefixes and running samples. */
class GenerationRun {
  readonly results: Sample[][];
  private readonly V: number;
  private readonly dec: KvDecoder;
  private readonly chooser: TokenChooser;
  private readonly eos: Set<number>;
  /** Trailing tokens decoded to see a stop string complete: one of c UTF-16 units spans ≤ 4c byte-level tokens. */
  private readonly stopWindow: number;
  /** Work items in prompt order: (prompt, sample). */
  private readonly work: [number, number][] = [];
  private nextWork = 0;
  private readonly promptState: PromptState[];
  private readonly freeSlots: number[] = [];
  private active: Running[] = [];

  constructor(
    model: GenerationModel,
    private readonly prompts: number[][],
    private readonly params: GenerateParams,
    private readonly s: GenerateSettings,
    private readonly onSample?: OnSample,
  ) {
    this.V = model.config.vocabSize;
    this.results = s.counts.map((c) => new Array<Sample>(c));
    this.eos = new Set(params.eosIds);
    this.stopWindow = stopWindow(s.stopStrings);
    s.counts.forEach((c, i) => {
      for (let j = 0; j < c; j++) this.work.push([i, j]);
    });
    const slots = Math.min(s.maxBatch, this.work.length);
    this.dec = acquireDecoder(model, slots, s.longestPrompt + s.maxTokens);
    this.chooser = new TokenChooser(this.V, model.backend);
    this.promptState = prompts.map(() => ({ started: 0, logits: null, prefix: null }));
    for (let slot = slots - 1; slot >= 0; slot--) this.freeSlots.push(slot);
  }

  pending(): boolean {
    return this.nextWork < this.work.length || this.active.length > 0;
  }

  canAdmit(): boolean {
    return this.freeSlots.length > 0 && this.nextWork < this.work.length;
  }

  release(): void {
    busy.delete(this.dec);
  }

  /** Waiting samples into free slots: prefill their uncached prompts, then draw each one's first token. */
  admit(): void {
    const { prompts, promptState } = this;
    const admitted: Running[] = [];
    while (this.canAdmit()) {
      const [prompt, sample] = this.work[this.nextWork++];
      const seeds = this.params.promptSeeds;
      const rng = seeds ? sampleRng(seeds[prompt], 0, sample) : sampleRng(this.s.seed, prompt, sample);
      const slot = this.freeSlots.pop()!;
      admitted.push({ prompt, sample, slot, rng, ids: [], logprobs: [], pos: prompts[prompt].length - 1 });
    }
    const t0 = now();
    // The first admitted sample of an uncached prompt is the one its prefill writes into.
    const toPrefill = admitted.filter(
      (r) => promptState[r.prompt].logits === null && r === admitted.find((x) => x.prompt === r.prompt),
    );
    this.prefill(toPrefill);
    for (const r of admitted) {
      const st = promptState[r.prompt];
      const home = toPrefill.find((x) => x.prompt === r.prompt);
      if (home && home !== r) this.dec.cache.copySlot(home.slot, r.slot, prompts[r.prompt].length);
      else if (!home) this.dec.cache.restorePrefix(st.prefix!, r.slot);
      st.started++;
    }
    // Prompts with samples still waiting keep their keys/values outside the cache.
    for (const r of toPrefill) {
      const st = promptState[r.prompt];
      if (st.started < this.s.counts[r.prompt]) st.prefix = this.dec.cache.savePrefix(r.slot, prompts[r.prompt].length);
    }
    if (this.params.stats) this.params.stats.prefillSeconds += now() - t0;
    for (const r of admitted) this.advance(r, promptState[r.prompt].logits!, 0);
    for (const r of admitted) {
      const st = promptState[r.prompt];
      if (st.started === this.s.counts[r.prompt]) {
        st.logits = null;
        st.prefix = null;
      }
    }
  }

  /** Packed prefills of the given samples' prompts, at most maxPrefill tokens each; keeps each prompt's last logits. */
  private prefill(toPrefill: Running[]): void {
    const { prompts, V } = this;
    for (let i = 0; i < toPrefill.length;) {
      let tokens = 0,
        j = i;
      while (j < toPrefill.length && (j === i || tokens + prompts[toPrefill[j].prompt].length <= this.s.maxPrefill))
        tokens += prompts[toPrefill[j++].prompt].length;
      const group = toPrefill.slice(i, j);
      const ids = new Int32Array(tokens),
        cu = new Int32Array(group.length + 1),
        slotIds = new Int32Array(group.length);
      group.forEach((r, g) => {
        ids.set(prompts[r.prompt], cu[g]);
        cu[g + 1] = cu[g] + prompts[r.prompt].length;
        slotIds[g] = r.slot;
      });
      const logits = this.dec.prefill(ids, cu, slotIds, group.length);
      const be = this.dec.backend;
      group.forEach((r, g) => {
        const own = be.alloc('f32', V); // kept on the backend past the next prefill
        be.copy(own, be.view(logits, g * V, V));
        this.promptState[r.prompt].logits = own;
      });
      if (this.params.stats) this.params.stats.prefillTokens += tokens;
      i = j;
    }
  }

  /** One decode step over every running sample. */
  step(): void {
    const active = this.active;
    const B = active.length;
    const t0 = now();
    const ids = new Int32Array(B),
      slotIds = new Int32Array(B),
      positions = new Int32Array(B);
    active.forEach((r, b) => {
      r.pos++;
      ids[b] = r.ids[r.ids.length - 1];
      slotIds[b] = r.slot;
      positions[b] = r.pos;
    });
    const logits = this.dec.step(ids, slotIds, positions, B);
    const t1 = now();
    this.active = [];
    active.forEach((r, b) => this.advance(r, logits, b * this.V));
    const stats = this.params.stats;
    if (stats) {
      stats.decodeTokens += B;
      stats.decodeSteps++;
      stats.decodeSeconds += now() - t0;
      stats.sampleSeconds += now() - t1;
    }
  }

  /** Draws r's next token from logits[off..off+V); keeps r running or finishes it. */
  private advance(r: Running, logits: Tensor<'f32'>, off: number): void {
    const t = this.chooser.choose(logits, off, this.s.policy, r.rng);
    const reason = this.append(r, t.id, t.logprob);
    if (reason) this.finish(r, reason);
    else this.active.push(r);
  }

  /** Appends a token; returns the finish reason when the sample is done. */
  private append(r: Running, id: number, logprob: number): FinishReason | null {
    r.ids.push(id);
    r.logprobs.push(logprob);
    this.params.onToken?.(r.prompt, r.sample, id);
    if (this.eos.has(id)) return 'stop';
    const tok = this.params.tokenizer;
    if (tok && endsStopString(r.ids, this.s.stopStrings, tok, this.stopWindow)) return 'stop';
    return r.ids.length >= this.s.maxTokens ? 'length' : null;
  }

  private finish(r: Running, reason: FinishReason): void {
    this.freeSlots.push(r.slot);
    const sample: Sample = { ids: r.ids, logprobs: r.logprobs, finishReason: reason };
    const tok = this.params.tokenizer;
    if (tok) {
      const text = tok.decode(r.ids);
      sample.text = reason === 'stop' ? cutBeforeStopString(text, this.s.stopStrings) : text;
    }
    this.results[r.prompt][r.sample] = sample;
    this.onSample?.(r.prompt, r.sample, sample);
  }
}

/** Trailing tokens decoded to see a stop string complete: one of c UTF-16 units spans ≤ 4c byte-level tokens. */
export function stopWindow(stopStrings: readonly string[]): number {
  return 4 * Math.max(0, ...stopStrings.map((x) => x.length)) + 2;
}

/** Whether the last of `ids` completes one of the stop strings (only the last `window` ids decoded). */
export function endsStopString(
  ids: readonly number[],
  stopStrings: readonly string[],
  tok: TokenDecoder,
  window: number,
): boolean {
  if (stopStrings.length === 0) return false;
  const tail = tok.decode(ids.slice(Math.max(0, ids.length - window)));
  return stopStrings.some((x) => tail.includes(x));
}

/** The text cut before the first stop string it holds. */
export function cutBeforeStopString(text: string, stopStrings: readonly string[]): string {
  let cut = text.length;
  for (const x of stopStrings) {
    const at = text.indexOf(x);
    if (at >= 0 && at < cut) cut = at;
  }
  return text.slice(0, cut);
}

const now = () => performance.now() / 1000;
