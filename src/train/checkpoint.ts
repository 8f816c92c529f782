// Checkpoint folders `DIR/checkpoints/step-N/`, written atomically: everything goes into a
// temporary sibling folder which is renamed into place only once complete, so a crash or a full
// disk mid-write leaves the previous checkpoint intact and `latest()` never sees a partial one.
// What goes in is the engine's (saveForSampler, saveState) and trainer_state.json.
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { fail, RedError, systemErrorReason } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';

/** The file whose presence marks a checkpoint folder as a training checkpoint (written last). */
export const TRAINER_STATE_FILE = 'trainer_state.json';

export interface CheckpointInfo {
  step: number;
  dir: string;
}

const STEP_DIR = /^step-(\d+)$/;

export class CheckpointManager {
  constructor(
    /** DIR/checkpoints */
    readonly root: string,
    /** How many of the newest checkpoints to keep. */
    readonly keep: number,
  ) {}

  /** Complete checkpoints, oldest first. */
  list(): CheckpointInfo[] {
    if (!existsSync(this.root)) return [];
    const out: CheckpointInfo[] = [];
    for (const name of readdirSync(this.root)) {
      const m = STEP_DIR.exec(name);
      if (!m) continue;
      const dir = path.join(this.root, name);
      if (existsSync(path.join(dir, TRAINER_STATE_FILE))) out.push({ step: Number(m[1]), dir });
    }
    return out.sort((a, b) => a.step - b.step);
  }

  /** The newest complete checkpoint, or null. */
  latest(): CheckpointInfo | null {
    return this.list().at(-1) ?? null;
  }

  /**
   * Writes checkpoint `step`: `write(tmpDir)` fills a temporary folder, which is then renamed to
   * step-N and older checkpoints beyond `keep` are deleted. On any I/O failure the temporary
   * folder is removed and a RedError says what failed; the previous checkpoints are untouched.
   */
  async save(step: number, write: (dir: string) => Promise<void> | void): Promise<string> {
    const final = path.join(this.root, `step-${step}`);
    const tmp = path.join(this.root, `.tmp-step-${step}-${process.pid}`);
    try {
      mkdirSync(this.root, { recursive: true });
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp);
      await write(tmp);
      fsyncDir(tmp);
      if (existsSync(final)) {
        // Re-saving a step (a resumed run reaching it again): swap, then delete the old one.
        const old = path.join(this.root, `.old-step-${step}-${process.pid}`);
        rmSync(old, { recursive: true, force: true });
        renameSync(final, old);
        renameSync(tmp, final);
        rmSync(old, { recursive: true, force: true });
      } else {
        renameSync(tmp, final);
      }
      fsyncDir(this.root);
    } catch (err) {
      try {
        rmSync(tmp, { recursive: true, force: true });
      } catch {
        // the folder may be unreachable (the reason we failed); nothing more to clean
      }
      if (err instanceof RedError) throw err;
      const prev = this.latest();
      fail(
        `cannot write checkpoint ${final}: ${systemErrorReason(err) ?? `an I/O error (${(err as Error).message})`}; ` +
          (prev ? `the previous checkpoint ${prev.dir} is intact` : 'no earlier checkpoint exists'),
      );
    }
    this.prune();
    return final;
  }

  /** Deletes all but the newest `keep` checkpoints, and temporary folders left by crashed runs of other processes. */
  prune(): void {
    const all = this.list();
    for (const c of all.slice(0, Math.max(0, all.length - this.keep))) rmSync(c.dir, { recursive: true, force: true });
    for (const name of readdirSync(this.root)) {
      if ((name.startsWith('.tmp-step-') || name.startsWith('.old-step-')) && !name.endsWith(`-${process.pid}`)) {
        rmSync(path.join(this.root, name), { recursive: true, force: true });
      }
    }
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes JSON atomically (within a checkpoint's temporary folder this also fsyncs it). */
export function writeStateJson(file: string, value: unknown): void {
  writeJsonAtomic(file, value);
}

export function readStateJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    return fail(`${file}: cannot read the training state (${(err as Error).message})`);
  }
}

/** Copies the tokenizer files of a model folder (those that exist) into `dir`. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'generation_config.json',
  'added_tokens.json',
];
export function copyTokenizerFiles(fromDir: string, dir: string): void {
  for (const name of TOKENIZER_FILES) {
    const src = path.join(fromDir, name);
    const dst = path.join(dir, name);
    if (existsSync(src) && statSync(src).isFile() && !existsSync(dst)) writeFileAtomic(dst, readFileSync(src));
  }
}
