// The few Hub HTTP calls red needs, on node's fetch: a repo's commit and file list
// (GET /api/{models|datasets}/{repo}/revision/{rev}), a file's metadata (HEAD …/resolve/{commit}/{file}
// without following the LFS redirect: X-Repo-Commit, X-Linked-Etag or ETag, X-Linked-Size) and its
// bytes (GET, resumed with Range from a `.incomplete` file, checked against the ETag, then renamed).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { RedError, fail } from '../util/errors.ts';
import { waitForFileLock } from '../util/lock.ts';
import type { HubRef } from './id.ts';

export interface HubSettings {
  /** `$HF_ENDPOINT`, else https://huggingface.co (no trailing slash). */
  endpoint: string;
  token?: string;
  /** `$HF_HUB_OFFLINE` is 1/true/yes/on: no request is made. */
  offline: boolean;
}

export function hubSettings(env: NodeJS.ProcessEnv = process.env): HubSettings {
  const endpoint = (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
  const tokenFile =
    env.HF_TOKEN_PATH || path.join(env.HF_HOME || path.join(homedir(), '.cache', 'huggingface'), 'token');
  const token =
    env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf8').trim() : '');
  return { endpoint, ...(token ? { token } : {}), offline: /^(1|true|yes|on)$/i.test(env.HF_HUB_OFFLINE ?? '') };
}

/** The Hub could not be reached at all (as opposed to answering with an error). */
export class HubUnreachable extends RedError {
  override name = 'HubUnreachable';
}

export interface RepoInfo {
  commit: string;
  files: string[];
}

export interface FileMeta {
  /** sha256 of the content for LFS files, the git blob sha1 otherwise: the blob's name. */
  etag: string;
  size: number;
  /** Where the bytes are (the CDN for LFS files). */
  url: string;
}

const repoUrlPart = (ref: HubRef) => `${ref.type === 'dataset' ? 'datasets/' : ''}${ref.repo}`;
const encodePath = (file: string) => file.split('/').map(encodeURIComponent).join('/');

/** A request to the Hub or a redirect target; the token goes only to the Hub's own origin. */
async function request(
  s: HubSettings,
  url: string,
  init: { method: string; headers?: Record<string, string> },
  what: string,
): Promise<Response> {
  const sameOrigin = new URL(url).origin === new URL(s.endpoint).origin;
  const headers: Record<string, string> = { 'user-agent': 'red', ...(init.headers ?? {}) };
  if (s.token && sameOrigin) headers.authorization = `Bearer ${s.token}`;
  try {
    return await fetch(url, { method: init.method, headers, redirect: 'manual' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new HubUnreachable(
      `${what}: cannot reach ${new URL(url).origin} (${cause?.code ?? cause?.message ?? (err as Error).message})`,
    );
  }
}

/** One line for an HTTP error from the Hub, using its X-Error-Code where it gives one. */
async function httpError(s: HubSettings, res: Response, what: string): Promise<never> {
  const code = res.headers.get('x-error-code');
  let detail = res.headers.get('x-error-message') ?? '';
  if (!detail) detail = (await res.text().catch(() => '')).replace(/\s+/g, ' ').slice(0, 200);
  if (code === 'RepoNotFound')
    fail(`${what}: no such repository on ${s.endpoint}${s.token ? '' : ' (or it is private or gated: set HF_TOKEN)'}`);
  if (code === 'RevisionNotFound') fail(`${what}: no such revision on ${s.endpoint}`);
  if (code === 'EntryNotFound') fail(`${what}: no such file in the repository`);
  if (code === 'GatedRepo')
    fail(
      `${what}: gated repository; accept its conditions on ${s.endpoint} and set HF_TOKEN to a token of that account`,
    );
  if (res.status === 401)
    fail(
      `${what}: 401 Unauthorized from ${s.endpoint}${s.token ? ': the token in HF_TOKEN was refused; check it' : ': set HF_TOKEN'}${detail ? ` (${detail})` : ''}`,
    );
  if (res.status === 404) fail(`${what}: not found on ${s.endpoint} (404)`);
  fail(`${what}: HTTP ${res.status} from ${s.endpoint}${detail ? ` (${detail})` : ''}`);
}

export async function fetchRepoInfo(s: HubSettings, ref: HubRef, what: string): Promise<RepoInfo> {
  const url = `${s.endpoint}/api/${ref.type}s/${ref.repo}/revision/${encodeURIComponent(ref.revision)}`;
  const res = await request(s, url, { method: 'GET' }, what);
  if (!res.ok) await httpError(s, res, what);
  const body = (await res.json()) as { sha?: unknown; siblings?: Array<{ rfilename?: unknown }> };
  if (typeof body.sha !== 'string' || !Array.isArray(body.siblings))
    fail(`${what}: unexpected answer from ${url} (no sha or siblings)`);
  return {
    commit: body.sha,
    files: body.siblings.map((f) => f.rfilename).filter((f): f is string => typeof f === 'string'),
  };
}

export async function fetchFileMeta(
  s: HubSettings,
  ref: HubRef,
  commit: string,
  file: string,
  what: string,
): Promise<FileMeta> {
  let url = `${s.endpoint}/${repoUrlPart(ref)}/resolve/${commit}/${encodePath(file)}`;
  for (let hop = 0; hop < 5; hop++) {
    const res = await request(s, url, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } }, what);
    const location = res.headers.get('location');
    const linked = res.headers.get('x-linked-etag');
    // A renamed repo redirects to its new name (no X-Linked-Etag): follow it; an LFS file's redirect
    // carries the metadata, and its target is the CDN.
    if (res.status >= 300 && res.status < 400 && location && !linked) {
      url = new URL(location, url).href;
      continue;
    }
    if (!(res.ok || (res.status >= 300 && res.status < 400))) await httpError(s, res, `${what}: ${file}`);
    const etag = (linked ?? res.headers.get('etag') ?? '').replace(/^W\//, '').replaceAll('"', '');
    const size = Number(res.headers.get('x-linked-size') ?? res.headers.get('content-length'));
    if (!etag || !Number.isFinite(size)) fail(`${what}: ${file}: the Hub's answer has no ETag or size`);
    return { etag, size, url: location ? new URL(location, url).href : url };
  }
  return fail(`${what}: ${file}: too many redirects`);
}

/** The digest the Hub's ETag promises: sha256 of the bytes (LFS), or git's blob sha1. */
async function contentMatches(file: string, etag: string, size: number): Promise<boolean> {
  const lfs = /^[0-9a-f]{64}$/.test(etag);
  if (!lfs && !/^[0-9a-f]{40}$/.test(etag)) return true; // an ETag that is no digest: the size check stands alone
  const h = createHash(lfs ? 'sha256' : 'sha1');
  if (!lfs) h.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex') === etag;
}

export interface DownloadOptions {
  /** Retries after a dropped connection, each resuming where the last stopped. */
  retries?: number;
  /** Bytes of this file on disk so far (a resumed file starts above 0). */
  onProgress?: (done: number) => void;
}

/**
 * Fetches `meta` into `blob` through `blob.incomplete`: an existing partial file is resumed with
 * a Range request; the finished file is checked against the ETag and only then renamed into place.
 */
export async function downloadBlob(
  s: HubSettings,
  meta: FileMeta,
  blob: string,
  what: string,
  o: DownloadOptions = {},
): Promise<void> {
  // One writer per blob, as huggingface_hub's CACHE/.locks/<repo>/<etag>.lock: a second process
  // fetching the same file waits, then finds it done.
  const repoDir = path.dirname(path.dirname(blob));
  const lock = await waitForFileLock(
    path.join(path.dirname(repoDir), '.locks', path.basename(repoDir), `${path.basename(blob)}.lock`),
    'download',
  );
  try {
    if (!existsSync(blob)) await downloadUnlocked(s, meta, blob, what, o);
  } finally {
    lock.release();
  }
}

async function downloadUnlocked(
  s: HubSettings,
  meta: FileMeta,
  blob: string,
  what: string,
  o: DownloadOptions,
): Promise<void> {
  const partial = `${blob}.incomplete`;
  const retries = o.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      await fetchInto(s, meta, partial, what, o.onProgress);
      break;
    } catch (err) {
      if (!(err instanceof HubUnreachable) || attempt >= retries) {
        if (err instanceof HubUnreachable)
          throw new HubUnreachable(`${err.message}; ${existsSync(partial) ? 'run again to resume' : 'run again'}`);
        throw err;
      }
    }
  }
  const got = statSync(partial).size;
  if (got !== meta.size || !(await contentMatches(partial, meta.etag, meta.size))) {
    rmSync(partial, { force: true });
    fail(
      `${what}: downloaded ${got} bytes whose checksum does not match the Hub's ${meta.etag} (${meta.size} bytes); removed it, run again`,
    );
  }
  renameSync(partial, blob);
}

async function fetchInto(
  s: HubSettings,
  meta: FileMeta,
  partial: string,
  what: string,
  onProgress?: (done: number) => void,
): Promise<void> {
  let start = existsSync(partial) ? statSync(partial).size : 0;
  if (start > meta.size) {
    rmSync(partial);
    start = 0;
  }
  if (start === meta.size) return;
  let url = meta.url;
  let res: Response;
  for (let hop = 0; ; hop++) {
    res = await request(
      s,
      url,
      { method: 'GET', headers: { 'accept-encoding': 'identity', ...(start > 0 ? { range: `bytes=${start}-` } : {}) } },
      what,
    );
    const location = res.headers.get('location');
    if (!(res.status >= 300 && res.status < 400 && location)) break;
    if (hop >= 5) fail(`${what}: too many redirects`);
    url = new URL(location, url).href;
  }
  if (res.status !== 200 && res.status !== 206) await httpError(s, res, what);
  const resumed = res.status === 206;
  if (resumed && !(res.headers.get('content-range') ?? '').startsWith(`bytes ${start}-`))
    fail(`${what}: the server answered a resume from byte ${start} with ${res.headers.get('content-range')}`);
  let done = resumed ? start : 0;
  onProgress?.(done);
  const out = createWriteStream(partial, { flags: resumed ? 'a' : 'w' });
  const closed = new Promise<void>((resolve, reject) => out.on('close', resolve).on('error', reject));
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
      done += chunk.length;
      onProgress?.(done);
    }
  } catch (err) {
    throw new HubUnreachable(`${what}: the connection dropped (${(err as Error).message})`);
  } finally {
    out.end();
    await closed;
  }
}
