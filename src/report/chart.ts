// Charts for reports: a Vega-Lite spec is compiled (vega-lite), laid out and drawn to SVG
// headlessly (vega, renderer 'none'), then rasterised to PNG (resvg). Entirely offline: text
// uses a system font family (DejaVu Sans, falling back to whatever sans-serif resvg finds).
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type { TopLevelSpec };

/** The font every label is set in; a family the machine has, so the PNG shows real glyphs. */
export const CHART_FONT = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

// Applied under the caller's own config: white background (a transparent PNG is unreadable in
// dark viewers) and the font above on every text mark.
const baseConfig = {
  background: 'white',
  font: CHART_FONT,
  axis: { labelFont: CHART_FONT, titleFont: CHART_FONT },
  legend: { labelFont: CHART_FONT, titleFont: CHART_FONT },
  title: { font: CHART_FONT },
};

export interface RenderedChart {
  svg: string;
  /** PNG bytes, drawn at `scale` × the SVG's size. */
  png: Uint8Array;
}

/** Renders a Vega-Lite spec to SVG text and PNG bytes. */
export async function renderChart(spec: TopLevelSpec, opts: { scale?: number } = {}): Promise<RenderedChart> {
  const withConfig = { ...spec, config: { ...baseConfig, ...(spec.config ?? {}) } } as TopLevelSpec;
  const vgSpec = compile(withConfig).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    const resvg = new Resvg(svg, {
      fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
      font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
    });
    const png = new Uint8Array(resvg.render().asPng());
    return { svg, png };
  } finally {
    view.finalize();
  }
}

export interface LineSeries {
  /** Legend label of the line. */
  name: string;
  /** Points in x order. */
  points: readonly { x: number; y: number }[];
}

export interface LineChartOptions {
  title: string;
  /** `ticks`: the x values to label (e.g. powers of two on a log axis); `format`: d3-format. */
  x: { title: string; scale?: 'linear' | 'log'; domain?: [number, number]; ticks?: number[]; format?: string };
  /** Without `domain` the y range fits the data; `zero` keeps 0 in it (default false). */
  y: { title: string; format?: string; domain?: [number, number]; zero?: boolean };
  series: readonly LineSeries[];
  width?: number;
  height?: number;
}

/** A Vega-Lite spec for one line per series (points marked), the legend naming the series. */
export function lineChartSpec(o: LineChartOptions): TopLevelSpec {
  const values = o.series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: o.title,
    width: o.width ?? 480,
    height: o.height ?? 300,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: {
        field: 'x',
        type: 'quantitative',
        title: o.x.title,
        scale: { type: o.x.scale ?? 'linear', ...(o.x.domain ? { domain: o.x.domain, nice: false } : {}) },
        ...(o.x.ticks || o.x.format
          ? { axis: { ...(o.x.ticks ? { values: o.x.ticks } : {}), ...(o.x.format ? { format: o.x.format } : {}) } }
          : {}),
      },
      y: {
        field: 'y',
        type: 'quantitative',
        title: o.y.title,
        scale: o.y.domain ? { domain: o.y.domain } : { zero: o.y.zero ?? false },
        ...(o.y.format ? { axis: { format: o.y.format } } : {}),
      },
      color: { field: 'series', type: 'nominal', title: null, sort: o.series.map((s) => s.name) },
    },
  };
}

/** lineChartSpec + renderChart. */
export function lineChart(o: LineChartOptions, opts: { scale?: number } = {}): Promise<RenderedChart> {
  return renderChart(lineChartSpec(o), opts);
}
