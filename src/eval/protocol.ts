// The paper's evaluation protocol as data (RED-SPEC "Reward and evaluation protocol"): the
// "qwen-boxed" prompt, the stop strings, the sampling settings per benchmark, and the two small
// interfaces the evaluator runs through: a Generator (the batched sampler behind a model) and an
// AnswerVerifier (the math verifier). Tests substitute fakes for both.
import type { ChatMessage } from '../model/tokenizer.ts';
import type { BenchmarkSpec } from './benchmarks.ts';

/** How a problem becomes a prompt. */
export type PromptStyle = 'qwen-boxed' | 'raw';
export const PROMPT_STYLES: readonly PromptStyle[] = ['qwen-boxed', 'raw'];

/** A chat conversation (rendered by the model's chat template, generation prompt added) or raw text. */
export type PromptInput = { chat: ChatMessage[] } | { text: string };

export const QWEN_BOXED_SYSTEM = 'You are a helpful assistant.';
export const QWEN_BOXED_SUFFIX = '\nPlease reason step by step, and put your final answer within \\boxed{}.';

export function buildPrompt(style: PromptStyle, problem: string): PromptInput {
  switch (style) {
    case 'qwen-boxed':
      return {
        chat: [
          { role: 'system', content: QWEN_BOXED_SYSTEM },
          { role: 'user', content: problem + QWEN_BOXED_SUFFIX },
        ],
      };
    case 'raw':
      // For base models without a chat template: the problem text is the whole prompt.
      return { text: problem };
    default:
      return style satisfies never;
  }
}

/** Generation ends at either Qwen end marker, whether or not the tokenizer lists it as EOS. */
export const STOP_STRINGS = ['<|im_end|>', '<|endoftext|>'];

export interface SamplingSettings {
  /** Samples per problem (32 → avg@32; 1 → pass@1). */
  n: number;
  temperature: number;
  topP: number;
  /** Most new tokens per sample. */
  maxTokens: number;
}

/** The paper's settings apart from n, which each benchmark's spec fixes. */
export const PAPER_SAMPLING = { temperature: 0.6, topP: 1, maxTokens: 8192 } as const;

/** A benchmark's sampling settings: the paper's, with any command-line overrides on top. */
export function samplingFor(spec: BenchmarkSpec, overrides: Partial<SamplingSettings> = {}): SamplingSettings {
  return {
    n: overrides.n ?? spec.samples,
    temperature: overrides.temperature ?? PAPER_SAMPLING.temperature,
    topP: overrides.topP ?? PAPER_SAMPLING.topP,
    maxTokens: overrides.maxTokens ?? PAPER_SAMPLING.maxTokens,
  };
}

/** One prompt to sample `n` completions of. `seed` is derived from the run seed and the problem. */
export interface GenerationRequest {
  prompt: PromptInput;
  n: number;
  seed: number;
}

export interface Completion {
  /** The response text, stop marker excluded. */
  text: string;
  /** Response length in tokens, a final EOS included (what LEN averages, as verl counts it). */
  tokens: number;
  /** 'stop' (EOS or a stop string) or 'length' (hit maxTokens); kept as the sampler reports it. */
  finishReason: string;
}

export interface GenerateOptions {
  temperature: number;
  topP: number;
  maxTokens: number;
  stopStrings: readonly string[];
  /** Called once per finished sequence, for progress. */
  onSequenceDone?: () => void;
}

/**
 * Samples completions for a batch of requests in one continuous-batching call:
 * result[i] holds requests[i].n completions.
 */
export type Generator = (requests: readonly GenerationRequest[], opts: GenerateOptions) => Promise<Completion[][]>;

export interface Verdict {
  equal: boolean;
  /** Why not equal (no answer found, parse failure, ...), when the verifier says. */
  reason?: string;
  /** The answer the verifier extracted from the response. */
  extracted?: string;
}

/** Decides whether a response's final answer equals the gold answer. */
export interface AnswerVerifier {
  verify(gold: string | string[], response: string): Promise<Verdict>;
  /** Starts worker processes or threads ahead of the first verdict (kept out of the timed part). */
  warm?(): Promise<void>;
  /** Releases worker processes or threads, if any. */
  close?(): Promise<void> | void;
}

/** A per-problem seed: the run seed mixed with the benchmark and problem index (FNV-1a), so a
 * resumed run samples each remaining problem as the uninterrupted run would have. */
export function problemSeed(runSeed: number, benchmark: string, index: number): number {
  let h = 0x811c9dc5 ^ (runSeed >>> 0);
  for (const ch of `${benchmark}#${index}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return h >>> 0;
}
