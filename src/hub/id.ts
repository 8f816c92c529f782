// Hugging Face Hub ids where a local path is accepted: `org/name`, `org/name@revision`, and for
// datasets `org/name[@revision]/path/in/repo` (a file, a folder or a split name). A string is taken
// as an id only when no local file or folder of that name exists and it has the id's shape.
import { existsSync } from 'node:fs';

export type RepoType = 'model' | 'dataset';

export interface HubRef {
  type: RepoType;
  /** `org/name`. */
  repo: string;
  /** Branch, tag or commit; `main` when the id names none. */
  revision: string;
  /** A file, folder or split inside the repo (datasets), or '' for the whole repo. */
  path: string;
}

// Hub names: letters, digits, '-', '_', '.'; no leading '.' or '-', no '--' or '..' (the Hub's rule).
const NAME = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?';
const ID = new RegExp(`^(${NAME})/(${NAME})(?:@([^/@\\s]+))?(?:/(.+))?$`);
// A two-part string that ends like a file (`data/train.jsonl`) is a path, not a repo.
const FILE_LIKE = /\.(jsonl|ndjson|json|parquet|safetensors|ya?ml|txt|csv)$/i;

/** Parses `s` as a Hub id of `type`; null when it does not have an id's shape. */
export function parseHubId(s: string, type: RepoType): HubRef | null {
  const m = ID.exec(s);
  if (!m) return null;
  const [, org, name, revision, rest] = m;
  if (`${org}/${name}`.includes('--') || `${org}/${name}`.includes('..')) return null;
  if (rest === undefined && revision === undefined && FILE_LIKE.test(name)) return null;
  if (rest !== undefined && type === 'model') return null; // a model id names the whole repo
  if (rest !== undefined && rest.split('/').some((p) => p === '' || p === '.' || p === '..')) return null;
  return { type, repo: `${org}/${name}`, revision: revision ?? 'main', path: rest ?? '' };
}

/** The Hub id `s` stands for: null when `s` exists locally or is not shaped like an id. */
export function hubRefOf(s: string, type: RepoType): HubRef | null {
  if (existsSync(s)) return null;
  return parseHubId(s, type);
}

/** `org/name@rev/path` back as the user would write it (for messages). */
export function formatHubRef(ref: HubRef): string {
  return `${ref.repo}${ref.revision === 'main' ? '' : `@${ref.revision}`}${ref.path ? `/${ref.path}` : ''}`;
}
