// A Hugging Face Hub on 127.0.0.1 for the tests, answering as the real one does for what red uses:
// GET /api/{models|datasets}/{repo}/revision/{rev} (sha, siblings); HEAD/GET {repo}/resolve/{rev}/{file}
// with X-Repo-Commit and ETag (git blob sha1) for small files, or a 302 to a CDN path with
// X-Linked-Etag (sha256) and X-Linked-Size for LFS files; the CDN honours Range. Unknown repos get
// 401 + X-Error-Code: RepoNotFound (404 with a token), a wrong token 401.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  type: 'model' | 'dataset';
  repo: string;
  commit: string;
  files: Record<string, Buffer>;
  /** Files stored with LFS (served through the CDN redirect). */
  lfs: string[];
}

export interface Logged {
  method: string;
  url: string;
  range?: string;
  auth?: string;
}

export class FakeHub {
  readonly log: Logged[] = [];
  /** When set, only this token is accepted (others get 401). */
  token?: string;
  /** CDN downloads to cut after half their bytes (the connection is destroyed). */
  cutDownloads = 0;
  /** Serve these bytes instead of the real ones for a CDN object (a corrupt mirror). */
  corrupt = new Map<string, Buffer>();
  /** Origin of the CDN in LFS redirects ('' = this server's own); another host name makes it cross-origin. */
  cdnOrigin = '';
  private server!: Server;
  endpoint = '';

  constructor(readonly repos: FakeRepo[]) {}

  async start(): Promise<string> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.endpoint = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private findRepo(type: string, repo: string): FakeRepo | undefined {
    return this.repos.find((r) => r.type === type && r.repo === repo);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.endpoint);
    const auth = req.headers.authorization;
    this.log.push({
      method: req.method ?? '',
      url: url.pathname,
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(auth ? { auth } : {}),
    });
    if (url.pathname.startsWith('/cdn/')) return this.cdn(url.pathname.slice(5), req, res);
    if (auth !== undefined && this.token !== undefined && auth !== `Bearer ${this.token}`) {
      res
        .writeHead(401, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: 'Invalid credentials in Authorization header' }));
      return;
    }
    const parts = url.pathname
      .split('/')
      .filter((p) => p !== '')
      .map(decodeURIComponent);
    if (parts[0] === 'api') {
      // /api/{models|datasets}/{org}/{name}/revision/{rev}
      const repo = this.findRepo(parts[1].replace(/s$/, ''), `${parts[2]}/${parts[3]}`);
      if (!repo || parts[4] !== 'revision') return this.notFound(res, auth);
      if (parts[5] !== 'main' && parts[5] !== repo.commit) return this.notFound(res, auth, 'RevisionNotFound');
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          id: repo.repo,
          sha: repo.commit,
          siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
        }),
      );
      return;
    }
    const type = parts[0] === 'datasets' ? 'dataset' : 'model';
    const p = type === 'dataset' ? parts.slice(1) : parts;
    const repo = this.findRepo(type, `${p[0]}/${p[1]}`);
    if (!repo || p[2] !== 'resolve') return this.notFound(res, auth);
    if (p[3] !== 'main' && p[3] !== repo.commit) return this.notFound(res, auth, 'RevisionNotFound');
    const file = p.slice(4).join('/');
    const body = repo.files[file];
    if (!body) return this.notFound(res, auth, 'EntryNotFound');
    if (repo.lfs.includes(file)) {
      const sha256 = createHash('sha256').update(body).digest('hex');
      res
        .writeHead(302, {
          location: `${this.cdnOrigin}/cdn/${sha256}?expires=1`,
          'x-repo-commit': repo.commit,
          'x-linked-etag': `"${sha256}"`,
          'x-linked-size': String(body.length),
        })
        .end();
      return;
    }
    const etag = createHash('sha1').update(`blob ${body.length}\0`).update(body).digest('hex');
    res.writeHead(200, { 'x-repo-commit': repo.commit, etag: `"${etag}"`, 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private notFound(res: ServerResponse, auth: string | undefined, code = 'RepoNotFound'): void {
    // The Hub answers 401 for a repo it cannot show an anonymous caller (it may be private).
    const status = code === 'RepoNotFound' && auth === undefined ? 401 : 404;
    res
      .writeHead(status, {
        'x-error-code': code,
        'x-error-message': code === 'RepoNotFound' ? 'Repository not found' : 'Not found',
      })
      .end();
  }

  private cdn(sha256: string, req: IncomingMessage, res: ServerResponse): void {
    const body = this.corrupt.get(sha256) ?? this.allBlobs().get(sha256);
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) start = Number(m[1]);
    const part = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'content-length': String(part.length),
      ...(m ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    if (this.cutDownloads > 0 && part.length > 1) {
      this.cutDownloads--;
      res.write(part.subarray(0, part.length >> 1), () => setTimeout(() => res.destroy(), 20));
      return;
    }
    res.end(part);
  }

  private allBlobs(): Map<string, Buffer> {
    const out = new Map<string, Buffer>();
    for (const r of this.repos)
      for (const f of r.lfs) out.set(createHash('sha256').update(r.files[f]).digest('hex'), r.files[f]);
    return out;
  }
}
