// The Table-2-style results table: one row per method, Acc (%) per column and overall Acc and LEN,
// and the compute it took (rollouts generated, groups kept per step, tokens trained). Runs of one
// method with several seeds share a row: every figure is the mean over seeds, Acc with its
// standard error over seeds.
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
  /** Sequences sampled in training (sum of rollouts/generated); null when not logged. */
  rollouts?: number | null;
  /** Groups the updates kept per step after group filtering (mean of groups/kept); null when not logged. */
  keptGroups?: number | null;
  /** Response tokens the updates trained on (sum of tokens/trained); null when not logged. */
  trainTokens?: number | null;
}

export interface TableCell {
  acc: number;
  len: number;
  /** Standard error of acc over seeds (null with one seed). */
  accSe?: number | null;
}

export interface TableRow {
  name: string;
  steps: number | null;
  /** The first seed (seeds lists them all). */
  seed: number | null;
  seeds: (number | null)[];
  /** By column key (level or benchmark name). */
  cells: Record<string, TableCell>;
  acc: number | null;
  /** Standard error of the overall Acc over seeds (null with one seed). */
  accSe: number | null;
  len: number | null;
  /** Evaluation samples behind `acc` (scored problems × n, over benchmarks, one seed). */
  samples: number;
  /** Mean over seeds. */
  trainSeconds: number | null;
  evalSeconds: number | null;
  rollouts: number | null;
  keptGroups: number | null;
  trainTokens: number | null;
  /** passAtK[k−1]: mean over benchmarks (and seeds) of the unbiased pass@k; [] when not evaluated. */
  passAtK: number[];
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
    for (const l of [...levels].sort((a, b) => a.localeCompare(b, 'en', { numeric: true })))
      columns.push({ key: l, title: `L${l}` });
  } else {
    for (const e of evals)
      for (const b of e.benchmarks)
        if (!columns.some((c) => c.key === b.name)) columns.push({ key: b.name, title: b.title });
  }
  const methods = [...new Set(inputs.map((r) => r.name))];
  const rows = methods.map((name) =>
    methodRow(
      inputs.filter((r) => r.name === name),
      columns.map((c) => c.key),
      byLevel,
    ),
  );
  return { columnKind: byLevel ? 'level' : 'benchmark', columns, rows, verdict: verdict(rows, columns) };
}

/** Mean and standard error (sample std / √n) of the finite values; se null below two values. */
export function meanSe(xs: readonly (number | null | undefined)[]): { mean: number | null; se: number | null } {
  const v = xs.filter(finite);
  if (v.length === 0) return { mean: null, se: null };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  if (v.length < 2) return { mean, se: null };
  const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1);
  return { mean, se: Math.sqrt(variance / v.length) };
}

/** One method's row: each figure the mean over its runs (seeds). */
function methodRow(runs: readonly TableInput[], keys: readonly string[], byLevel: boolean): TableRow {
  const cellsOf = (r: TableInput): Record<string, TableCell> => {
    const cells: Record<string, TableCell> = {};
    if (!r.eval) return cells;
    if (byLevel)
      for (const [l, v] of Object.entries(r.eval.benchmarks[0].byLevel ?? {})) cells[l] = { acc: v.acc, len: v.len };
    else for (const b of r.eval.benchmarks) cells[b.name] = { acc: b.acc, len: b.len };
    return cells;
  };
  const perRun = runs.map(cellsOf);
  const cells: Record<string, TableCell> = {};
  for (const k of keys) {
    const acc = meanSe(perRun.map((c) => c[k]?.acc));
    const len = meanSe(perRun.map((c) => c[k]?.len));
    if (acc.mean !== null && len.mean !== null) cells[k] = { acc: acc.mean, len: len.mean, accSe: acc.se };
  }
  const acc = meanSe(runs.map((r) => r.eval?.overall.acc));
  const first = runs[0];
  return {
    name: first.name,
    steps: first.steps,
    seed: first.seed,
    seeds: runs.map((r) => r.seed),
    cells,
    acc: acc.mean,
    accSe: acc.se,
    len: meanSe(runs.map((r) => r.eval?.overall.len)).mean,
    samples: first.eval ? first.eval.benchmarks.reduce((a, b) => a + b.scored * b.sampling.n, 0) : 0,
    trainSeconds: meanSe(runs.map((r) => r.trainSeconds)).mean,
    evalSeconds: meanSe(runs.map((r) => r.evalSeconds)).mean,
    rollouts: meanSe(runs.map((r) => r.rollouts)).mean,
    keptGroups: meanSe(runs.map((r) => r.keptGroups)).mean,
    trainTokens: meanSe(runs.map((r) => r.trainTokens)).mean,
    passAtK: meanCurve(runs.map((r) => (r.eval ? meanCurve(r.eval.benchmarks.map((b) => b.passAtK)) : []))),
  };
}

/** Pointwise mean of curves, cut to the shortest; [] when any is empty. */
function meanCurve(curves: readonly number[][]): number[] {
  if (curves.length === 0 || curves.some((c) => c.length === 0)) return [];
  const n = Math.min(...curves.map((c) => c.length));
  return Array.from({ length: n }, (_, i) => curves.reduce((a, c) => a + c[i], 0) / curves.length);
}

/**
 * "RED 41.0% vs best other (sft) 45.0%: RED is not ahead, 4.0 points behind, most on L4 and L5"
 * — measured, not hoped for.
 */
function verdict(rows: readonly TableRow[], columns: ResultsTable['columns']): string | null {
  const red = rows.find((r) => r.name === 'red');
  const others = rows.filter((r) => r.name !== 'red' && r.name !== 'base' && r.acc !== null);
  if (!red || red.acc === null || others.length === 0) return null;
  const best = others.reduce((a, b) => ((b.acc ?? -1) > (a.acc ?? -1) ? b : a));
  const bestAcc = best.acc ?? 0;
  const rank =
    1 + rows.filter((r) => r.name !== 'red' && r.name !== 'base' && r.acc !== null && r.acc > red.acc!).length;
  const ahead =
    red.acc > bestAcc
      ? 'RED is ahead on this run.'
      : red.acc === bestAcc
        ? 'RED ties with it on this run.'
        : `RED is NOT ahead on this run: ${(100 * (bestAcc - red.acc)).toFixed(1)} points behind ${best.name}${largestGaps(red, best, columns)}.`;
  return `RED: overall Acc ${fmtPct(red.acc)}${stdErr(red)} (rank ${rank} of ${others.length + 1} methods); best other method: ${best.name} ${fmtPct(bestAcc)}${stdErr(best)}. ${ahead}`;
}

/** ", most on L5 (1.9 vs 47.8) and L4 (0.0 vs 39.7)": the (up to) two columns where `best` leads RED most. */
function largestGaps(red: TableRow, best: TableRow, columns: ResultsTable['columns']): string {
  const gaps = columns
    .map((c) => ({ c, r: red.cells[c.key]?.acc, b: best.cells[c.key]?.acc }))
    .filter((g): g is { c: (typeof columns)[number]; r: number; b: number } => finite(g.r) && finite(g.b) && g.b > g.r)
    .sort((x, y) => y.b - y.r - (x.b - x.r))
    .slice(0, 2)
    .map((g) => `${g.c.title} (${fmtPct(g.r)} vs ${fmtPct(g.b)})`);
  return gaps.length > 0 ? `, most on ${gaps.join(' and ')}` : '';
}

/**
 * " ± s.e.": over seeds when there are several; else from the sample count, sqrt(p(1−p)/N),
 * treating samples as independent (samples of one problem are correlated, so the true error is
 * larger): a guide to which gaps are noise.
 */
function stdErr(r: TableRow): string {
  if (r.accSe !== null) return ` ± ${(100 * r.accSe).toFixed(1)} (s.e. over ${r.seeds.length} seeds)`;
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

/** Kept groups per step, one decimal. */
export function fmtGroups(x: number | null | undefined): string {
  return finite(x) ? x.toFixed(1) : '-';
}

/** A count in k/M units: 1234 → "1.2k", 2_500_000 → "2.50M". */
export function fmtCount(x: number | null | undefined): string {
  if (!finite(x)) return '-';
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(0);
}

/** An accuracy in %, with " ± s.e." over seeds when there is one. */
export function fmtAcc(acc: number | null | undefined, se: number | null | undefined): string {
  return finite(se) ? `${fmtPct(acc)} ± ${(100 * se).toFixed(1)}` : fmtPct(acc);
}

/** The header of the table (Markdown and HTML). */
export function tableHead(t: ResultsTable): string[] {
  return [
    'Method',
    'Steps',
    ...t.columns.map((c) => `${c.title} Acc`),
    'Acc',
    'LEN',
    'Rollouts',
    'Groups/step',
    'Train tokens',
    'Train s',
    'Eval s',
  ];
}

/** What every table says under it. */
export function tableNote(t: ResultsTable): string {
  const seeds = Math.max(...t.rows.map((r) => r.seeds.length));
  const acc =
    t.columnKind === 'level'
      ? 'Acc: % of correct samples (avg@k) per difficulty level and overall'
      : 'Acc: % per benchmark and the mean over benchmarks';
  return `${acc}${seeds > 1 ? `, mean ± s.e. over ${seeds} seeds` : ''}; LEN: mean response tokens; Rollouts: sequences sampled in training; Groups/step: groups an update kept per step after group filtering (mean over steps); Train tokens: response tokens the updates trained on.`;
}

/** The table as Markdown: Acc in %, LEN in tokens, the best overall Acc in bold. */
export function tableMarkdown(t: ResultsTable): string {
  const best = Math.max(...t.rows.filter((r) => r.name !== 'base').map((r) => r.acc ?? -1));
  const head = tableHead(t);
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of t.rows) {
    const acc = fmtAcc(r.acc, r.accSe);
    lines.push(
      `| ${[
        r.name,
        r.steps === null ? '-' : String(r.steps),
        ...t.columns.map((c) => fmtAcc(r.cells[c.key]?.acc, r.cells[c.key]?.accSe)),
        r.acc !== null && r.acc === best && r.name !== 'base' ? `**${acc}**` : acc,
        fmtLen(r.len),
        fmtCount(r.rollouts),
        fmtGroups(r.keptGroups),
        fmtCount(r.trainTokens),
        fmtSecs(r.trainSeconds),
        fmtSecs(r.evalSeconds),
      ].join(' | ')} |`,
    );
  }
  return `${lines.join('\n')}\n\n${tableNote(t)}${t.verdict ? `\n\n${t.verdict}` : ''}\n`;
}
