import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Resvg } from '@resvg/resvg-js';
import { lineChart, renderChart } from '../../src/report/chart.ts';

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
        { name: 'alpha', points: [{ x: 1, y: 0.2 }, { x: 2, y: 0.3 }, { x: 4, y: 0.4 }] },
        { name: 'beta', points: [{ x: 1, y: 0.5 }, { x: 2, y: 0.6 }] },
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
  for (const label of ['pass@k by benchmark', '>alpha<', '>beta<', '>k<']) assert.ok(svg.includes(label), `SVG lacks ${label}`);

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
    encoding: { x: { field: 'a', type: 'quantitative', axis: null }, y: { field: 'b', type: 'quantitative', axis: null } },
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
