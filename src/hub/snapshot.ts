// Turns a Hub id into a local folder or file: the files a run needs are fetched into the shared
// Hugging Face cache (or found there: offline, or with the network gone) and the snapshot folder
// snapshots/<commit>/ is returned. Callers resolve ids here before they load anything.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fail, RedError, systemErrorReason } from '../util/errors.ts';
import { makeDir } from '../util/fs.ts';
import {
  blobPath,
  cachedCommit,
  hubCacheDir,
  linkSnapshotFile,
  snapshotDir,
  snapshotFiles,
  writeRef,
} from './cache.ts';
import {
  HubUnreachable,
  downloadBlob,
  fetchFileMeta,
  fetchRepoInfo,
  hubSettings,
  type FileMeta,
  type HubSettings,
} from './client.ts';
import { formatHubRef, hubRefOf, parseHubId, type HubRef } from './id.ts';
import { createDownloadProgress, type DownloadProgress } from './progress.ts';

export interface HubOptions {
  settings?: HubSettings;
  cacheDir?: string;
  /** Retries after a dropped connection within one call (default 3). */
  retries?: number;
  /** No progress display (default: $HF_HUB_DISABLE_PROGRESS_BARS). */
  quiet?: boolean;
}

export interface Snapshot {
  dir: string;
  commit: string;
  /** The fetched (or cached) files, as repo paths. */
  files: string[];
}

/** What a model run reads: config, tokenizer files, safetensors and their index (top level only). */
export const isModelFile = (f: string): boolean =>
  !f.includes('/') && (/\.(json|safetensors|jinja)$/.test(f) || f === 'merges.txt');

const DATA_FILE = /\.(parquet|jsonl|ndjson)$/i;

/** A dataset's data files under `sub`: the file itself, a folder, or a split (`train` → train-*.parquet). */
export function datasetFileFilter(sub: string): (f: string) => boolean {
  return (f) => {
    if (!DATA_FILE.test(f)) return false;
    if (sub === '' || f === sub || f.startsWith(`${sub}/`)) return true;
    if (sub.includes('/') || sub.includes('.')) return false;
    return f.split('/').some((part) => part === sub || part.startsWith(`${sub}-`) || part.startsWith(`${sub}.`));
  };
}

function fromCache(cacheDir: string, ref: HubRef, wanted: (f: string) => boolean): Snapshot | null {
  const commit = cachedCommit(cacheDir, ref);
  if (!commit) return null;
  const dir = snapshotDir(cacheDir, ref, commit);
  const files = snapshotFiles(dir).filter(wanted);
  if (files.length === 0 || (ref.type === 'model' && !files.includes('config.json'))) return null;
  return { dir, commit, files };
}

/** The snapshot of `ref` holding the files `wanted` accepts, fetched as needed. `what` starts messages. */
export async function snapshotDownload(
  ref: HubRef,
  wanted: (f: string) => boolean,
  what: string,
  o: HubOptions = {},
): Promise<Snapshot> {
  const s = o.settings ?? hubSettings();
  const cacheDir = o.cacheDir ?? hubCacheDir();
  const id = formatHubRef(ref);
  if (s.offline) {
    return (
      fromCache(cacheDir, ref, wanted) ??
      fail(
        `${what}: ${ref.type} ${id} is not in the Hugging Face cache ${cacheDir} and HF_HUB_OFFLINE is set; fetch it first where the Hub is reachable: red download ${id}${ref.type === 'dataset' ? ' --dataset' : ''}`,
      )
    );
  }
  let info;
  try {
    info = await fetchRepoInfo(s, ref, `${what}: ${ref.type} ${id}`);
  } catch (err) {
    if (!(err instanceof HubUnreachable)) throw err;
    const cached = fromCache(cacheDir, ref, wanted);
    if (cached) return cached;
    fail(`${err.message}, and ${id} is not in the Hugging Face cache ${cacheDir}`);
  }
  const files = info.files.filter(wanted);
  if (files.length === 0)
    fail(
      `${what}: ${ref.type} ${id} has no ${ref.type === 'model' ? 'config, tokenizer or safetensors files' : `parquet or jsonl files${ref.path ? ` under '${ref.path}'` : ''}`}`,
    );
  const dir = snapshotDir(cacheDir, ref, info.commit);
  await writingCache(cacheDir, async () => {
    writeRef(cacheDir, ref, info.commit);
    const missing: Array<{ file: string; meta: FileMeta }> = [];
    for (const file of files) {
      if (existsSync(path.join(dir, file))) continue;
      const meta = await fetchFileMeta(s, ref, info.commit, file, `${what}: ${ref.type} ${id}`);
      const blob = blobPath(cacheDir, ref, meta.etag);
      if (existsSync(blob)) linkSnapshotFile(blob, path.join(dir, file));
      else missing.push({ file, meta });
    }
    if (missing.length > 0) await fetchMissing(s, cacheDir, ref, dir, missing, `${what}: ${ref.type} ${id}`, o);
  });
  return { dir, commit: info.commit, files };
}

/**
 * Runs `write` on the cache; a system error there (a read-only or full cache) becomes one line
 * naming the cache, what the system said, and where to put one instead.
 */
async function writingCache(cacheDir: string, write: () => Promise<void>): Promise<void> {
  try {
    await write();
  } catch (err) {
    const reason = systemErrorReason(err, false);
    if (reason === null) throw err;
    const { path: at, code } = err as NodeJS.ErrnoException;
    const full = code === 'ENOSPC' || code === 'EDQUOT';
    fail(
      `cannot write to the Hugging Face cache ${cacheDir}${at ? ` (${at})` : ''}: ${reason}; ${full ? 'free some space, or ' : ''}set HF_HUB_CACHE to a folder you can write to`,
    );
  }
}

async function fetchMissing(
  s: HubSettings,
  cacheDir: string,
  ref: HubRef,
  dir: string,
  missing: Array<{ file: string; meta: FileMeta }>,
  what: string,
  o: HubOptions,
): Promise<void> {
  const total = missing.reduce((a, m) => a + m.meta.size, 0);
  const quiet = o.quiet ?? /^(1|true|yes|on)$/i.test(process.env.HF_HUB_DISABLE_PROGRESS_BARS ?? '');
  const progress: DownloadProgress = quiet
    ? { file() {}, update() {}, stop() {} }
    : await createDownloadProgress(formatHubRef(ref), total);
  try {
    for (const { file, meta } of missing) {
      progress.file(file, meta.size);
      const blob = blobPath(cacheDir, ref, meta.etag);
      makeDir(path.dirname(blob));
      await downloadBlob(s, meta, blob, `${what}: ${file}`, {
        retries: o.retries,
        onProgress: (n) => progress.update(n),
      });
      linkSnapshotFile(blob, path.join(dir, file));
    }
  } finally {
    progress.stop();
  }
}

/**
 * Runs `fetch` for `arg`, a string taken as a Hub id because no local path of that name exists:
 * any failure says both, since `arg` may as well be a mistyped path (`runs/bsae`).
 */
async function asHubId<T>(arg: string, local: string, fetch: () => Promise<T>): Promise<T> {
  try {
    return await fetch();
  } catch (err) {
    if (err instanceof RedError)
      err.message += ` (taken as a Hub id since no local ${local} ${arg} exists: ${path.resolve(arg)})`;
    throw err;
  }
}

/** A model folder: `arg` itself when it exists or is no Hub id, else the id's cached snapshot. */
export async function resolveModelPath(arg: string, what: string, o: HubOptions = {}): Promise<string> {
  const ref = hubRefOf(arg, 'model');
  if (!ref) return arg;
  return asHubId(arg, 'folder', async () => (await snapshotDownload(ref, isModelFile, what, o)).dir);
}

/** A dataset file: `arg` itself when it exists or is no Hub id, else the one data file the id names. */
export async function resolveDataFile(arg: string, what: string, o: HubOptions = {}): Promise<string> {
  const ref = hubRefOf(arg, 'dataset');
  if (!ref) return arg;
  const snap = await asHubId(arg, 'file or folder', () => snapshotDownload(ref, datasetFileFilter(ref.path), what, o));
  let files = snap.files;
  // A whole dataset with several splits: its train split is the one to train on.
  if (files.length > 1 && ref.path === '') files = files.filter(datasetFileFilter('train'));
  if (files.length !== 1) {
    const shown = snap.files.slice(0, 4).join(', ') + (snap.files.length > 4 ? ', …' : '');
    fail(
      `${what}: dataset ${formatHubRef(ref)} has ${snap.files.length} data files (${shown}); name one, e.g. ${formatHubRef({ ...ref, path: snap.files[0] })}`,
    );
  }
  return path.join(snap.dir, files[0]);
}

/** A folder of data files (`red eval --data`): `arg` itself, or the id's dataset snapshot. */
export async function resolveDataDir(arg: string, what: string, o: HubOptions = {}): Promise<string> {
  const ref = hubRefOf(arg, 'dataset');
  if (!ref) return arg;
  const snap = await asHubId(arg, 'folder', () => snapshotDownload(ref, datasetFileFilter(ref.path), what, o));
  return ref.path && !snap.files.some((f) => f.startsWith(`${ref.path}/`)) ? snap.dir : path.join(snap.dir, ref.path);
}

/** `red download ID`: the whole model or dataset (its data files), whatever exists locally. */
export async function downloadById(
  id: string,
  type: 'model' | 'dataset',
  revision: string | undefined,
  o: HubOptions = {},
): Promise<Snapshot> {
  const ref = parseHubId(id, type);
  if (!ref) fail(`'${id}' is not a Hub ${type} id (org/name${type === 'dataset' ? '[/path]' : ''})`);
  if (revision !== undefined) ref.revision = revision;
  return snapshotDownload(ref, type === 'model' ? isModelFile : datasetFileFilter(ref.path), 'download', o);
}
