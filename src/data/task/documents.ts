// The built-in task's pretraining text: lines of f's table, problems with short solutions and
// with teacher traces, and the qwen-boxed prompt ids they are trained after.
import { qwenBoxedPrompt } from '../dataset.ts';
import { Rng } from '../../util/rng.ts';
import { BASE, generateProblems, MODULUS, step, type Problem } from './problems.ts';
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

/** One pretraining document: a prompt and the response text the model learns after it. */
export interface PretrainDocument {
  prompt: string;
  response: string;
  /** A problem with its direct answer, with a teacher trace, or lines of f's table. */
  kind: 'direct' | 'trace' | 'table';
  /** The problem of a direct or trace document. */
  problem?: Problem;
}

/** Lines of f's table per table document. */
export const TABLE_LINES = 12;

/**
 * The pretraining pool of `poolSize` documents: `round(poolSize · tableShare)` documents of
 * TABLE_LINES random lines of f's table ("46 → 32", the knowledge every chain is made of), then
 * train-split problems with direct answers, then `round(poolSize · traceShare)` train-split
 * problems from a second seeded stream with teacher traces (never a held-out problem; problems
 * recur, as facts do in pretraining text).
 */
export function pretrainDocuments(o: {
  seed: number;
  poolSize: number;
  traceShare: number;
  tableShare: number;
  /** Relative frequency of levels 1–5 among the direct-answer problems, and among the traced ones. */
  levelWeights: [number, number, number, number, number];
  traceLevelWeights: [number, number, number, number, number];
}): PretrainDocument[] {
  const traces = Math.round(o.poolSize * o.traceShare);
  const tables = Math.round(o.poolSize * o.tableShare);
  const short = generateProblems({
    seed: o.seed,
    count: o.poolSize - traces - tables,
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
    ...tableDocuments(tables, (o.seed ^ 0xfac7) >>> 0),
    ...short.map((p): PretrainDocument => ({ prompt: p.text, response: shortSolution(p), kind: 'direct', problem: p })),
    ...long.map((p): PretrainDocument => ({
      prompt: p.text,
      response: teacherTrace(p, wording),
      kind: 'trace',
      problem: p,
    })),
  ];
}

/** `count` documents of TABLE_LINES lines of f's table each, the arguments drawn uniformly from 1..96. */
function tableDocuments(count: number, seed: number): PretrainDocument[] {
  const rng = new Rng(seed);
  const prompt = `List some steps n → f(n), where f(n) = ${BASE}^n mod ${MODULUS}.`;
  return Array.from({ length: count }, () => {
    const lines = Array.from({ length: TABLE_LINES }, () => step(1 + rng.int(MODULUS - 1)));
    return { prompt, response: lines.join('\n'), kind: 'table' };
  });
}
