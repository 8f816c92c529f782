// Builds a report from run folders (the demo's or any `red train` runs, paper-scale included):
// results.md / results.json (the table), figures/*.svg + .png, and report.html. Everything is
// read from the folders; only the token-probability view loads models, and only small ones.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { loadDataset, promptMessages, type TrainingExample } from '../data/dataset.ts';
import { getBackend, type BackendPreference } from '../engine/index.ts';
import { hubSettings } from '../hub/client.ts';
import { resolveModelPath } from '../hub/snapshot.ts';
import { Qwen2Model } from '../model/qwen2.ts';
import { loadTokenizer } from '../model/tokenizer.ts';
import { fail } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { curveFigures, passAtKFigure, type Figure } from './figures.ts';
import { reportHtml } from './html.ts';
import { machineLine, type MachineInfo } from './machine.ts';
import { loadRun, metricMean, metricSum, type RunSummary } from './runs.ts';
import { resultsTable, tableMarkdown, type TableInput } from './table.ts';
import { probabilityDelta, shownTokenCount, svgToPng, tokenDiffSvg, traceLogprobs } from './tokendiff.ts';

export type TokenDiffMode = 'auto' | 'off' | 'force';

export interface BuildReportOptions {
  runDirs: readonly string[];
  out: string;
  /** The base model (and its evaluation folder) as the table's first row and Figure 5's "before". */
  base?: { dir: string; evalDir?: string };
  title?: string;
  notes?: readonly string[];
  /** auto: the token view only for models small enough to run on a CPU in seconds. */
  tokenDiff?: TokenDiffMode;
  /** File whose first levelled (≥ 3) example's trace is scored (default: the runs' training data). */
  traceFile?: string;
  backend?: BackendPreference;
  /**
   * Where the runs were measured and the checksum of the weights they started from (the demo
   * knows both; `red report` over other folders does not): in results.json and the notes.
   */
  provenance?: { machine: MachineInfo; baseModelSha256: string };
}

export interface BuiltReport {
  html: string;
  markdown: string;
  figures: string[];
  /** Why the token view is missing, when it is. */
  tokenDiffSkipped: string | null;
}

/** Models above this many bytes of weights are not loaded for the token view in 'auto' mode. */
const TOKEN_DIFF_MAX_BYTES = 200e6;

/** What a report is made of, read from the folders and checked before anything is written. */
export interface ReportInputs {
  runs: RunSummary[];
  /** One run per method (its first seed): the curves and the token view show these. */
  firstSeeds: RunSummary[];
  /** The table's rows: the base (with --base-eval) and every run. */
  rows: TableInput[];
}

/**
 * Reads and checks every run folder and input file the report names: a missing or malformed one
 * fails here, before buildReport writes anything.
 */
export function readReportInputs(o: BuildReportOptions): ReportInputs {
  if (o.runDirs.length === 0) fail('red report: give at least one run folder');
  if (o.traceFile !== undefined && !existsSync(o.traceFile)) fail(`${o.traceFile}: trace file not found`);
  const baseEval = o.base?.evalDir;
  if (baseEval && !existsSync(path.join(baseEval, 'results.json')))
    fail(
      `${path.join(baseEval, 'results.json')} not found: is ${baseEval} a folder written by \`red eval\` (and finished)?`,
    );
  const runs = o.runDirs.map(loadRun);
  // Runs sharing a label are the seeds of one method (METHOD/seed-N); anything else must differ.
  const seen = new Map<string, Set<number | null>>();
  for (const r of runs) {
    const seeds = seen.get(r.name) ?? new Set();
    if (seeds.has(r.seed))
      fail(`${r.dir}: two run folders are named '${r.name}' with seed ${r.seed ?? '?'}; labels must differ`);
    seen.set(r.name, seeds.add(r.seed));
  }
  // Curves and the token view show one run per method: its first seed.
  const firstSeeds = runs.filter((r, i) => runs.findIndex((x) => x.name === r.name) === i);
  const rows: TableInput[] = [];
  if (baseEval) {
    const b = loadRun(baseEval);
    rows.push({ name: 'base', steps: 0, seed: null, eval: b.eval, trainSeconds: null, evalSeconds: b.evalSeconds });
  }
  for (const r of runs) {
    rows.push({
      name: r.name,
      steps: r.metrics.at(-1)?.step ?? null,
      seed: r.seed,
      eval: r.eval,
      trainSeconds: r.trainSeconds,
      evalSeconds: r.evalSeconds,
      rollouts: metricSum(r.metrics, 'rollouts/generated'),
      keptGroups: metricMean(r.metrics, 'groups/kept'),
      trainTokens: metricSum(r.metrics, 'tokens/trained'),
    });
  }
  return { runs, firstSeeds, rows };
}

/** Writes the report into `o.out`; `read`: its inputs, when the caller read them first (to lock `o.out` after). */
export async function buildReport(
  o: BuildReportOptions,
  read: ReportInputs = readReportInputs(o),
): Promise<BuiltReport> {
  const { runs, firstSeeds, rows: inputs } = read;
  const table = resultsTable(inputs);
  const markdown = tableMarkdown(table);

  mkdirSync(path.join(o.out, 'figures'), { recursive: true });
  const figures: Figure[] = await curveFigures(firstSeeds);
  const passk = await passAtKFigure(table.rows);
  if (passk) figures.push(passk);
  let tokenDiffSkipped: string | null = null;
  try {
    const fig = await tokenDiffFigure(firstSeeds, o);
    if (typeof fig === 'string') tokenDiffSkipped = fig;
    else figures.push(fig);
  } catch (err) {
    tokenDiffSkipped = `token view failed: ${(err as Error).message}`;
  }
  for (const f of figures) {
    writeFileAtomic(path.join(o.out, 'figures', `${f.id}.svg`), f.svg);
    writeFileAtomic(path.join(o.out, 'figures', `${f.id}.png`), f.png);
  }

  const seeds = [...new Set(runs.map((r) => r.seed))];
  const p = o.provenance;
  const notes = [
    ...(o.notes ?? []),
    ...(p
      ? [`Machine: ${machineLine(p.machine)}. Base model weights: SHA-256 ${p.baseModelSha256.slice(0, 16)}….`]
      : []),
    `Seeds: ${seeds.map((s) => s ?? '?').join(', ')}.`,
    ...(tokenDiffSkipped ? [`Token-probability view: ${tokenDiffSkipped}`] : []),
  ];
  writeFileAtomic(
    path.join(o.out, 'results.md'),
    `# ${o.title ?? 'red report'}\n\n${notes.join('\n\n')}\n\n${markdown}`,
  );
  writeJsonAtomic(path.join(o.out, 'results.json'), {
    title: o.title ?? 'red report',
    columns: table.columns,
    columnKind: table.columnKind,
    verdict: table.verdict,
    ...(p ? { machine: p.machine, baseModel: { sha256: p.baseModelSha256 } } : {}),
    methods: Object.fromEntries(
      table.rows.map((r) => [
        r.name,
        {
          ...r,
          dir: runs.find((x) => x.name === r.name)?.dir ?? o.base?.dir ?? null,
          method: runs.find((x) => x.name === r.name)?.method ?? null,
          eval: inputs.find((x) => x.name === r.name)?.eval?.metrics ?? {},
        },
      ]),
    ),
  });
  const html = path.join(o.out, 'report.html');
  writeFileAtomic(
    html,
    reportHtml({ title: o.title ?? 'red report', notes, table, figures, runs, generated: new Date().toISOString() }),
  );
  return { html, markdown, figures: figures.map((f) => f.id), tokenDiffSkipped };
}

function weightBytes(dir: string): number {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors') && !f.startsWith('optimizer') && !f.startsWith('sft_optimizer'))
    .reduce((a, f) => a + statSync(path.join(dir, f)).size, 0);
}

/** The trace: the first example with a trace at level ≥ 3 (any, when the data has no levels). */
async function pickTrace(file: string, fields: string | null): Promise<TrainingExample | null> {
  const data = await loadDataset(file, { fields: fields ?? 'paper', onBadRow: 'skip', limit: 500 });
  const withTrace = data.examples.filter((e) => e.trace !== undefined);
  return withTrace.find((e) => (e.level ?? 0) >= 3) ?? withTrace[0] ?? null;
}

/**
 * The folder of a model given as a folder or a Hub id. An id is read from the Hugging Face cache
 * only (the training run fetched it): a report never downloads a model for a figure.
 */
async function localModelDir(dirOrId: string | null): Promise<string | null> {
  if (dirOrId === null || existsSync(dirOrId)) return dirOrId;
  try {
    return await resolveModelPath(dirOrId, 'the base model', { settings: { ...hubSettings(), offline: true } });
  } catch {
    return null;
  }
}

/**
 * Figure 5: base → each of (grpo, red) where present, else the first two runs with a checkpoint.
 * Returns why it was skipped instead of a figure when something it needs is missing.
 */
async function tokenDiffFigure(runs: readonly RunSummary[], o: BuildReportOptions): Promise<Figure | string> {
  const mode = o.tokenDiff ?? 'auto';
  if (mode === 'off') return 'turned off';
  const baseDir = await localModelDir(
    (o.base?.dir || null) ?? runs.find((r) => r.modelPath !== null)?.modelPath ?? null,
  );
  if (!baseDir || !existsSync(path.join(baseDir, 'config.json')))
    return 'no base model folder (config.yaml model.path) to compare against';
  const withCkpt = runs.filter((r) => r.checkpoint !== null);
  const preferred = ['grpo', 'red']
    .map((n) => withCkpt.find((r) => r.name === n || r.method === n))
    .filter((r): r is RunSummary => r !== undefined);
  const targets = preferred.length > 0 ? preferred : withCkpt.slice(0, 2);
  if (targets.length === 0) return 'no run has a checkpoint';
  if (mode === 'auto' && weightBytes(baseDir) > TOKEN_DIFF_MAX_BYTES)
    return `the model is over ${TOKEN_DIFF_MAX_BYTES / 1e6} MB; run red report with --token-diff force to score the trace anyway`;
  const traceFile = o.traceFile ?? runs.find((r) => r.trainData !== null)?.trainData ?? null;
  if (!traceFile || !existsSync(traceFile)) return 'no data file with a teacher trace';
  const example = await pickTrace(
    traceFile,
    o.traceFile ? 'paper' : (runs.find((r) => r.trainData !== null)?.dataFields ?? null),
  );
  if (!example?.trace) return `${traceFile} has no teacher trace`;

  const backend = getBackend(o.backend ?? 'auto');
  const tokenizer = loadTokenizer(baseDir);
  const promptIds = tokenizer.encode(tokenizer.applyChatTemplate(promptMessages(example), true));
  const limit = Math.min(400, runs.find((r) => r.responseLimit !== null)?.responseLimit ?? 400);
  const fullTrace = tokenizer.encode(example.trace);
  const shown = shownTokenCount(
    fullTrace.map((id) => tokenizer.decode([id], false)),
    limit,
  );
  const traceIds = fullTrace.slice(0, shown);
  const score = async (dir: string) => traceLogprobs(await Qwen2Model.load(dir, { backend }), promptIds, traceIds);
  const before = await score(baseDir);
  const panels = [];
  for (const r of targets)
    panels.push({
      label: `base → ${r.name} (${path.basename(r.checkpoint!)})`,
      delta: probabilityDelta(before, await score(r.checkpoint!)),
    });
  const tokens = traceIds.map((id) => tokenizer.decode([id], false));
  const svg = tokenDiffSvg({
    tokens,
    panels,
    omitted: fullTrace.length - shown,
    caption: `Teacher trace of "${example.problem.slice(0, 80)}"${example.level !== undefined ? ` (level ${example.level})` : ''}`,
  });
  return {
    id: 'token-diff',
    title: 'Token probability change on a teacher trace (Fig. 5)',
    caption:
      "Each token of one teacher trace shaded by p_after − p_before under each model's forward pass: red = more likely, blue = less likely, white = unchanged; darker = larger change (intensity ∝ √|Δp|).",
    svg,
    png: svgToPng(svg),
  };
}
