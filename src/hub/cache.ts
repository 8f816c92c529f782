// The Hugging Face cache shared with Python's huggingface_hub: $HF_HUB_CACHE, else $HF_HOME/hub,
// else ~/.cache/huggingface/hub. Per repo, `models--org--name/` (or `datasets--…`) holds
// blobs/<etag> (file contents, named by the Hub's ETag: sha256 for LFS files, git blob sha1
// otherwise), refs/<revision> (the commit a branch or tag resolved to) and
// snapshots/<commit>/<path> (relative symlinks into blobs/, or copies where links are refused).
import {
  copyFileSync,
  existsSync,
  lstatSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { makeDir, writeFileAtomic } from '../util/fs.ts';
import type { HubRef, RepoType } from './id.ts';

export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HF_HOME) return path.join(env.HF_HOME, 'hub');
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** `models--org--name` / `datasets--org--name`, as huggingface_hub names the repo's folder. */
export function repoFolder(cacheDir: string, type: RepoType, repo: string): string {
  return path.join(cacheDir, `${type}s--${repo.replaceAll('/', '--')}`);
}

export const isCommitHash = (rev: string): boolean => /^[0-9a-f]{40}$/.test(rev);

/** The commit `ref.revision` resolved to when last fetched (a commit hash stands for itself). */
export function cachedCommit(cacheDir: string, ref: HubRef): string | null {
  if (isCommitHash(ref.revision)) return ref.revision;
  const file = path.join(repoFolder(cacheDir, ref.type, ref.repo), 'refs', ref.revision);
  if (!existsSync(file)) return null;
  const commit = readFileSync(file, 'utf8').trim();
  return isCommitHash(commit) ? commit : null;
}

/** Records that `ref.revision` resolved to `commit`; nothing is written when the cache says so already (a read-only cache then serves). */
export function writeRef(cacheDir: string, ref: HubRef, commit: string): void {
  if (isCommitHash(ref.revision) || cachedCommit(cacheDir, ref) === commit) return;
  const file = path.join(repoFolder(cacheDir, ref.type, ref.repo), 'refs', ref.revision);
  makeDir(path.dirname(file));
  writeFileAtomic(file, commit);
}

export function snapshotDir(cacheDir: string, ref: HubRef, commit: string): string {
  return path.join(repoFolder(cacheDir, ref.type, ref.repo), 'snapshots', commit);
}

export function blobPath(cacheDir: string, ref: HubRef, etag: string): string {
  return path.join(repoFolder(cacheDir, ref.type, ref.repo), 'blobs', etag);
}

/** Points snapshots/<commit>/<file> at its blob: a relative symlink, as huggingface_hub makes. */
export function linkSnapshotFile(blob: string, target: string): void {
  makeDir(path.dirname(target));
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  try {
    symlinkSync(path.relative(path.dirname(target), blob), tmp);
  } catch {
    copyFileSync(blob, tmp); // file systems without symlinks
  }
  renameSync(tmp, target);
}

/** Every file under a snapshot folder, as repo paths (`data/train.parquet`). */
export function snapshotFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel))) {
      const r = rel ? `${rel}/${name}` : name;
      if (lstatSync(path.join(dir, r)).isDirectory()) walk(r);
      else if (existsSync(path.join(dir, r))) out.push(r); // a dangling link is not a file
    }
  };
  if (existsSync(dir)) walk('');
  return out.sort();
}
