// What `red serve` does to a row of logits (V) on the host, beside the backend's token-choice
// kernels (temperature, top-k, top-p): min_tokens, logit_bias, the repetition / frequency /
// presence penalties and min_p, in vLLM v1's order (min_tokens and logit_bias, then the penalties,
// then temperature with min_p, then top-k/top-p in the kernel). And the log-probabilities a
// response reports: `raw` (log-softmax of the model's logits, vLLM's default) or `processed` (of
// the distribution the token was drawn from, what importance sampling needs).
import type { TokenPolicy } from '../rollout/sampling.ts';

export type LogprobsMode = 'raw' | 'processed';

/** The sampling fields that change logits before the kernel draws (all off: null). */
export interface LogitsProcessing {
  /** OpenAI: logit −= presence·[count > 0], over the generated tokens. */
  presencePenalty: number;
  /** OpenAI: logit −= frequency·count, over the generated tokens. */
  frequencyPenalty: number;
  /** vLLM / transformers: a token of the prompt or the output gets logit/r when positive, logit·r otherwise. */
  repetitionPenalty: number;
  /** [token id, bias] pairs added to the logits. */
  logitBias: [number, number][];
  /** Drop tokens whose probability (after temperature) is below minP times the most likely one's. */
  minP: number;
}

/** The tokens a sequence has seen, for the penalties. */
export class SeenTokens {
  readonly generated = new Map<number, number>();
  readonly prompt: ReadonlySet<number>;

  constructor(prompt: readonly number[]) {
    this.prompt = new Set(prompt);
  }

  add(id: number): void {
    this.generated.set(id, (this.generated.get(id) ?? 0) + 1);
  }
}

/**
 * Applies `p` to `row` in place; `banned` (stop ids while min_tokens holds them off) go to −∞.
 * `temperature` scales min_p's threshold: p_T(v) ≥ minP·p_T(max) ⇔ logit_v ≥ max + T·ln(minP).
 */
export function processLogits(
  row: Float32Array,
  p: LogitsProcessing | null,
  seen: SeenTokens | null,
  temperature: number,
  banned: Iterable<number>,
): void {
  for (const id of banned) row[id] = -Infinity;
  if (!p) return;
  for (const [id, bias] of p.logitBias) row[id] += bias;
  if (seen && p.repetitionPenalty !== 1) {
    const r = p.repetitionPenalty;
    for (const id of new Set([...seen.prompt, ...seen.generated.keys()]))
      row[id] = row[id] > 0 ? row[id] / r : row[id] * r;
  }
  if (seen && (p.presencePenalty !== 0 || p.frequencyPenalty !== 0))
    for (const [id, count] of seen.generated) row[id] -= p.frequencyPenalty * count + p.presencePenalty;
  if (p.minP > 0 && temperature > 0) {
    let max = -Infinity;
    for (let v = 0; v < row.length; v++) max = Math.max(max, row[v]);
    const floor = max + temperature * Math.log(p.minP);
    for (let v = 0; v < row.length; v++) if (row[v] < floor) row[v] = -Infinity;
  }
}

/** log softmax(row)[id]. */
export function logSoftmaxAt(row: Float32Array, id: number): number {
  return row[id] - logSumExp(row, 1);
}

function logSumExp(row: Float32Array, invT: number): number {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) max = Math.max(max, row[v]);
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp((row[v] - max) * invT);
  return max * invT + Math.log(sum);
}

/**
 * The k most likely tokens as [id, logprob], most likely first. policy null: log softmax(row)
 * (raw). Otherwise the distribution the kernel draws from: softmax(row/T) restricted to the
 * top-k/top-p set with the kernel's rules (most likely first, ties by the lower id; top-k keeps the
 * k-th's ties; top-p the shortest prefix reaching its share of the mass) and renormalised; a token
 * outside it has −∞. Greedy (T = 0) reports T = 1 without truncation, as the kernel's logprob does.
 */
export function topLogprobs(row: Float32Array, k: number, policy: TokenPolicy | null): [number, number][] {
  const V = row.length;
  const greedy = !policy || policy.temperature === 0;
  const invT = greedy ? 1 : 1 / policy.temperature;
  const truncated = !greedy && ((policy.topK > 0 && policy.topK < V) || policy.topP < 1);
  if (!truncated) {
    const lse = logSumExp(row, invT);
    return mostLikely(row, k).map(([id, z]) => [id, z * invT - lse]);
  }
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, row[v]);
  const p = Float64Array.from(row, (z) => Math.exp((z - max) * invT));
  const order = Array.from({ length: V }, (_, v) => v).sort((a, b) => p[b] - p[a] || a - b);
  let kept = order.length;
  if (policy.topK > 0 && policy.topK < V) {
    const kth = p[order[policy.topK - 1]];
    kept = policy.topK;
    while (kept < V && p[order[kept]] >= kth) kept++;
  }
  if (policy.topP < 1) {
    let total = 0;
    for (let i = 0; i < kept; i++) total += p[order[i]];
    let acc = 0,
      n = 0;
    while (n < kept && acc < policy.topP * total) acc += p[order[n++]];
    kept = Math.max(1, n);
  }
  let mass = 0;
  for (let i = 0; i < kept; i++) mass += p[order[i]];
  return order.slice(0, k).map((id, i) => [id, i < kept ? Math.log(p[id] / mass) : -Infinity]);
}

/** [id, logit] of the k largest logits, largest first (ties: the lower id). O(V·k). */
function mostLikely(row: Float32Array, k: number): [number, number][] {
  const best: [number, number][] = [];
  for (let v = 0; v < row.length; v++) {
    const z = row[v];
    if (best.length === k && z <= best[k - 1][1]) continue;
    let i = best.length;
    while (i > 0 && best[i - 1][1] < z) i--;
    best.splice(i, 0, [v, z]);
    if (best.length > k) best.pop();
  }
  return best;
}
