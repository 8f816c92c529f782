// The Table-2-style results table: one row per run, Acc (%) per column and overall Acc and LEN.
// Columns are the difficulty levels when every run was evaluated on one levelled benchmark (the
// built-in held-out split), else the benchmarks (paper-scale runs); the overall figures are
// red eval's (mean over benchmarks, as the paper averages).
import type { EvalResults } from '../eval/results.ts';

export interface TableInput {
  name: string;
  steps: number | null;
  seed: number | null;
  eval: EvalResults | null;
  trainSeconds: number | null;
  evalSeconds: number | null;
}

export interface TableCell {
  acc: number;
  len: number;
}

export interface TableRow {
  name: string;
  steps: number | null;
  seed: number | null;
  /** By column key (level or benchmark name). */
  cells: Record<string, TableCell>;
  acc: number | null;
  len: number | null;
  /** Evaluation samples behind `acc` (scored problems × n, over benchmarks). */
  samples: number;
  trainSeconds: number | null;
  evalSeconds: number | null;
}

export interface ResultsTable {
  /** 'level' or 'benchmark'. */
  columnKind: 'level' | 'benchmark';
  columns: { key: string; title: string }[];
  rows: TableRow[];
  /** What the table says about RED against the best other method (null when either is missing). */
  verdict: string | null;
}

const finite = (x: number | undefined | null): x is number => typeof x === 'number' && Number.isFinite(x);

export function resultsTable(inputs: readonly TableInput[]): ResultsTable {
  const evals = inputs.map((r) => r.eval).filter((e): e is EvalResults => e !== null);
  const names = new Set(evals.flatMap((e) => e.benchmarks.map((b) => b.name)));
  const byLevel = names.size === 1 && evals.every((e) => e.benchmarks[0]?.byLevel !== undefined);
  const columns: { key: string; title: string }[] = [];
  if (byLevel) {
    const levels = new Set(evals.flatMap((e) => Object.keys(e.benchmarks[0].byLevel ?? {})));
    for (const l of [...levels].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) columns.push({ key: l, title: `L${l}` });
  } else {
    for (const e of evals) for (const b of e.benchmarks) if (!columns.some((c) => c.key === b.name)) columns.push({ key: b.name, title: b.title });
  }
  const rows = inputs.map((r): TableRow => {
    const cells: Record<string, TableCell> = {};
    if (r.eval) {
      if (byLevel) for (const [l, v] of Object.entries(r.eval.benchmarks[0].byLevel ?? {})) cells[l] = { acc: v.acc, len: v.len };
      else for (const b of r.eval.benchmarks) cells[b.name] = { acc: b.acc, len: b.len };
    }
    return {
      name: r.name, steps: r.steps, seed: r.seed, cells,
      acc: finite(r.eval?.overall.acc) ? r.eval.overall.acc : null,
      len: finite(r.eval?.overall.len) ? r.eval.overall.len : null,
      samples: r.eval ? r.eval.benchmarks.reduce((a, b) => a + b.scored * b.sampling.n, 0) : 0,
      trainSeconds: r.trainSeconds, evalSeconds: r.evalSeconds,
    };
  });
  return { columnKind: byLevel ? 'level' : 'benchmark', columns, rows, verdict: verdict(rows) };
}

/** "RED 41.0% vs best other (sft) 45.0%: RED is not ahead" — measured, not hoped for. */
function verdict(rows: readonly TableRow[]): string | null {
  const red = rows.find((r) => r.name === 'red');
  const others = rows.filter((r) => r.name !== 'red' && r.name !== 'base' && r.acc !== null);
  if (!red || red.acc === null || others.length === 0) return null;
  const best = others.reduce((a, b) => ((b.acc ?? -1) > (a.acc ?? -1) ? b : a));
  const bestAcc = best.acc ?? 0;
  const rank = 1 + rows.filter((r) => r.name !== 'red' && r.name !== 'base' && r.acc !== null && r.acc > red.acc!).length;
  const ahead = red.acc > bestAcc ? 'RED is ahead' : red.acc === bestAcc ? 'RED ties with it' : 'RED is NOT ahead';
  return `RED: overall Acc ${fmtPct(red.acc)}${stdErr(red)} (rank ${rank} of ${others.length + 1} methods); best other method: ${best.name} ${fmtPct(bestAcc)}${stdErr(best)}. ${ahead} on this run.`;
}

/**
 * " ± s.e." of an accuracy from its sample count, sqrt(p(1−p)/N), treating samples as independent
 * (samples of one problem are correlated, so the true error is larger): a guide to which gaps are noise.
 */
function stdErr(r: TableRow): string {
  if (r.acc === null || r.samples < 2) return '';
  return ` ± ${(100 * Math.sqrt((r.acc * (1 - r.acc)) / r.samples)).toFixed(1)}`;
}

export function fmtPct(x: number | null | undefined): string {
  return finite(x) ? (100 * x).toFixed(1) : '-';
}

function fmtLen(x: number | null | undefined): string {
  return finite(x) ? x.toFixed(0) : '-';
}

function fmtSecs(x: number | null | undefined): string {
  return finite(x) ? x.toFixed(1) : '-';
}

/** The table as Markdown: Acc in %, LEN in tokens, the best overall Acc in bold. */
export function tableMarkdown(t: ResultsTable): string {
  const best = Math.max(...t.rows.filter((r) => r.name !== 'base').map((r) => r.acc ?? -1));
  const head = ['Method', 'Steps', ...t.columns.map((c) => `${c.title} Acc`), 'Acc', 'LEN', 'Train s', 'Eval s'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of t.rows) {
    const acc = fmtPct(r.acc);
    lines.push(`| ${[
      r.name, r.steps === null ? '-' : String(r.steps),
      ...t.columns.map((c) => fmtPct(r.cells[c.key]?.acc)),
      r.acc !== null && r.acc === best && r.name !== 'base' ? `**${acc}**` : acc,
      fmtLen(r.len), fmtSecs(r.trainSeconds), fmtSecs(r.evalSeconds),
    ].join(' | ')} |`);
  }
  const note = t.columnKind === 'level' ? 'Acc: % of correct samples (avg@k) per difficulty level and overall; LEN: mean response tokens.' : 'Acc: % per benchmark and the mean over benchmarks; LEN: mean response tokens.';
  return `${lines.join('\n')}\n\n${note}${t.verdict ? `\n\n${t.verdict}` : ''}\n`;
}
