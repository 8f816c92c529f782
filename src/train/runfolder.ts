// What `red train` may do with its --out folder. A fresh run refuses a folder that holds another
// run (its metrics and checkpoints would be mixed with the new ones); --force empties it first.
// A resumed run refuses a changed method or model (the checkpoint belongs to the old ones) unless
// --force, and lists every other key that changed since the folder's config.yaml was written.
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { fail } from '../util/errors.ts';
import { LOCK_FILE } from '../util/lock.ts';
import { moveDeprecatedKeys } from './config.ts';

/** Keys whose change makes the checkpoint meaningless for the new config. */
const IDENTITY_KEYS = ['method', 'model.path'];

/** Entries of `dir` that belong to a run: anything but the lock, and not a run that never started. */
export function runFolderEntries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir).filter((n) => n !== LOCK_FILE && !n.startsWith(`${LOCK_FILE}.`));
  // A run that failed before its first step leaves only config.yaml (and an empty metrics.jsonl):
  // nothing to lose, and refusing the corrected command would only be in the way.
  const metrics = path.join(dir, 'metrics.jsonl');
  const started = names.filter((n) => n !== 'config.yaml' && !(n === 'metrics.jsonl' && statSync(metrics).size === 0));
  return started;
}

/** Empties `dir` except its lock file (held by this process): what --force does to a folder holding another run. */
export function clearRunFolder(dir: string): void {
  for (const n of readdirSync(dir)) if (n !== LOCK_FILE) rmSync(path.join(dir, n), { recursive: true, force: true });
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
export function checkRunFolder(req: RunFolderRequest, config: unknown): RunFolderCheck {
  const { out } = req;
  if (!req.resume) {
    const entries = runFolderEntries(out);
    if (entries.length === 0) return { changes: [], clear: false };
    if (!req.force) {
      fail(
        `${out} already holds a run (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); add --resume to continue it, --force to delete it and start over, or choose another --out`,
      );
    }
    return { changes: [], clear: true };
  }
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
