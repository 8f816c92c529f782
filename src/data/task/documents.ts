// The built-in task's pretraining text: problems with short solutions and with teacher traces,
// and the qwen-boxed prompt ids they are trained after.
import { qwenBoxedPrompt } from '../dataset.ts';
import { Rng } from '../../util/rng.ts';
import { generateProblems, type Problem } from './problems.ts';
import { shortSolution, teacherTrace } from './teacher.ts';
import { renderChatML } from './tokenizer.ts';

/** What the prompt encoder needs of a tokenizer. */
export interface TextEncoder {
  encode(text: string): number[];
}

/**
 * Prompt ids of problems: ChatML of the qwen-boxed prompt, ending with the assistant header.
 * The fixed text around the problem is encoded once: the pre-tokenizer never joins a token
 * across "user\n" | problem or across problem + "\n" | "Please…", so the pieces' ids concatenate
 * to the ids of the whole (a problem starting with whitespace is encoded whole to be safe).
 */
export class PromptEncoder {
  private readonly head: number[];
  private readonly tail: number[];
  private readonly template: [string, string];

  constructor(private readonly tok: TextEncoder) {
    const marker = '\u0001';
    const [head, rest] = renderChatML(qwenBoxedPrompt(marker), true).split(marker);
    if (!rest.startsWith('\n')) throw new Error('qwen-boxed prompt: expected a newline after the problem');
    this.template = [head, rest];
    this.head = tok.encode(head);
    this.tail = tok.encode(rest.slice(1));
  }

  encode(problem: string): number[] {
    if (/^\s/.test(problem)) return this.tok.encode(this.template[0] + problem + this.template[1]);
    return [...this.head, ...this.tok.encode(problem + '\n'), ...this.tail];
  }
}

/** One pretraining document: a problem and the response text the model learns after its prompt. */
export interface PretrainDocument {
  problem: Problem;
  response: string;
  trace: boolean;
}

/**
 * The pretraining pool: `poolSize − round(poolSize · traceShare)` train-split problems with short
 * solutions, then `round(poolSize · traceShare)` train-split problems from a second seeded stream
 * with teacher traces (never a held-out problem; easy ones recur, as facts do in pretraining text).
 */
export function pretrainDocuments(o: {
  seed: number;
  poolSize: number;
  traceShare: number;
  /** Relative frequency of levels 1–5 among the short-solution problems, and among the traced ones. */
  levelWeights: [number, number, number, number, number];
  traceLevelWeights: [number, number, number, number, number];
}): PretrainDocument[] {
  const traces = Math.round(o.poolSize * o.traceShare);
  const short = generateProblems({
    seed: o.seed,
    count: o.poolSize - traces,
    split: 'train',
    levelWeights: o.levelWeights,
    repeats: true,
  });
  const traceSeed = (o.seed ^ 0x7ace) >>> 0;
  const wording = new Rng((traceSeed ^ 0x5eed) >>> 0);
  const long =
    traces > 0
      ? generateProblems({
          seed: traceSeed,
          count: traces,
          split: 'train',
          levelWeights: o.traceLevelWeights,
          repeats: true,
        })
      : [];
  return [
    ...short.map((p) => ({ problem: p, response: shortSolution(p), trace: false })),
    ...long.map((p) => ({ problem: p, response: teacherTrace(p, wording), trace: true })),
  ];
}
