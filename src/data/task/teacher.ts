// The programmatic teacher of the built-in task. `teacherTrace` writes the analog of a DeepSeek-R1
// distillation trace: `<think>` the chain of values, one application of f per arrow
// ("46 → 32 → 61 → 82"), `</think>`, then the boxed answer: 3–4 times longer than `shortSolution`,
// the direct one-line answer pretraining uses. Every trace is correct by construction.
import type { Rng } from '../../util/rng.ts';
import type { Problem } from './problems.ts';

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

const OPENINGS = ['Okay, I need to', 'Alright, let me', 'Let me', 'Okay, so I have to'];
const METHOD = ['one application at a time:', 'one step at a time:'];

/** The terse solution: the direct result, then the boxed answer. */
export function shortSolution(problem: Problem): string {
  return `${problem.worked.direct}. \\boxed{${problem.answer}}`;
}

/** An R1-style trace: the chain, then the answer. `rng` varies the wording only. */
export function teacherTrace(problem: Problem, rng: Rng): string {
  const w = problem.worked;
  const lines = [`${pick(rng, OPENINGS)} ${w.goal} ${pick(rng, METHOD)}`, w.chain.join(' → ')];
  return `<think>\n${lines.join('\n')}\n</think>\n\nThe final answer is \\boxed{${problem.answer}}.`;
}
