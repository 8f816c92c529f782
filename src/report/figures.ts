// The training-curve figures of the report, each one metric of metrics.jsonl against step with
// every run on one chart: accuracy and response length (Table 2's two axes), entropy on online
// and offline data (the paper's Figures 4 and 6a) and the offline weight w (Figure 6b).
import { lineChartSpec, renderChart, type LineSeries } from './chart.ts';
import type { RunSummary } from './runs.ts';

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
  { id: 'accuracy', metric: 'acc/mean', title: 'Training accuracy (online rollouts, 5-step mean)', yTitle: 'acc/mean', format: '.0%', smooth: 5, caption: 'Fraction of correct online rollouts, trailing mean over 5 steps (methods without rollouts, like sft, have no curve).' },
  { id: 'length', metric: 'completions/mean_length', title: 'Mean response length (online rollouts, 5-step mean)', yTitle: 'tokens', smooth: 5, caption: 'Mean length of the online rollouts, trailing mean over 5 steps.' },
  { id: 'entropy-rl', metric: 'entropy/rl', title: 'Policy entropy on online rollouts (Fig. 4, 6a; 5-step mean)', yTitle: 'entropy/rl (nats)', smooth: 5, caption: 'Mean token entropy of the pre-update policy on its own rollouts, trailing mean over 5 steps: Recall shrinks it.' },
  { id: 'entropy-sft', metric: 'entropy/sft', title: 'Policy entropy on teacher traces (Fig. 6a; 5-step mean)', yTitle: 'entropy/sft (nats)', smooth: 5, caption: 'Mean token entropy of the pre-update policy on the offline traces (methods with an offline member), trailing mean over 5 steps.' },
  { id: 'red-w', metric: 'red/w', title: 'Offline weight w (Fig. 6b)', yTitle: 'red/w', caption: 'w(k) = clip(ΔH_sft / ΔH_rl, 1, G) under entropy regulation (red-I, red); 1 otherwise. Per step, unsmoothed.' },
];

/**
 * One series per run holding the metric (points in step order); with `smooth` = k, point i is the
 * mean of the values at points max(0, i−k+1) … i.
 */
export function curveSeries(runs: readonly Pick<RunSummary, 'name' | 'metrics'>[], metric: string, smooth = 1): LineSeries[] {
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

/**
 * Every curve some run logged. Colours come from one domain (all runs, in order) so a method has
 * the same colour on every chart; eleven methods need more than the default ten colours.
 */
export async function curveFigures(runs: readonly RunSummary[]): Promise<Figure[]> {
  const figures: Figure[] = [];
  const domain = runs.map((r) => r.name);
  for (const c of CURVES) {
    const series = curveSeries(runs, c.metric, c.smooth ?? 1);
    if (series.length === 0) continue;
    const spec = lineChartSpec({
      title: c.title,
      x: { title: 'step', format: 'd' },
      y: { title: c.yTitle, ...(c.format ? { format: c.format } : {}) },
      series,
      width: 560,
      height: 320,
    });
    const encoding = (spec as { encoding?: { color?: Record<string, unknown> } }).encoding;
    if (encoding?.color) encoding.color.scale = { scheme: 'tableau20', domain };
    const { svg, png } = await renderChart(spec);
    figures.push({ id: c.id, title: c.title, caption: c.caption, svg, png });
  }
  return figures;
}
