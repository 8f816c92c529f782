// Real `red serve` child processes on 127.0.0.1 with --port 0 (the port is read from the
// "listening on" line), for the serve and remote-rollout tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../helpers/paths.ts';

export const repo = fileURLToPath(new URL('../../', import.meta.url));
export const fixture = (name: string): string => fixturePath(name);

export interface Served {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
  /** What the server has written to stderr so far. */
  stderr(): string;
}

export function startServer(model: string, extra: string[] = []): Promise<Served> {
  const child = spawn(
    process.execPath,
    [path.join(repo, 'bin/red.js'), 'serve', '--model', model, '--port', '0', ...extra],
    { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '',
    err = '';
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve();
        return;
      }
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      void stop();
      reject(new Error(`red serve did not start within 90 s: ${err}`));
    }, 90_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], child, stop, stderr: () => err });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`red serve exited (${code}) before listening: ${err}`));
    });
  });
}

export function red(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [path.join(repo, 'bin/red.js'), ...args], { cwd: repo, encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export async function post(url: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
}
