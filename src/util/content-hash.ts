// Content hashes of files, so that finished work is reused by what a model or dataset holds, not
// by where it lies: sha256 of each file, then of the list. Hashing a multi-GB checkpoint on every
// run would be slow, so each file's hash is kept in a record the caller stores (eval's run.json,
// the demo's folder) and reused while the file's size and mtime are unchanged.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { writeJsonAtomic } from './fs.ts';

/** One file's hash and the size and mtime it was taken at. */
export interface FileDigest {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** File digests by absolute path: what a caller keeps between runs. */
export type DigestRecord = Record<string, FileDigest>;

export interface ContentHash {
  /** sha256 over the files' names (relative to their folder) and hashes, in the order given. */
  sha256: string;
  /** The digest of every file hashed, for the caller to keep and pass back as `known`. */
  files: DigestRecord;
}

function hashFile(file: string): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 22);
  const fd = openSync(file, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** The digest of `file`, from `known` when its size and mtime still match. */
export function fileDigest(file: string, known: DigestRecord = {}): FileDigest {
  const abs = path.resolve(file);
  const st = statSync(abs);
  const k = known[abs];
  if (k && k.size === st.size && k.mtimeMs === st.mtimeMs) return k;
  return { size: st.size, mtimeMs: st.mtimeMs, sha256: hashFile(abs) };
}

/** The content hash of `files` (each named relative to `base` in the hash), reusing `known` digests. */
export function contentHash(files: readonly string[], base: string, known: DigestRecord = {}): ContentHash {
  const h = createHash('sha256');
  const out: DigestRecord = {};
  for (const f of files) {
    const abs = path.resolve(f);
    const d = fileDigest(abs, known);
    out[abs] = d;
    h.update(`${path.relative(base, abs)}\0${d.sha256}\n`);
  }
  return { sha256: h.digest('hex'), files: out };
}

/** What a model folder's outputs depend on: its config, weights (shards and index) and tokenizer. */
const MODEL_FILE =
  /^(config\.json|generation_config\.json|tokenizer\.json|tokenizer_config\.json|.*\.safetensors|model\.safetensors\.index\.json)$/;

/**
 * The files of model folder `dir` that decide what it computes, sorted: a checkpoint's training
 * state beside them (optimizer moments, fp32 masters) is left out.
 */
export function modelFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => MODEL_FILE.test(n) && n !== 'master.safetensors' && !n.includes('optimizer'))
    .sort()
    .map((n) => path.join(dir, n));
}

/**
 * contentHash with its digests kept in `cacheFile` (JSON, read when present and rewritten), for a
 * caller that has no record of its own to keep them in.
 */
export function cachedContentHash(files: readonly string[], base: string, cacheFile: string): string {
  let known: DigestRecord = {};
  try {
    known = JSON.parse(readFileSync(cacheFile, 'utf8')) as DigestRecord;
  } catch {
    // no cache yet, or a torn one: hash afresh
  }
  const h = contentHash(files, base, known);
  writeJsonAtomic(cacheFile, { ...known, ...h.files });
  return h.sha256;
}
