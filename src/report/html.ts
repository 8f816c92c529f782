// report.html: one self-contained, offline page (inline SVG, inline CSS, no script, no web
// font): the results table, the training curves, the token-probability view, and per run its
// config, seed and wall time.
import type { Figure } from './figures.ts';
import type { RunSummary } from './runs.ts';
import { fmtAcc, fmtCount, fmtGroups, tableHead, tableNote, type ResultsTable } from './table.ts';

export interface ReportPage {
  title: string;
  notes: readonly string[];
  table: ResultsTable;
  figures: readonly Figure[];
  runs: readonly RunSummary[];
  generated: string;
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** An SVG document as an element that can sit inside HTML (no XML prolog). */
function inlineSvg(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, '');
}

function tableHtml(t: ResultsTable): string {
  const best = Math.max(...t.rows.filter((r) => r.name !== 'base').map((r) => r.acc ?? -1));
  const head = tableHead(t);
  const num = (x: number | null | undefined, d: number) =>
    typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-';
  const rows = t.rows.map((r) => {
    const cells = [
      escapeHtml(r.name),
      r.steps === null ? '-' : String(r.steps),
      ...t.columns.map((c) => fmtAcc(r.cells[c.key]?.acc, r.cells[c.key]?.accSe)),
      r.acc !== null && r.acc === best && r.name !== 'base'
        ? `<b>${fmtAcc(r.acc, r.accSe)}</b>`
        : fmtAcc(r.acc, r.accSe),
      num(r.len, 0),
      fmtCount(r.rollouts),
      fmtGroups(r.keptGroups),
      fmtCount(r.trainTokens),
      num(r.trainSeconds, 1),
      num(r.evalSeconds, 1),
    ];
    return `<tr class="${r.name === 'red' ? 'red' : ''}">${cells.map((c, i) => (i === 0 ? `<th>${c}</th>` : `<td>${c}</td>`)).join('')}</tr>`;
  });
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

export function reportHtml(p: ReportPage): string {
  const figureHtml = p.figures
    .map(
      (f) =>
        `<figure id="${f.id}">${inlineSvg(f.svg)}<figcaption>${escapeHtml(f.title)}: ${escapeHtml(f.caption)} ` +
        `(<a href="figures/${f.id}.svg">figures/${f.id}.svg</a>, <a href="figures/${f.id}.png">figures/${f.id}.png</a>)</figcaption></figure>`,
    )
    .join('\n');
  const runHtml = p.runs
    .map((r) => {
      const wall = [
        r.trainSeconds !== null ? `train ${r.trainSeconds.toFixed(1)} s` : '',
        r.evalSeconds !== null ? `eval ${r.evalSeconds.toFixed(1)} s` : '',
      ]
        .filter((s) => s !== '')
        .join(', ');
      return (
        `<details><summary><b>${escapeHtml(r.name)}</b>: method ${escapeHtml(r.method ?? '?')}, seed ${r.seed ?? '?'}, ${r.metrics.length} steps logged${wall ? `, ${wall}` : ''} ` +
        `(<code>${escapeHtml(r.dir)}</code>)</summary><pre>${escapeHtml(r.configText ?? '(no config.yaml)')}</pre></details>`
      );
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(p.title)}</title>
<style>
body { font-family: 'DejaVu Sans', Arial, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
thead th, tbody th { text-align: left; background: #f4f4f4; }
tr.red th, tr.red td { background: #fff0f0; }
figure { margin: 1.5em 0; } figcaption { font-size: 13px; color: #555; }
pre { background: #f8f8f8; padding: 8px; overflow-x: auto; font-size: 12px; }
.verdict { font-weight: bold; }
</style></head><body>
<h1>${escapeHtml(p.title)}</h1>
${p.notes.map((n) => `<p>${escapeHtml(n)}</p>`).join('\n')}
<h2>Results</h2>
${tableHtml(p.table)}
<p>${escapeHtml(tableNote(p.table))}</p>
${p.table.verdict ? `<p class="verdict">${escapeHtml(p.table.verdict)}</p>` : ''}
<h2>Figures</h2>
${figureHtml}
<h2>Runs: configs, seeds, wall time</h2>
${runHtml}
<p><small>Generated ${escapeHtml(p.generated)} by red report from the run folders' config.yaml, metrics.jsonl and eval results.</small></p>
</body></html>
`;
}
