// The programmatic teacher of the built-in task. `teacherTrace` writes the analog of a DeepSeek-R1
// distillation trace: `<think>` step-by-step work, a re-check, an alternative route, `</think>`,
// then the boxed answer, deliberately several times longer than `shortSolution`, the terse
// worked answer pretraining uses. Every trace is correct by construction (the steps are computed).
import type { Rng } from '../../util/rng.ts';
import type { Problem } from './problems.ts';

function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[rng.int(items.length)];
}

const OPENINGS = ['Okay, I need to', 'Alright, let me', 'Let me', 'Okay, so I have to'];
const FIRST = ['First,', 'To start,', 'Step one:'];
const THEN = ['Then', 'Next,', 'Now', 'After that,'];
const VERIFY = ['Wait, let me verify this.', 'Hmm, let me double-check.', 'Wait, let me check that again.'];
const ALTERNATIVE = ['Let me also try another way.', 'Let me confirm with a different method.', 'Another way to see it:'];
const CONFIDENT = ['Both ways give', 'The two methods agree on', 'Everything checks out, so it is'];

/** The terse solution: the steps on one line, then the boxed answer. */
export function shortSolution(problem: Problem): string {
  return `${problem.worked.steps.join(', ')}. \\boxed{${problem.answer}}`;
}

/** A long R1-style trace: think, re-check, alternative, answer. `rng` varies the wording only. */
export function teacherTrace(problem: Problem, rng: Rng): string {
  const w = problem.worked;
  const lines: string[] = [];
  lines.push(`${pick(rng, OPENINGS)} ${w.goal}.`);
  w.steps.forEach((step, i) => lines.push(`${i === 0 ? pick(rng, FIRST) : pick(rng, THEN)} ${step}.`));
  lines.push(`So the answer should be ${problem.answer}.`);
  lines.push(pick(rng, VERIFY));
  for (const check of w.checks) lines.push(`${check}.`);
  lines.push('That is consistent.');
  lines.push(pick(rng, ALTERNATIVE));
  for (const alt of w.alternative) lines.push(`${alt}.`);
  lines.push(`${pick(rng, CONFIDENT)} ${problem.answer}.`);
  return `<think>\n${lines.join('\n')}\n</think>\n\n${w.steps.join(', ')}. The final answer is \\boxed{${problem.answer}}.`;
}
