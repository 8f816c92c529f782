// Checkpoint folders `DIR/checkpoints/step-N/`, written atomically: everything goes into a
// temporary sibling folder which is renamed into place only once complete, so a crash or a full
// disk mid-write leaves the previous checkpoint intact and `latest()` never sees a partial one.
// Also a minimal safetensors writer/reader for flat float32 state (AdamW moments).
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { fail, RedError, systemErrorReason } from '../util/errors.ts';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.ts';
import { writeSafetensors } from '../model/safetensors.ts';

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

/**
 * Flat float32 arrays as a safetensors file (the model's writer: temporary name, then rename), so
 * optimiser moments are readable by any safetensors loader.
 */
export function writeF32Tensors(file: string, tensors: Record<string, Float32Array>): void {
  writeSafetensors(
    file,
    Object.entries(tensors).map(([name, data]) => ({ name, shape: [data.length], data })),
  );
}

/**
 * A checkpoint saved in bf16 (checkpoint.saveDtype) keeps the fp32 master weights here, beside its
 * model.safetensors, so --resume continues from the exact weights rather than their bf16 rounding.
 */
export const MASTER_WEIGHTS_FILE = 'master.safetensors';

export function writeMasterWeights(dir: string, params: Float32Array): void {
  writeF32Tensors(path.join(dir, MASTER_WEIGHTS_FILE), { params });
}

/** The checkpoint's fp32 master weights, or null when it has none (it was saved in fp32). */
export function readMasterWeights(dir: string): Float32Array | null {
  const file = path.join(dir, MASTER_WEIGHTS_FILE);
  if (!existsSync(file)) return null;
  const { params } = readF32Tensors(file);
  if (!params) fail(`${file}: expected one tensor "params" (the flat fp32 master weights)`);
  return params;
}

interface TensorHeader {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Bytes per read call. */
const IO_CHUNK = 1 << 28;

/**
 * Reads them back in chunks straight into the arrays: the moments of a 1.5B model are 6 GB each,
 * past Node's largest Buffer.
 */
export function readF32Tensors(file: string): Record<string, Float32Array> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    return fail(`${file}: cannot read (${(err as Error).message})`);
  }
  try {
    const size = fstatSync(fd).size;
    const len = Buffer.alloc(8);
    if (size < 8 || readSync(fd, len, 0, 8, 0) !== 8) fail(`${file}: not a safetensors file (too short)`);
    const n = Number(len.readBigUInt64LE(0));
    if (8 + n > size) fail(`${file}: not a safetensors file (header length ${n} exceeds the file)`);
    const headBytes = Buffer.alloc(n);
    readExactly(fd, headBytes, 8, file);
    let header: Record<string, TensorHeader>;
    try {
      header = JSON.parse(headBytes.toString('utf8'));
    } catch {
      return fail(`${file}: not a safetensors file (bad header)`);
    }
    const out: Record<string, Float32Array> = {};
    for (const [name, h] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      if (h.dtype !== 'F32') fail(`${file}: tensor ${name} has dtype ${h.dtype}; expected F32`);
      const [a, b] = h.data_offsets;
      if (8 + n + b > size || (b - a) % 4 !== 0)
        fail(`${file}: tensor ${name} runs past the end of the file (truncated?)`);
      const t = new Float32Array((b - a) / 4);
      for (let pos = 0; pos < t.byteLength; pos += IO_CHUNK) {
        readExactly(fd, Buffer.from(t.buffer, pos, Math.min(IO_CHUNK, t.byteLength - pos)), 8 + n + a + pos, file);
      }
      out[name] = t;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

function readExactly(fd: number, into: Buffer, position: number, file: string): void {
  let off = 0;
  while (off < into.length) {
    const got = readSync(fd, into, off, into.length - off, position + off);
    if (got === 0) fail(`${file}: unexpected end of file (truncated?)`);
    off += got;
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
