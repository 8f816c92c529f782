import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resvg } from '@resvg/resvg-js';
import { lineChart, renderChart } from '../../src/report/chart.ts';
import { curveFigures } from '../../src/report/figures.ts';
import type { RunSummary } from '../../src/report/runs.ts';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

test('lineChart draws one line per series, a point per datum, the legend and a PNG', async () => {
  const { svg, png } = await lineChart(
    {
      title: 'pass@k by benchmark',
      x: { title: 'k', scale: 'log', domain: [1, 4] },
      y: { title: 'pass@k' },
      series: [
        {
          name: 'alpha',
          points: [
            { x: 1, y: 0.2 },
            { x: 2, y: 0.3 },
            { x: 4, y: 0.4 },
          ],
        },
        {
          name: 'beta',
          points: [
            { x: 1, y: 0.5 },
            { x: 2, y: 0.6 },
          ],
        },
      ],
      width: 200,
      height: 120,
    },
    { scale: 2 },
  );
  assert.ok(svg.startsWith('<svg'), 'an SVG document');
  // vega emits one line-mark group per colour facet, and one symbol per point (3 + 2).
  assert.equal(count(svg, 'class="mark-line role-mark'), 2);
  const symbols = svg.split('class="mark-symbol role-mark')[1]?.split('</g>')[0] ?? '';
  assert.equal(count(symbols, '<path'), 5);
  for (const label of ['pass@k by benchmark', '>alpha<', '>beta<', '>k<'])
    assert.ok(svg.includes(label), `SVG lacks ${label}`);

  assert.deepEqual([...png.subarray(0, 8)], PNG_SIGNATURE);
  // IHDR width/height (big-endian at bytes 16..23) are the SVG's size × scale.
  const dv = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const svgWidth = Number(/width="(\d+(?:\.\d+)?)"/.exec(svg)?.[1]);
  assert.equal(dv.getUint32(16), Math.round(svgWidth * 2));
});

test('text is drawn with a real font: the title band of the raster has dark pixels', async () => {
  const withTitle = await renderChart({
    title: 'WWWWWWWW',
    width: 100,
    height: 40,
    data: { values: [{ a: 1, b: 1 }] },
    mark: 'point',
    encoding: {
      x: { field: 'a', type: 'quantitative', axis: null },
      y: { field: 'b', type: 'quantitative', axis: null },
    },
  });
  const img = new Resvg(withTitle.svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render();
  // The title sits in the top ~20 px, above the plot; without a font resvg draws nothing there.
  let dark = 0;
  for (let y = 0; y < 18; y++) {
    for (let x = 0; x < img.width; x++) {
      const i = 4 * (y * img.width + x);
      if (img.pixels[i] < 128 && img.pixels[i + 3] > 128) dark++;
    }
  }
  assert.ok(dark > 50, `expected glyph pixels in the title band, saw ${dark}`);
});

/** The text of every tick label of the SVG's y axis (vega: role-axis-label under the left axis). */
function yTickLabels(svg: string): string[] {
  // vega draws one axis group per axis; the y axis is the one whose labels are right-aligned.
  const labels = [...svg.matchAll(/<text[^>]*text-anchor="end"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
  return labels;
}

test('accuracy curves in a narrow band (3–5%): every y tick label differs', async () => {
  const runs = [
    { name: 'grpo', metrics: [1, 2, 3, 4, 5, 6].map((step) => ({ step, 'acc/mean': 0.03 + 0.004 * step })) },
    { name: 'red', metrics: [1, 2, 3, 4, 5, 6].map((step) => ({ step, 'acc/mean': 0.035 + 0.002 * step })) },
  ] as unknown as RunSummary[];
  const [fig] = await curveFigures(runs);
  assert.equal(fig.id, 'accuracy');
  const labels = yTickLabels(fig.svg);
  assert.ok(labels.length >= 3, `y labels: ${labels.join(', ')}`);
  assert.equal(new Set(labels).size, labels.length, `repeated y labels: ${labels.join(', ')}`);
});

test("a chart's legend lists only the methods drawn on it, each in its colour on every chart", async () => {
  const runs = [
    {
      name: 'sft',
      metrics: [
        { step: 1, 'entropy/sft': 1 },
        { step: 2, 'entropy/sft': 0.9 },
      ],
    },
    {
      name: 'grpo',
      metrics: [
        { step: 1, 'acc/mean': 0.2, 'entropy/rl': 1 },
        { step: 2, 'acc/mean': 0.3, 'entropy/rl': 0.9 },
      ],
    },
    {
      name: 'red',
      metrics: [
        { step: 1, 'acc/mean': 0.25, 'entropy/rl': 1, 'entropy/sft': 1 },
        { step: 2, 'acc/mean': 0.35, 'entropy/rl': 0.8, 'entropy/sft': 0.95 },
      ],
    },
  ] as unknown as RunSummary[];
  const figs = await curveFigures(runs);
  const acc = figs.find((f) => f.id === 'accuracy')!;
  assert.ok(acc.svg.includes('>grpo<') && acc.svg.includes('>red<'));
  assert.ok(!acc.svg.includes('>sft<'), 'sft has no accuracy curve but is in the legend');
  // red keeps one colour: the stroke of its line on both charts.
  const stroke = (svg: string) =>
    new Set([...svg.matchAll(/stroke="(#[0-9a-f]{6})"/gi)].map((m) => m[1].toLowerCase()));
  const sftChart = figs.find((f) => f.id === 'entropy-sft')!;
  const shared = [...stroke(acc.svg)].filter((c) => stroke(sftChart.svg).has(c));
  assert.ok(shared.length >= 1, 'red is drawn in different colours on two charts');
});
