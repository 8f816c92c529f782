// The evaluation benchmarks: a registry of the paper's six (file name in the user's --data
// folder, where problem and gold answer live in each record, how many samples per problem), a
// `name=path` form for any other JSONL/Parquet file, and the loader that turns records into
// problems. Each file stores its gold differently (SOURCES.md); the rules below undo that.
import path from 'node:path';
import { describeSkipped } from '../data/dataset.ts';
import { getPath, readRecordsDetailed, tryGetPath, type DataRecord, type RecordSource } from '../data/records.ts';
import { lastBoxed } from '../reward/extract.ts';
import { fail } from '../util/errors.ts';

/** Where a record keeps its gold answer. */
export type GoldRule =
  /** A string or number field (`answer`: "204", 142.0, "\\frac{14}{3}"); a list means any of them. */
  | { kind: 'field'; path: string }
  /** The last `\boxed{…}` of a worked solution (Minerva has no answer field). */
  | { kind: 'lastBoxed'; path: string }
  /** OlympiadBench's `final_answer`: a list whose first item is "$…$" (several answers: "$a$,$b$"). */
  | { kind: 'dollarList'; path: string };

export interface BenchmarkSpec {
  /** Key used on the command line and in results (`aime24`). */
  name: string;
  /** Column title in the tables (`AIME24`). */
  title: string;
  /** File name inside --data, or an absolute/relative path for a custom benchmark. */
  file: string;
  /** Dotted path of the problem text. */
  problemField: string;
  gold: GoldRule;
  /** Dotted path of an id to carry into samples.jsonl (optional). */
  idField?: string;
  /** Dotted path of a difficulty level; accuracy is also reported per level when present. */
  levelField?: string;
  /** Samples per problem under the paper's protocol: 32 for avg@32, 1 for pass@1. */
  samples: number;
}

/**
 * The paper's Table 2 benchmarks, in its column order. AIME24/AIME25/AMC are avg@32, the others
 * pass@1 (RED-SPEC "Reward and evaluation protocol"). AMC is the 83-problem AMC22+23 set.
 */
export const BENCHMARKS: readonly BenchmarkSpec[] = [
  {
    name: 'aime24',
    title: 'AIME24',
    file: 'aime24.jsonl',
    problemField: 'problem',
    gold: { kind: 'field', path: 'answer' },
    idField: 'id',
    samples: 32,
  },
  {
    name: 'aime25',
    title: 'AIME25',
    file: 'aime25.jsonl',
    problemField: 'question',
    gold: { kind: 'field', path: 'answer' },
    idField: 'id',
    samples: 32,
  },
  {
    name: 'amc',
    title: 'AMC',
    file: 'amc83.jsonl',
    problemField: 'problem',
    gold: { kind: 'field', path: 'answer' },
    samples: 32,
  },
  {
    name: 'math500',
    title: 'MATH500',
    file: 'math500.jsonl',
    problemField: 'problem',
    gold: { kind: 'field', path: 'answer' },
    idField: 'unique_id',
    levelField: 'level',
    samples: 1,
  },
  {
    name: 'minerva',
    title: 'Minerva',
    file: 'minerva_math.jsonl',
    problemField: 'problem',
    gold: { kind: 'lastBoxed', path: 'solution' },
    idField: 'idx',
    samples: 1,
  },
  {
    name: 'olympiad',
    title: 'Olympiad',
    file: 'olympiadbench.jsonl',
    problemField: 'question',
    gold: { kind: 'dollarList', path: 'final_answer' },
    idField: 'id',
    samples: 1,
  },
  // Not in Table 2, but in the data folder: the 40-problem AMC23 subset.
  {
    name: 'amc23',
    title: 'AMC23',
    file: 'amc23.jsonl',
    problemField: 'problem',
    gold: { kind: 'field', path: 'answer' },
    idField: 'id',
    samples: 32,
  },
];

/** The default --benchmarks: the six of Table 2. */
export const PAPER_BENCHMARKS = ['aime24', 'aime25', 'amc', 'math500', 'minerva', 'olympiad'] as const;

const ALIASES: Record<string, string> = {
  'math-500': 'math500',
  minerva_math: 'minerva',
  olympiadbench: 'olympiad',
  amc83: 'amc',
};

export function benchmarkByName(name: string): BenchmarkSpec {
  const key = ALIASES[name.toLowerCase()] ?? name.toLowerCase();
  const spec = BENCHMARKS.find((b) => b.name === key);
  if (!spec)
    fail(
      `unknown benchmark '${name}'; known: ${BENCHMARKS.map((b) => b.name).join(', ')} (or give a file as name=path)`,
    );
  return spec;
}

/** Field mapping for benchmarks given as files. `answer` may be `boxed:FIELD` (last \boxed{} of FIELD). */
export interface CustomFields {
  problem: string;
  answer: string;
  level: string;
  id?: string;
}
export const DEFAULT_CUSTOM_FIELDS: CustomFields = { problem: 'problem', answer: 'answer', level: 'level' };

/**
 * A benchmark named on the command line: a registry name (`aime24`), or a file as `name=path`
 * or a bare `path` (name = the file's base name). Files use `fields`; the level field is
 * optional per record, so the built-in task's held-out split (problem, answer, distill, level)
 * works with the defaults.
 */
export function resolveBenchmark(
  arg: string,
  fields: CustomFields = DEFAULT_CUSTOM_FIELDS,
  samples = 1,
): BenchmarkSpec {
  const eq = arg.indexOf('=');
  const looksLikeFile = eq > 0 || /\.(jsonl|ndjson|parquet)$/i.test(arg);
  if (!looksLikeFile) return benchmarkByName(arg);
  const file = eq > 0 ? arg.slice(eq + 1) : arg;
  const name = eq > 0 ? arg.slice(0, eq) : path.basename(file).replace(/\.(jsonl|ndjson|parquet)$/i, '');
  if (!/^[A-Za-z0-9_.-]+$/.test(name))
    fail(`benchmark name '${name}' (from '${arg}') may use only letters, digits, '_', '.', '-'`);
  const gold: GoldRule = fields.answer.startsWith('boxed:')
    ? { kind: 'lastBoxed', path: fields.answer.slice('boxed:'.length) }
    : { kind: 'field', path: fields.answer };
  return {
    name,
    title: name,
    file,
    problemField: fields.problem,
    gold,
    idField: fields.id,
    levelField: fields.level,
    samples,
  };
}

/** One problem ready to prompt. `gold` is null when the record's answer could not be read. */
export interface EvalProblem {
  benchmark: string;
  /** 0-based position among the benchmark's problems (the resume key with `benchmark`). */
  index: number;
  /** 1-based row in the file, for messages. */
  row: number;
  id?: string;
  level?: string;
  problem: string;
  gold: string | string[] | null;
  /** Why `gold` is null (the problem is listed in results, not scored). */
  goldError?: string;
}

/** "$a$" → "a"; "$69$,$84$" → "69, 84" (several answers, as OlympiadBench writes them). */
export function stripDollars(s: string): string {
  return s
    .trim()
    .replace(/\$\s*,\s*\$/g, ', ')
    .replace(/^\$+|\$+$/g, '')
    .trim();
}

type GoldResult = { gold: string | string[] } | { error: string };

function goldValueToString(v: unknown): string | null {
  if (typeof v === 'string') return v.trim() === '' ? null : v.trim();
  // JSON `142.0` arrives as the number 142; a float gold is an integer answer in these sets.
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return null;
}

/** The gold answer of a record under `rule`, or why there is none. */
export function readGold(record: DataRecord, rule: GoldRule): GoldResult {
  const raw = tryGetPath(record, rule.path);
  if (raw === undefined || raw === null) return { error: `no '${rule.path}' field` };
  switch (rule.kind) {
    case 'field': {
      if (Array.isArray(raw)) {
        const list = raw.map(goldValueToString);
        if (list.length === 0 || list.some((g) => g === null))
          return { error: `'${rule.path}' is a list with an empty or non-text item` };
        return { gold: list as string[] };
      }
      const g = goldValueToString(raw);
      return g === null
        ? { error: `'${rule.path}' is ${JSON.stringify(raw)}, expected a non-empty string or a number` }
        : { gold: g };
    }
    case 'lastBoxed': {
      if (typeof raw !== 'string') return { error: `'${rule.path}' is not text` };
      const boxed = lastBoxed(raw) ?? null;
      return boxed === null ? { error: `'${rule.path}' has no \\boxed{} answer` } : { gold: boxed.trim() };
    }
    case 'dollarList': {
      const first: unknown = Array.isArray(raw) ? raw[0] : raw;
      if (typeof first !== 'string') return { error: `'${rule.path}' is not a list of strings` };
      const g = stripDollars(first);
      return g === '' ? { error: `'${rule.path}'[0] is empty` } : { gold: g };
    }
    default:
      return rule satisfies never;
  }
}

/** Where a benchmark's file is: registry files inside --data, custom ones as given. */
export function benchmarkPath(spec: BenchmarkSpec, dataDir: string | undefined): string {
  const isRegistry = BENCHMARKS.some((b) => b === spec);
  if (!isRegistry) return spec.file;
  if (!dataDir) fail(`benchmark '${spec.name}' needs --data: a folder holding ${spec.file}`);
  return path.join(dataDir, spec.file);
}

/**
 * The first `limit` problems of a benchmark (all when limit is undefined). Rows that are not UTF-8
 * are left out, and `onWarning` hears how many (else they would vanish from the count unsaid).
 */
export async function loadBenchmark(
  spec: BenchmarkSpec,
  dataDir: string | undefined,
  limit?: number,
  onWarning: (message: string) => void = () => {},
): Promise<EvalProblem[]> {
  const file = benchmarkPath(spec, dataDir);
  const { records, rows, skipped, skippedBy } = await readRecordsDetailed(file);
  if (skipped > 0)
    onWarning(`${file}: skipped ${skipped} row(s) (${describeSkipped(skippedBy)}); they are not evaluated`);
  if (records.length === 0) fail(`${file}: no records`);
  const count = limit === undefined ? records.length : Math.min(limit, records.length);
  const problems: EvalProblem[] = [];
  for (let i = 0; i < count; i++) {
    const record = records[i];
    const source: RecordSource = { file, row: rows[i] };
    const text = getPath(record, spec.problemField, source);
    if (typeof text !== 'string' || text.trim() === '')
      fail(
        `${file}: row ${rows[i]}: '${spec.problemField}' should be the problem text, got ${JSON.stringify(text)?.slice(0, 60)}`,
      );
    const p: EvalProblem = { benchmark: spec.name, index: i, row: rows[i], problem: text, gold: null };
    const id = spec.idField ? tryGetPath(record, spec.idField) : undefined;
    if (id !== undefined && id !== null) p.id = String(id);
    const level = spec.levelField ? tryGetPath(record, spec.levelField) : undefined;
    if (level !== undefined && level !== null && level !== '') p.level = String(level);
    const g = readGold(record, spec.gold);
    if ('gold' in g) p.gold = g.gold;
    else p.goldError = g.error;
    problems.push(p);
  }
  return problems;
}
