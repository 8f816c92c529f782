// The evaluator's Generator and AnswerVerifier over the real parts: prompts through the
// model's chat template and tokenizer, all samples of a chunk in one continuous-batching
// generate() call with a seed per problem, and verdicts from the math verifier (src/reward).
import type { Tokenizer } from '../model/tokenizer.ts';
import { closeVerifier, verify as mathVerify, warmVerifier } from '../reward/index.ts';
import { generate, type GenerateStats, type GenerationModel } from '../rollout/sampler.ts';
import type { AnswerVerifier, Completion, Generator, PromptInput } from './protocol.ts';

export interface SamplerGeneratorOptions {
  model: GenerationModel;
  tokenizer: Tokenizer;
  /** Sequences decoded at once (KV-cache slots). */
  maxBatch?: number;
  /** Accumulates prefill/decode counts and timings across calls when given. */
  stats?: GenerateStats;
}

/** Token ids of a prompt: chat turns through the model's template (generation prompt added). */
export function encodePrompt(tokenizer: Tokenizer, prompt: PromptInput): number[] {
  const text = 'chat' in prompt ? tokenizer.applyChatTemplate(prompt.chat, true) : prompt.text;
  return tokenizer.encode(text);
}

/**
 * How a response ends: the tokenizer's EOS ids plus every stop string that is a single token
 * (`<|im_end|>`, `<|endoftext|>`) as an id, since decoding drops special tokens and such a
 * string could never be seen in text; only the remaining strings are matched on decoded text,
 * which costs a tail decode per token.
 */
export function stopRule(
  tokenizer: Tokenizer,
  stopStrings: readonly string[],
): { eosIds: number[]; stopStrings: string[] } {
  const ids = new Set(tokenizer.eosIds);
  const strings: string[] = [];
  for (const s of stopStrings) {
    const id = tokenizer.tokenToId(s);
    if (id !== undefined) ids.add(id);
    else strings.push(s);
  }
  return { eosIds: [...ids].sort((a, b) => a - b), stopStrings: strings };
}

export function samplerGenerator(o: SamplerGeneratorOptions): Generator {
  return async (requests, opts) => {
    const stop = stopRule(o.tokenizer, opts.stopStrings);
    const prompts = requests.map((r) => encodePrompt(o.tokenizer, r.prompt));
    const samples = await generate(
      o.model,
      prompts,
      {
        n: requests.map((r) => r.n),
        temperature: opts.temperature,
        topP: opts.topP,
        maxTokens: opts.maxTokens,
        // Sample j of a problem draws from its own stream, whatever chunk the problem lands in.
        promptSeeds: requests.map((r) => r.seed),
        eosIds: stop.eosIds,
        stopStrings: stop.stopStrings,
        tokenizer: o.tokenizer,
        ...(o.maxBatch !== undefined ? { maxBatch: o.maxBatch } : {}),
        ...(o.stats ? { stats: o.stats } : {}),
      },
      () => opts.onSequenceDone?.(),
    );
    return samples.map((group) =>
      group.map((s): Completion => ({
        text: s.text ?? o.tokenizer.decode(s.ids),
        tokens: s.ids.length,
        finishReason: s.finishReason,
      })),
    );
  };
}

/** The math verifier (Math-Verify semantics, CAS worker pool) as the evaluator's AnswerVerifier. */
export const mathVerifier: AnswerVerifier = {
  verify: (gold, response) => mathVerify(gold, response),
  warm: () => warmVerifier(),
  close: () => closeVerifier(),
};
