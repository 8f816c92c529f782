// Which folders red may write into, empty or replace: only its own. A folder is red's when it
// holds red's marker file (written when a command starts writing into a new or empty folder), or,
// for folders written before the marker existed, the files a red command leaves there (a run:
// config.yaml with metrics.jsonl or checkpoints/). Anything else that is not empty belongs to the
// user: a command refuses it in one line listing what it found, --force included. Emptying a red
// folder removes the entries red writes there and nothing else.
import { existsSync, readdirSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fail } from './errors.ts';
import { writeJsonAtomic } from './fs.ts';
import { LOCK_FILE } from './lock.ts';

export type FolderKind = 'run' | 'model' | 'eval' | 'report' | 'data' | 'demo' | 'comparison';

/** The marker: { kind, command, created } as JSON, beside the lock file. */
export const MARKER_FILE = '.red-folder.json';

interface KindInfo {
  /** "a run of red train", for messages. */
  what: string;
  /** The entries a red command writes in such a folder: what emptying it removes. */
  entries: readonly string[];
  /** Folders written before the marker: holding every entry of one of these sets makes it red's. */
  legacy: readonly (readonly string[])[];
}

/** What `red eval` writes into its --out (which may be a run folder: RUN/results.json is read by `red report`). */
const EVAL_ENTRIES = ['run.json', 'samples.jsonl', 'results.json', 'results.md', 'passk.svg', 'passk.png'];

const KINDS: Record<FolderKind, KindInfo> = {
  run: {
    what: 'a run of red train',
    entries: [
      'config.yaml',
      'metrics.jsonl',
      'checkpoints',
      'tb',
      'rollout-weights',
      ...EVAL_ENTRIES,
      // what `red demo` adds to each of its runs
      'eval',
      'wall_time.json',
      'demo_key.json',
    ],
    legacy: [
      ['config.yaml', 'metrics.jsonl'],
      ['config.yaml', 'checkpoints'],
    ],
  },
  model: {
    what: 'a model folder written by red pretrain',
    entries: [
      'config.json',
      'generation_config.json',
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'pretrain.json',
    ],
    legacy: [['config.json', 'model.safetensors', 'pretrain.json']],
  },
  eval: {
    what: 'an evaluation written by red eval',
    entries: EVAL_ENTRIES,
    legacy: [
      ['run.json', 'samples.jsonl'],
      ['run.json', 'results.json'],
    ],
  },
  report: {
    what: 'a report written by red report',
    entries: ['report.html', 'results.md', 'results.json', 'figures'],
    legacy: [['report.html', 'results.json', 'figures']],
  },
  data: {
    what: 'the built-in data written by red data builtin',
    entries: ['train.jsonl', 'test.jsonl', 'tokenizer.json', 'tokenizer_config.json'],
    legacy: [['train.jsonl', 'test.jsonl', 'tokenizer.json', 'tokenizer_config.json']],
  },
  demo: {
    what: 'a red demo folder',
    entries: [
      'base',
      'data',
      'runs',
      'base-eval',
      'train-config.yaml',
      'results.md',
      'results.json',
      'figures',
      'report.html',
      '.red-digests.json',
    ],
    legacy: [['train-config.yaml', 'runs']],
  },
  comparison: {
    what: 'a comparison written by red eval --compare',
    entries: ['compare.md'],
    legacy: [['compare.md']],
  },
};

/**
 * The order in which unmarked folders are matched, the most specific first: a demo folder also
 * holds a report's files, a run folder an eval's.
 */
const LEGACY_ORDER: readonly FolderKind[] = ['demo', 'run', 'model', 'eval', 'report', 'data', 'comparison'];

/** What a folder is: absent, empty (of anything but red's lock), red's of some kind, or someone else's. */
export interface FolderState {
  /** null: absent, empty, or not red's. */
  kind: FolderKind | null;
  /** Its entries other than red's lock and marker, folders with a trailing '/'. */
  entries: string[];
}

const isBookkeeping = (name: string) => name === MARKER_FILE || name === LOCK_FILE || name.startsWith(`${LOCK_FILE}.`);

function markerKind(dir: string): FolderKind | null {
  try {
    const kind = (JSON.parse(readFileSync(path.join(dir, MARKER_FILE), 'utf8')) as { kind?: unknown }).kind;
    return typeof kind === 'string' && Object.hasOwn(KINDS, kind) ? (kind as FolderKind) : null;
  } catch {
    return null;
  }
}

export function folderState(dir: string): FolderState {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return { kind: null, entries: [] };
  const names = readdirSync(dir)
    .filter((n) => !isBookkeeping(n))
    .sort();
  const entries = names.map((n) =>
    statSync(path.join(dir, n), { throwIfNoEntry: false })?.isDirectory() ? `${n}/` : n,
  );
  const marked = markerKind(dir);
  if (marked !== null) return { kind: marked, entries };
  const legacy = LEGACY_ORDER.find((k) => KINDS[k].legacy.some((set) => set.every((n) => names.includes(n))));
  return { kind: legacy ?? null, entries };
}

/** "notes.txt, photos/, …" (the first few). */
export function listEntries(entries: readonly string[], max = 4): string {
  return entries.slice(0, max).join(', ') + (entries.length > max ? `, … (${entries.length} in all)` : '');
}

export interface OutFolderRequest {
  /** The command, for messages: "red pretrain". */
  command: string;
  /** The kind of folder the command writes. */
  kind: FolderKind;
  /** Other kinds of red folder it may also write into (red eval into a run folder). */
  alsoInto?: readonly FolderKind[];
  /** Whether --force was given (messages say that it does not reach other people's folders). */
  force?: boolean;
}

/**
 * Checks that `req.command` may write `dir`: absent, empty, or red's own folder of the kinds it
 * writes; otherwise fails in one line listing what the folder holds. Returns the folder's state.
 */
export function checkOutFolder(dir: string, req: OutFolderRequest): FolderState {
  const state = folderState(dir);
  if (existsSync(dir) && !statSync(dir).isDirectory())
    fail(`--out ${dir} is a file, not a folder; choose another --out`);
  if (state.entries.length === 0) return state;
  const accepted = [req.kind, ...(req.alsoInto ?? [])];
  if (state.kind !== null && accepted.includes(state.kind)) return state;
  const is = state.kind !== null ? `is ${KINDS[state.kind].what}` : 'is not a folder red wrote';
  fail(
    `--out ${dir} ${is} (it holds ${listEntries(state.entries)}); ${req.command} writes only into a new or empty folder or ${KINDS[req.kind].what}${req.force ? ', and --force empties only such a folder' : ''}: choose another --out`,
  );
}

/**
 * Marks `dir` as red's folder of `kind`, unless it is red's already (of any kind: eval results
 * written into a run folder leave it a run folder). Called when a command starts writing there.
 */
export function markFolder(dir: string, kind: FolderKind, command: string): void {
  if (markerKind(dir) !== null) return;
  const legacy = folderState(dir).kind;
  if (legacy !== null && legacy !== kind) return;
  writeJsonAtomic(path.join(dir, MARKER_FILE), { kind, command, created: new Date().toISOString() });
}

/** The entries of `dir` that red writes in a folder of `kind` (what emptying it removes). */
export function ownedEntries(dir: string, kind: FolderKind): string[] {
  if (!existsSync(dir)) return [];
  const owned = new Set(KINDS[kind].entries);
  return readdirSync(dir)
    .filter((n) => owned.has(n))
    .sort();
}

/** The entries of `dir` that are not among those red writes in a folder of `kind` (a user's, beside red's). */
export function unownedEntries(dir: string, kind: FolderKind): string[] {
  const owned = new Set(KINDS[kind].entries);
  return folderState(dir).entries.filter((e) => !owned.has(e.replace(/\/$/, '')));
}

/**
 * Empties red's folder `dir` of `kind`: removes the entries red writes there and keeps anything
 * else (a user's notes beside a run), the lock and the marker. Returns the names it kept.
 */
export function emptyOwnedFolder(dir: string, kind: FolderKind): string[] {
  for (const n of ownedEntries(dir, kind)) rmSync(path.join(dir, n), { recursive: true, force: true });
  return folderState(dir).entries;
}

/** The real path of `p`, also for a path that does not exist yet (its deepest existing folder resolved). */
export function realPath(p: string): string {
  const abs = path.resolve(p);
  let head = abs;
  const tail: string[] = [];
  while (!existsSync(head) && path.dirname(head) !== head) {
    tail.unshift(path.basename(head));
    head = path.dirname(head);
  }
  try {
    return path.join(realpathSync(head), ...tail);
  } catch {
    return abs;
  }
}

/** Whether `inner` is `outer` or lies inside it (real paths). */
function within(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** One input of a command: the option that names it and its path (undefined: not given). */
export interface CommandInput {
  option: string;
  path: string | undefined;
}

/**
 * No command's --out may be one of its inputs (compared as real paths, so a symlink or `./x` does
 * not slip through). With `emptiesOut` (the command may remove things in --out) no input may lie
 * inside --out either. A new folder inside an input (`red report RUN --out RUN/report`) is fine:
 * the command writes only there.
 */
export function checkOutIsNoInput(out: string, inputs: readonly CommandInput[], emptiesOut = false): void {
  const o = realPath(out);
  for (const input of inputs) {
    if (input.path === undefined || input.path === '' || !existsSync(input.path)) continue;
    const i = realPath(input.path);
    if (o === i) fail(`--out ${out} is ${input.option} ${input.path}, an input of this command; choose another --out`);
    if (emptiesOut && within(i, o))
      fail(
        `${input.option} ${input.path} lies inside --out ${out}, which this command empties first; copy it elsewhere or choose another --out`,
      );
  }
}
