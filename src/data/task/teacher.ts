// The programmatic teacher of the built-in task. `teacherTrace` writes the analog of a DeepSeek-R1
// distillation trace: `<think>` the column-by-column procedure with every carry, the readout and
// a check by the inverse operation, `</think>`, then the boxed answer: several times longer than
// `shortSolution`, the direct one-line answer pretraining uses. Every trace is correct by
// construction (the steps are computed).
import type { Rng } from '../../util/rng.ts';
import type { Problem } from './problems.ts';

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

const OPENINGS = ['Okay, I need to', 'Alright, let me', 'Let me', 'Okay, so I have to'];
const METHOD = ['column by column from the right.', 'one column at a time, starting from the right.'];
const VERIFY = ['Let me check:', 'Check:', 'Let me verify:'];

/** The terse solution: the direct result, then the boxed answer. */
export function shortSolution(problem: Problem): string {
  return `${problem.worked.direct}. \\boxed{${problem.answer}}`;
}

/** An R1-style trace: the column procedure, readout, check, answer. `rng` varies the wording only. */
export function teacherTrace(problem: Problem, rng: Rng): string {
  const w = problem.worked;
  const lines = [
    `${pick(rng, OPENINGS)} ${w.goal} ${pick(rng, METHOD)}`,
    ...w.columns,
    `${w.readout}.`,
    `${pick(rng, VERIFY)} ${w.check}.`,
  ];
  return `<think>\n${lines.join('\n')}\n</think>\n\n${w.direct}. The final answer is \\boxed{${problem.answer}}.`;
}
