// The token-probability-difference view (the paper's Figure 5): one teacher trace scored by two
// checkpoints' forward passes, each token shaded by how its probability changed, red = up,
// blue = down, white = unchanged, darker = more. Drawn as plain SVG (rectangles + text) so the
// same picture goes inline into the HTML and through resvg into a PNG.
import { Resvg } from '@resvg/resvg-js';
import { packSequences } from '../model/batch.ts';
import type { Qwen2Model } from '../model/qwen2.ts';

/** log π(trace_i | prompt, trace_<i) for every trace token, by one forward pass. Shape (N). */
export function traceLogprobs(
  model: Qwen2Model,
  promptIds: readonly number[],
  traceIds: readonly number[],
): Float32Array {
  const seq = [...promptIds, ...traceIds];
  const batch = packSequences([seq], [promptIds.length]);
  const { logprob } = model.forward(batch);
  // Row t predicts token t+1: trace token i sits at prompt.length + i, predicted by the row before.
  const out = new Float32Array(traceIds.length);
  for (let i = 0; i < traceIds.length; i++) out[i] = logprob[promptIds.length + i - 1];
  return out;
}

export interface TokenDiffPanel {
  /** e.g. "base → grpo". */
  label: string;
  /** p_after − p_before per token, in [−1, 1]. */
  delta: number[];
}

export interface TokenDiffView {
  /** Display text of each trace token. */
  tokens: string[];
  panels: TokenDiffPanel[];
  /** What the trace is (shown above the panels). */
  caption: string;
  /** Trace tokens left out after `tokens` (shown as "… N more tokens"); 0 or omitted: none. */
  omitted?: number;
}

/**
 * How many of a trace's tokens to show within `limit`: all when they fit, else up to the end of
 * the last whole line within the limit (when that keeps at least half of it), so the view does
 * not stop mid-line.
 */
export function shownTokenCount(tokens: readonly string[], limit: number): number {
  if (tokens.length <= limit) return tokens.length;
  for (let i = limit - 1; i >= Math.floor(limit / 2); i--) if (tokens[i].includes('\n')) return i + 1;
  return limit;
}

/** p_after − p_before from two logprob vectors of the same trace. */
export function probabilityDelta(before: Float32Array, after: Float32Array): number[] {
  return Array.from(after, (a, i) => Math.exp(a) - Math.exp(before[i]));
}

/**
 * Background of a token whose probability moved by `d`: white at 0, pure red at +1, pure blue at
 * −1; the intensity is sqrt(|d|) so that changes of a few percent are still visible.
 */
export function deltaColor(d: number): string {
  const s = Math.sqrt(Math.min(1, Math.abs(d)));
  const fade = Math.round(255 * (1 - s));
  const hex = (v: number) => v.toString(16).padStart(2, '0');
  return d >= 0 ? `#ff${hex(fade)}${hex(fade)}` : `#${hex(fade)}${hex(fade)}ff`;
}

/** Black text on light shading, white on dark (|Δp| above ~0.4). */
function textColor(d: number): string {
  return Math.sqrt(Math.min(1, Math.abs(d))) > 0.65 ? 'white' : 'black';
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

const FONT = 'DejaVu Sans Mono, Liberation Mono, Menlo, monospace';
const CHAR_W = 7.8; // px per character of the 13 px monospace font
const LINE_H = 20;
const WIDTH = 900;
const PAD = 16;

/** The view as one SVG: a legend, then one wrapped panel of shaded tokens per comparison. */
export function tokenDiffSvg(view: TokenDiffView): string {
  const parts: string[] = [];
  let y = PAD;
  const text = (x: number, yy: number, s: string, extra = '') =>
    parts.push(
      `<text x="${x.toFixed(1)}" y="${yy}" font-family="${FONT}" font-size="13" ${extra}>${escapeXml(s)}</text>`,
    );
  text(PAD, y + 14, view.caption, 'font-weight="bold"');
  y += LINE_H + 6;
  // Legend: Δp from −1 to +1.
  const stops = [-1, -0.5, -0.1, -0.01, 0, 0.01, 0.1, 0.5, 1];
  text(PAD, y + 14, 'Δp:');
  stops.forEach((d, i) => {
    const x = PAD + 40 + i * 64;
    parts.push(
      `<rect x="${x}" y="${y}" width="60" height="${LINE_H - 2}" fill="${deltaColor(d)}" stroke="#999" stroke-width="0.5"/>`,
    );
    text(x + 4, y + 14, (d > 0 ? '+' : '') + String(d), `fill="${textColor(d)}"`);
  });
  y += LINE_H + 10;
  for (const panel of view.panels) {
    text(PAD, y + 14, panel.label, 'font-weight="bold"');
    y += LINE_H + 2;
    let x = PAD;
    view.tokens.forEach((tok, i) => {
      const newline = tok.includes('\n');
      const shown = tok.replace(/\n/g, '↵');
      const w = Math.max(1, shown.length) * CHAR_W;
      if (x + w > WIDTH - PAD) {
        x = PAD;
        y += LINE_H;
      }
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${LINE_H - 2}" fill="${deltaColor(panel.delta[i] ?? 0)}"><title>${escapeXml(`${shown}: Δp ${(panel.delta[i] ?? 0).toFixed(3)}`)}</title></rect>`,
      );
      text(x, y + 14, shown, `xml:space="preserve" fill="${textColor(panel.delta[i] ?? 0)}"`);
      x += w;
      if (newline) {
        x = PAD;
        y += LINE_H;
      }
    });
    if ((view.omitted ?? 0) > 0) {
      const more = `… ${view.omitted} more token${view.omitted === 1 ? '' : 's'}`;
      if (x + more.length * CHAR_W > WIDTH - PAD) {
        x = PAD;
        y += LINE_H;
      }
      text(x + (x > PAD ? CHAR_W : 0), y + 14, more, 'fill="#777" font-style="italic"');
    }
    y += LINE_H + 14;
  }
  const height = y + PAD;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">` +
    `<rect width="${WIDTH}" height="${height}" fill="white"/>${parts.join('')}</svg>`
  );
}

export function svgToPng(svg: string, scale = 2): Uint8Array {
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans Mono', monospaceFamily: 'DejaVu Sans Mono' },
  });
  return new Uint8Array(resvg.render().asPng());
}
