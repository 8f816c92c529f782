// Choosing the next token from one row of logits: greedy, temperature, top-k and top-p
// (nucleus), plus the per-sample random streams that make seeded sampling independent of how
// samples are batched. Logits are a backend tensor: greedy and plain sampling are one backend
// kernel (only the chosen id and its logprob come back); top-k/top-p download the row explicitly
// and run here. The decoding loop lives in sampler.ts.
import type { Backend, Tensor } from '../engine/backend.ts';
import { referenceBackend } from '../engine/reference.ts';
import { Rng } from '../util/rng.ts';

export interface TokenPolicy {
  /** 0 = greedy (argmax); otherwise logits are divided by it before the softmax. */
  temperature: number;
  /** Nucleus: keep the smallest set of most likely tokens whose mass reaches topP; 1 = off. */
  topP: number;
  /** Keep the topK most likely tokens (ties with the k-th kept too); 0 = off. */
  topK: number;
}

export interface ChosenToken {
  id: number;
  /**
   * log of the probability the token was drawn with: softmax(logits / T) restricted to the
   * top-k/top-p set and renormalised. With T = 1 and no truncation (the RL defaults) this is the
   * model's log π(token), what importance ratios need. For greedy (T = 0) a point mass would say
   * 0 for every token, so the model's log-softmax at T = 1 is returned instead.
   */
  logprob: number;
}

/**
 * An independent random stream per (seed, prompt, sample), so sample j of prompt i draws the
 * same numbers whatever else shares its batch. The three integers are mixed with the
 * murmur3 finaliser so that neighbouring indices give unrelated seeds.
 */
export function sampleRng(seed: number, promptIndex: number, sampleIndex: number): Rng {
  let h = mix32(seed >>> 0);
  h = mix32((h ^ Math.imul(promptIndex + 1, 0x9e3779b1)) >>> 0);
  h = mix32((h ^ Math.imul(sampleIndex + 1, 0x85ebca77)) >>> 0);
  return new Rng(h);
}

/** The length of the shortest prefix of ids whose mass reaches target (at least 1). */
function prefixReaching(p: Float64Array, ids: Int32Array, target: number): number {
  let acc = 0;
  for (let i = 0; i < ids.length; i++) {
    acc += p[ids[i]];
    if (acc >= target) return i + 1;
  }
  return Math.max(1, ids.length);
}

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

// Top-p bins: NB bins over RANGE nats of scaled logit below the maximum.
const NB = 4096,
  RANGE = 64;

/**
 * Draws tokens from logits rows of length V. Keeps its scratch buffers between calls so that a
 * 150k vocabulary does not allocate per token.
 */
export class TokenChooser {
  private readonly V: number;
  private readonly p: Float64Array; // (V) unnormalised probabilities exp((z − max)/T)
  private readonly idx: Int32Array; // (V) candidate ids for top-k / top-p
  private readonly heap: Int32Array; // (V) min-heap of ids for top-k selection
  private readonly bin: Uint16Array; // (V) top-p bin of each token
  private readonly binMass = new Float64Array(NB); // (NB) probability mass per bin
  private readonly chosen = new Float64Array(2); // backend.chooseToken's (id, logprob)
  private readonly row: Float32Array; // (V) a downloaded logits row (top-k / top-p)

  /** `backend` draws untruncated and greedy tokens (Backend.chooseToken); top-k/top-p run here. */
  constructor(
    V: number,
    private readonly backend: Backend = referenceBackend,
  ) {
    this.V = V;
    this.p = new Float64Array(V);
    this.idx = new Int32Array(V);
    this.heap = new Int32Array(V);
    this.bin = new Uint16Array(V);
    this.row = new Float32Array(V);
  }

  /** logits[off .. off+V) downloaded into a scratch row (valid until the next call). */
  download(logits: Tensor<'f32'>, off: number): Float32Array {
    return this.backend.download(this.backend.view(logits, off, this.V), this.row);
  }

  /** Chooses a token from logits[off .. off+V) (a backend tensor). */
  choose(logitsT: Tensor<'f32'>, off: number, policy: TokenPolicy, rng: Rng): ChosenToken {
    const V = this.V;
    const useK = policy.topK > 0 && policy.topK < V;
    const useP = policy.topP < 1;
    if (policy.temperature === 0 || (!useK && !useP)) {
      // Greedy, or the inverse CDF in vocabulary order: one backend kernel.
      const invT = policy.temperature === 0 ? 0 : 1 / policy.temperature;
      const row = this.backend.view(logitsT, off, V);
      this.backend.chooseToken(this.chosen, row, V, invT, invT === 0 ? 0 : rng.uniform());
      return { id: this.chosen[0], logprob: this.chosen[1] };
    }
    return this.truncated(this.download(logitsT, off), policy, rng);
  }

  /** Top-k and/or top-p on a host row of V logits. */
  private truncated(logits: Float32Array, policy: TokenPolicy, rng: Rng): ChosenToken {
    const V = this.V,
      off = 0;
    const useK = policy.topK > 0 && policy.topK < V;
    const useP = policy.topP < 1;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[off + v] > max) max = logits[off + v];
    const invT = 1 / policy.temperature;
    const p = this.p;
    let total = 0;
    for (let v = 0; v < V; v++) {
      const e = Math.exp((logits[off + v] - max) * invT);
      p[v] = e;
      total += e;
    }
    let kept: number;
    if (useK) {
      // The top-k candidates, most likely first; then top-p on their renormalised mass.
      const n = this.topKIds(p, policy.topK);
      const cand = this.idx.subarray(0, n);
      cand.sort((a, b) => p[b] - p[a] || a - b);
      kept = n;
      if (useP) {
        let mass = 0;
        for (let i = 0; i < n; i++) mass += p[cand[i]];
        kept = prefixReaching(p, cand, policy.topP * mass);
      }
    } else kept = this.nucleus(logits, off, max, invT, policy.topP * total);
    const cand = this.idx;
    let keptMass = 0;
    for (let i = 0; i < kept; i++) keptMass += p[cand[i]];
    const u = rng.uniform() * keptMass;
    let acc = 0,
      id = cand[kept - 1];
    for (let i = 0; i < kept; i++) {
      acc += p[cand[i]];
      if (acc > u) {
        id = cand[i];
        break;
      }
    }
    return { id, logprob: Math.log(p[id] / keptMass) };
  }

  /**
   * Top-p without a full sort; puts the nucleus into idx and returns its size. Tokens are binned
   * by their scaled logit (max − z)/T (bin width RANGE/NB, everything beyond RANGE in the last
   * bin); the bins are walked from the most likely down until their mass reaches `target`. Every
   * token of the bins above the boundary bin is kept, and only the boundary bin is sorted and
   * cut where the cumulative mass reaches the target: the same set a full sort would keep.
   */
  private nucleus(logits: Float32Array, off: number, max: number, invT: number, target: number): number {
    const V = this.V,
      p = this.p,
      bin = this.bin,
      mass = this.binMass,
      idx = this.idx;
    mass.fill(0);
    const perUnit = NB / RANGE;
    for (let v = 0; v < V; v++) {
      const b = Math.min(NB - 1, Math.floor((max - logits[off + v]) * invT * perUnit));
      bin[v] = b;
      mass[b] += p[v];
    }
    let above = 0,
      last = NB - 1;
    for (let b = 0; b < NB; b++) {
      if (above + mass[b] >= target) {
        last = b;
        break;
      }
      above += mass[b];
    }
    let n = 0;
    for (let v = 0; v < V; v++) if (bin[v] < last) idx[n++] = v;
    let m = n;
    for (let v = 0; v < V; v++) if (bin[v] === last) idx[m++] = v;
    const boundary = idx.subarray(n, m);
    boundary.sort((a, b) => p[b] - p[a] || a - b);
    return n + prefixReaching(p, boundary, target - above);
  }

  /**
   * Puts into idx the ids whose p is at least the k-th largest (ties included, as
   * transformers' TopKLogitsWarper keeps them); returns how many. O(V log k) with a min-heap.
   */
  private topKIds(p: Float64Array, k: number): number {
    const heap = this.heap;
    let size = 0;
    const less = (a: number, b: number) => p[a] < p[b];
    const siftDown = (i: number) => {
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < size && less(heap[l], heap[m])) m = l;
        if (r < size && less(heap[r], heap[m])) m = r;
        if (m === i) return;
        const t = heap[i];
        heap[i] = heap[m];
        heap[m] = t;
        i = m;
      }
    };
    for (let v = 0; v < this.V; v++) {
      if (size < k) {
        let i = size++;
        heap[i] = v;
        while (i > 0) {
          const parent = (i - 1) >> 1;
          if (!less(heap[i], heap[parent])) break;
          const t = heap[i];
          heap[i] = heap[parent];
          heap[parent] = t;
          i = parent;
        }
      } else if (p[v] > p[heap[0]]) {
        heap[0] = v;
        siftDown(0);
      }
    }
    const kth = p[heap[0]];
    let n = 0;
    for (let v = 0; v < this.V; v++) if (p[v] >= kth) this.idx[n++] = v;
    return n;
  }
}
