// The pass@k chart of one `red eval` run (passk.svg, passk.png beside results.json): one curve
// per benchmark, k on a log axis. Eval hands it over as runEval's `chart`, so eval need not
// import the report layer.
import path from 'node:path';
import type { EvalResults } from '../eval/results.ts';
import { writeFileAtomic, writeOrFail } from '../util/fs.ts';
import { lineChart } from './chart.ts';

function powersOfTwo(max: number): number[] {
  const out: number[] = [];
  for (let k = 1; k <= max; k *= 2) out.push(k);
  if (out[out.length - 1] !== max) out.push(max);
  return out;
}

export async function writePasskChart(outDir: string, results: EvalResults): Promise<void> {
  const series = results.benchmarks
    .filter((b) => b.passAtK.length > 0)
    .map((b) => ({ name: b.title, points: b.passAtK.map((y, i) => ({ x: i + 1, y })) }));
  if (series.length === 0) return;
  const kMax = Math.max(...series.map((s) => s.points.length));
  const { svg, png } = await lineChart({
    title: `pass@k: ${path.basename(results.model)}`,
    // Log-k axis labelled at powers of two (1, 2, 4, … 32), as pass@k curves usually are.
    x: {
      title: 'k (samples)',
      scale: 'log',
      domain: [1, Math.max(kMax, 2)],
      ticks: powersOfTwo(Math.max(kMax, 2)),
      format: 'd',
    },
    y: { title: 'pass@k', format: '.0%', zero: true },
    series,
  });
  for (const [name, data] of [
    ['passk.svg', svg],
    ['passk.png', png],
  ] as const) {
    const file = path.join(outDir, name);
    writeOrFail(file, () => writeFileAtomic(file, data));
  }
}
