// Choosing the next token from one row of logits: greedy, temperature, top-k and top-p
// (nucleus), plus the per-sample random streams that make seeded sampling independent of how
// samples are batched. Logits are a backend tensor: every choice is one backend kernel
// (chooseToken, or chooseTokenTruncated with top-k/top-p), and only the chosen id and its
// logprob come back. The decoding loop lives in sampler.ts.
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

function mix32(x: number): number {
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** Draws tokens from logits rows of length V on a backend (its chooseToken kernels). */
export class TokenChooser {
  private readonly chosen = new Float64Array(2); // the kernel's (id, logprob)
  private readonly row: Float32Array; // (V) a downloaded logits row (top logprobs)

  constructor(
    private readonly V: number,
    private readonly backend: Backend = referenceBackend,
  ) {
    this.row = new Float32Array(V);
  }

  /** logits[off .. off+V) downloaded into a scratch row (valid until the next call). */
  download(logits: Tensor<'f32'>, off: number): Float32Array {
    return this.backend.download(this.backend.view(logits, off, this.V), this.row);
  }

  /** Chooses a token from logits[off .. off+V) (a backend tensor). */
  choose(logitsT: Tensor<'f32'>, off: number, policy: TokenPolicy, rng: Rng): ChosenToken {
    const V = this.V;
    const row = this.backend.view(logitsT, off, V);
    const useK = policy.topK > 0 && policy.topK < V;
    const useP = policy.topP < 1;
    if (policy.temperature === 0 || (!useK && !useP)) {
      // Greedy, or the inverse CDF in vocabulary order over the whole row.
      const invT = policy.temperature === 0 ? 0 : 1 / policy.temperature;
      this.backend.chooseToken(this.chosen, row, V, invT, invT === 0 ? 0 : rng.uniform());
    } else {
      const topK = useK ? policy.topK : 0;
      this.backend.chooseTokenTruncated(this.chosen, row, V, 1 / policy.temperature, topK, policy.topP, rng.uniform());
    }
    return { id: this.chosen[0], logprob: this.chosen[1] };
  }
}
