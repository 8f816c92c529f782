// The training-curve figures of the report, each one metric of metrics.jsonl against step with
// every run on one chart: accuracy and response length (Table 2's two axes), entropy on online
// and offline data (the paper's Figures 4 and 6a) and the offline weight w (Figure 6b).
import { lineChartSpec, renderChart, type LineSeries } from './chart.ts';
import type { RunSummary } from './runs.ts';
import type { TableRow } from './table.ts';

export interface Figure {
  /** File stem: figures/<id>.svg and .png. */
  id: string;
  title: string;
  caption: string;
  svg: string;
  png: Uint8Array;
}

interface CurveSpec {
  id: string;
  metric: string;
  title: string;
  yTitle: string;
  caption: string;
  format?: string;
  /** Trailing moving average over this many logged steps (per-step batch statistics are noisy). */
  smooth?: number;
}

export const CURVES: readonly CurveSpec[] = [
  {
    id: 'accuracy',
    metric: 'acc/mean',
    title: 'Training accuracy (online rollouts, 5-step mean)',
    yTitle: 'acc/mean',
    format: '.0%',
    smooth: 5,
    caption:
      'Fraction of correct online rollouts, trailing mean over 5 steps (methods without rollouts, like sft, have no curve).',
  },
  {
    id: 'length',
    metric: 'completions/mean_length',
    title: 'Mean response length (online rollouts, 5-step mean)',
    yTitle: 'tokens',
    smooth: 5,
    caption: 'Mean length of the online rollouts, trailing mean over 5 steps.',
  },
  {
    id: 'entropy-rl',
    metric: 'entropy/rl',
    title: 'Policy entropy on online rollouts (Fig. 4, 6a; 5-step mean)',
    yTitle: 'entropy/rl (nats)',
    smooth: 5,
    caption:
      'Mean token entropy of the pre-update policy on its own rollouts, trailing mean over 5 steps: Recall shrinks it.',
  },
  {
    id: 'entropy-sft',
    metric: 'entropy/sft',
    title: 'Policy entropy on teacher traces (Fig. 6a; 5-step mean)',
    yTitle: 'entropy/sft (nats)',
    smooth: 5,
    caption:
      'Mean token entropy of the pre-update policy on the offline traces (methods with an offline member), trailing mean over 5 steps.',
  },
  {
    id: 'red-w',
    metric: 'red/w',
    title: 'Offline weight w (Fig. 6b)',
    yTitle: 'red/w',
    caption:
      'w(k) = clip(ΔH_sft / ΔH_rl, 1, G) under entropy regulation (red-I, red); 1 otherwise. Per step, unsmoothed.',
  },
];

/**
 * One series per run holding the metric (points in step order); with `smooth` = k, point i is the
 * mean of the values at points max(0, i−k+1) … i.
 */
export function curveSeries(
  runs: readonly Pick<RunSummary, 'name' | 'metrics'>[],
  metric: string,
  smooth = 1,
): LineSeries[] {
  const out: LineSeries[] = [];
  for (const r of runs) {
    const raw = r.metrics.filter((m) => Number.isFinite(m[metric])).map((m) => ({ x: m.step, y: m[metric] }));
    const points = raw.map((p, i) => {
      const window = raw.slice(Math.max(0, i - smooth + 1), i + 1);
      return { x: p.x, y: window.reduce((a, q) => a + q.y, 0) / window.length };
    });
    if (points.length > 0) out.push({ name: r.name, points });
  }
  return out;
}

// Vega's tableau20, in order: a method keeps its colour (by its index among all runs) on every
// chart, while each legend lists only the methods drawn on that chart.
const PALETTE = [
  '#4c78a8',
  '#9ecae9',
  '#f58518',
  '#ffbf79',
  '#54a24b',
  '#88d27a',
  '#b79a20',
  '#f2cf5b',
  '#439894',
  '#83bcb6',
  '#e45756',
  '#ff9d98',
  '#79706e',
  '#bab0ac',
  '#d67195',
  '#fcbfd2',
  '#b279a2',
  '#d6a5c9',
  '#9e765f',
  '#d8b5a5',
];

/** The colour scale of a chart whose series are `shown`, out of every method in `all` (fixed order). */
export function colourScale(all: readonly string[], shown: readonly string[]): { domain: string[]; range: string[] } {
  const domain = all.filter((n) => shown.includes(n));
  return { domain, range: domain.map((n) => PALETTE[all.indexOf(n) % PALETTE.length]) };
}

/**
 * A percent axis whose tick labels are all different: as many decimals as the data's range needs
 * (a 3–5% band labelled '.0%' read 4%, 4%, 3%, ...), and ticks never closer than one unit of the
 * last decimal shown.
 */
export function percentAxis(values: readonly number[]): { format: string; tickMinStep: number } {
  const finiteValues = values.filter((v) => Number.isFinite(v));
  const range = finiteValues.length > 0 ? Math.max(...finiteValues) - Math.min(...finiteValues) : 1;
  const decimals = range >= 0.1 ? 0 : range >= 0.01 ? 1 : 2;
  return { format: `.${decimals}%`, tickMinStep: 10 ** -(2 + decimals) };
}

async function drawFigure(o: {
  id: string;
  title: string;
  caption: string;
  xTitle: string;
  yTitle: string;
  series: LineSeries[];
  all: readonly string[];
  percent: boolean;
  xLog2?: number;
}): Promise<Figure> {
  const ys = o.series.flatMap((s) => s.points.map((p) => p.y));
  const pct = o.percent ? percentAxis(ys) : null;
  const spec = lineChartSpec({
    title: o.title,
    x: o.xLog2
      ? {
          title: o.xTitle,
          scale: 'log',
          domain: [1, o.xLog2],
          ticks: Array.from({ length: Math.log2(o.xLog2) + 1 }, (_, i) => 2 ** i),
          format: 'd',
        }
      : { title: o.xTitle, format: 'd' },
    y: { title: o.yTitle, ...(pct ? { format: pct.format } : {}) },
    series: o.series,
    width: 560,
    height: 320,
  });
  const encoding = (spec as { encoding?: { color?: Record<string, unknown>; y?: { axis?: Record<string, unknown> } } })
    .encoding;
  if (encoding?.color)
    encoding.color.scale = colourScale(
      o.all,
      o.series.map((s) => s.name),
    );
  if (encoding?.y && pct) encoding.y.axis = { ...(encoding.y.axis ?? {}), tickMinStep: pct.tickMinStep };
  const { svg, png } = await renderChart(spec);
  return { id: o.id, title: o.title, caption: o.caption, svg, png };
}

/** Every curve some run logged, each run in the same colour on every chart. */
export async function curveFigures(runs: readonly RunSummary[]): Promise<Figure[]> {
  const figures: Figure[] = [];
  const all = runs.map((r) => r.name);
  for (const c of CURVES) {
    const series = curveSeries(runs, c.metric, c.smooth ?? 1);
    if (series.length === 0) continue;
    figures.push(await drawFigure({ ...c, xTitle: 'step', series, all, percent: (c.format ?? '').endsWith('%') }));
  }
  return figures;
}

/**
 * Recall vs Extend: pass@k for k = 1 … n on the held-out split, one line per method (base
 * included). Null when no row has a curve of at least two points.
 */
export async function passAtKFigure(rows: readonly TableRow[]): Promise<Figure | null> {
  const withCurve = rows.filter((r) => r.passAtK.length >= 2);
  if (withCurve.length === 0) return null;
  const n = Math.min(...withCurve.map((r) => r.passAtK.length));
  const series = withCurve.map((r) => ({
    name: r.name,
    points: r.passAtK.slice(0, n).map((y, i) => ({ x: i + 1, y })),
  }));
  const kMax = 2 ** Math.floor(Math.log2(n));
  return drawFigure({
    id: 'passk',
    title: `pass@k on the held-out split (k = 1…${n})`,
    xTitle: 'k (samples)',
    yTitle: 'pass@k',
    series: series.map((s) => ({ ...s, points: s.points.filter((p) => p.x <= kMax) })),
    all: rows.map((r) => r.name),
    percent: true,
    xLog2: kMax,
    caption:
      'Unbiased pass@k (1 − C(n−c,k)/C(n,k), mean over problems and seeds). Recall (GRPO) is expected to raise pass@1 but not pass@k at large k; Extend (learning from traces) to raise both.',
  });
}
