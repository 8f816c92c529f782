// What `red train` may do with its --out folder. Only a new or empty folder or one of red's own
// runs (util/ownership.ts) is written at all. A fresh run refuses a folder that holds another run
// (its metrics and checkpoints would be mixed with the new ones); --force empties it first of what
// red wrote there, never of anything else, and never when an input of the run lies inside it.
// A resumed run refuses a changed method or model (the checkpoint belongs to the old ones) unless
// --force, and lists every other key that changed since the folder's config.yaml was written.
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { fail } from '../util/errors.ts';
import {
  checkOutFolder,
  checkOutIsNoInput,
  emptyOwnedFolder,
  listEntries,
  markFolder,
  ownedEntries,
  type CommandInput,
} from '../util/ownership.ts';
import { moveDeprecatedKeys, type TrainConfig } from './config.ts';

/** Keys whose change makes the checkpoint meaningless for the new config. */
const IDENTITY_KEYS = ['method', 'model.path'];

/** Entries of `dir` that red's runs write, but not those of a run that never started. */
export function runFolderEntries(dir: string): string[] {
  // A run that failed before its first step leaves only config.yaml (and an empty metrics.jsonl):
  // nothing to lose, and refusing the corrected command would only be in the way.
  const metrics = path.join(dir, 'metrics.jsonl');
  return ownedEntries(dir, 'run').filter(
    (n) => n !== 'config.yaml' && !(n === 'metrics.jsonl' && statSync(metrics).size === 0),
  );
}

/**
 * Readies `dir` for the run once its inputs have loaded: with `check.clear` (--force on a folder
 * holding another run) removes what red wrote there; marks the folder as a run of red train.
 */
export function prepareRunFolder(dir: string, check: RunFolderCheck): void {
  if (check.clear) emptyOwnedFolder(dir, 'run');
  markFolder(dir, 'run', 'red train');
}

/** The files and folders a run reads, which --out must not be (or, with --force, hold). */
function runInputs(config: TrainConfig): CommandInput[] {
  return [
    { option: 'model.path', path: config.model.path },
    { option: 'model.referencePath', path: config.model.referencePath },
    { option: 'data.train', path: config.data.train },
  ];
}

/** `a.b.c` → value, for every leaf (arrays are leaves). */
function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else out[prefix] = value;
  return out;
}

/** "key old → new" for every key whose value differs between two configs. */
export function configChanges(before: unknown, after: unknown): string[] {
  const a = flatten(before);
  const b = flatten(after);
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const show = (v: unknown) => (v === undefined ? '(unset)' : JSON.stringify(v));
  return keys
    .filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]))
    .map((k) => `${k} ${show(a[k])} → ${show(b[k])}`);
}

export interface RunFolderRequest {
  out: string;
  resume: boolean;
  force: boolean;
}

export interface RunFolderCheck {
  /** The keys changed since the folder's config.yaml, on resume (for the log). */
  changes: string[];
  /** --force on a folder holding another run: empty it (clearRunFolder) once the run's inputs have loaded. */
  clear: boolean;
}

/**
 * Checks the folder for a run of `config` without changing it; fails with the fix when the run
 * may not go there.
 */
export function checkRunFolder(req: RunFolderRequest, config: TrainConfig): RunFolderCheck {
  const { out } = req;
  checkOutFolder(out, { command: 'red train', kind: 'run', force: req.force });
  if (!req.resume) {
    const entries = runFolderEntries(out);
    checkOutIsNoInput(out, runInputs(config), entries.length > 0 && req.force);
    if (entries.length === 0) return { changes: [], clear: false };
    if (!req.force) {
      fail(
        `${out} already holds a run (${listEntries(entries, 3)}); add --resume to continue it, --force to delete it and start over, or choose another --out`,
      );
    }
    return { changes: [], clear: true };
  }
  checkOutIsNoInput(out, runInputs(config));
  const file = path.join(out, 'config.yaml');
  if (!existsSync(file)) return { changes: [], clear: false };
  let before: unknown;
  try {
    before = YAML.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(
      `${file}: unreadable (${(err as Error).message}); give --config, or --force to continue without comparing`,
    );
  }
  // A folder of an older red names the engine's keys under model: compare them where they are now.
  if (before !== null && typeof before === 'object' && !Array.isArray(before))
    moveDeprecatedKeys(before as Record<string, unknown>, file);
  const changes = configChanges(before, config);
  const identity = changes.filter((c) => IDENTITY_KEYS.some((k) => c.startsWith(`${k} `)));
  // Without a checkpoint there is nothing of the old run to continue from, hence nothing to protect.
  if (identity.length > 0 && !req.force && existsSync(path.join(out, 'checkpoints'))) {
    fail(
      `--resume: ${identity.join('; ')} since ${out} was started, so its checkpoint belongs to another run; ` +
        `resume with the same ${identity.map((c) => c.split(' ')[0]).join(' and ')}, add --force to continue from that checkpoint anyway, or choose another --out`,
    );
  }
  return { changes, clear: false };
}
