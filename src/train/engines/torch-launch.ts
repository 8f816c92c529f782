// Finding the interpreter for the PyTorch engine and starting / ending its processes. The
// default interpreter is the first `python3` on PATH that imports torch ≥ 1.13 (each is probed,
// as a machine whose first python3 lacks torch needs). Rank 0 starts in a session of its own, so a
// terminal's Ctrl-C reaches red alone, and red ends the whole group (every rank) however it exits.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail } from '../../util/errors.ts';
import { atExit } from '../../util/exit.ts';

/** python/ of this package: red_engine lives there. */
export const PYTHON_PACKAGE_DIR = fileURLToPath(new URL('../../../python/', import.meta.url));

export const INSTALL_HINT =
  'apt-get install -y python3-torch libopenblas0-pthread, or pip install torch, or set engine.python';

const PROBE = `
import sys
try:
    import torch
except Exception as e:
    print("noimport", type(e).__name__ + ": " + str(e)); sys.exit(0)
v = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2] if x.isdigit())
print("ok" if v >= (1, 13) else "old", torch.__version__)
`;

type Probe = { ok: true; version: string } | { ok: false; why: string };
const probes = new Map<string, Probe>();

/** Whether `python` runs and imports a torch the engine can use (cached per interpreter). */
export function probePython(python: string): Probe {
  const known = probes.get(python);
  if (known) return known;
  const r = spawnSync(python, ['-c', PROBE], { encoding: 'utf8', timeout: 120_000 });
  const [kind, ...rest] = (r.stdout ?? '').trim().split('\n').pop()?.split(' ') ?? [];
  const detail = rest.join(' ');
  let probe: Probe;
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code ?? r.error.message;
    probe = { ok: false, why: `cannot be run (${code === 'ETIMEDOUT' ? 'no answer in 120 s' : code})` };
  } else if (kind === 'ok') probe = { ok: true, version: detail };
  else if (kind === 'old') probe = { ok: false, why: `has torch ${detail}; the engine needs torch >= 1.13` };
  else if (kind === 'noimport') probe = { ok: false, why: `cannot import torch (${detail})` };
  else probe = { ok: false, why: `did not answer as a Python 3 does (exit status ${r.status})` };
  probes.set(python, probe);
  return probe;
}

/** Every `python3` on PATH, in order, each file once. */
function pythonsOnPath(): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir || '.', 'python3');
    try {
      accessSync(file, constants.X_OK);
      if (!statSync(file).isFile()) continue;
      const real = realpathSync(file);
      if (seen.has(real)) continue;
      seen.add(real);
      out.push(file);
    } catch {
      /* not there, or not runnable */
    }
  }
  return out;
}

/** engine.python, or the first python3 on PATH that imports torch; fails with one line otherwise. */
export function resolvePython(setting: string | null): string {
  if (setting !== null) {
    const probe = probePython(setting);
    if (!probe.ok)
      fail(
        `engine.python: ${setting} ${probe.why}; ${INSTALL_HINT.replace(', or set engine.python', '')} for it, or set engine.python to one that imports torch`,
      );
    return setting;
  }
  const tried: string[] = [];
  for (const python of pythonsOnPath()) {
    if (probePython(python).ok) return python;
    tried.push(python);
  }
  fail(
    `engine.python: no python3 on PATH imports torch >= 1.13${tried.length ? ` (tried ${tried.join(', ')})` : ''}; ${INSTALL_HINT}`,
  );
}

/** The first python3 that imports torch, or null (tests and benches that skip without one). */
export function findTorchPython(): string | null {
  try {
    return resolvePython(null);
  } catch {
    return null;
  }
}

/** Rank 0's process: its stderr's last lines kept for the one-line error when it ends. */
export class EngineProcess {
  readonly child: ChildProcess;
  private tail: string[] = [];
  private readonly killAtExit: (opts?: { run: boolean }) => void;
  exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(python: string, socketPath: string, onExit: () => void) {
    const pythonPath = [PYTHON_PACKAGE_DIR, process.env.PYTHONPATH].filter((p) => p).join(path.delimiter);
    if (!existsSync(path.join(PYTHON_PACKAGE_DIR, 'red_engine')))
      fail(`${PYTHON_PACKAGE_DIR}: red_engine is missing (a broken install of red)`);
    this.child = spawn(python, ['-m', 'red_engine', '--socket', socketPath], {
      detached: true, // a process group of its own: Ctrl-C goes to red, which ends the group
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, PYTHONPATH: pythonPath, PYTHONUNBUFFERED: '1', RED_ENGINE_PARENT: String(process.pid) },
    });
    this.child.unref();
    for (const stream of [this.child.stdout, this.child.stderr]) {
      (stream as unknown as { unref?: () => void } | null)?.unref?.(); // pipes are sockets: let red exit
      stream?.setEncoding('utf8');
      stream?.on('data', (text: string) => this.keep(text));
    }
    this.killAtExit = atExit(() => this.kill('SIGKILL'));
    this.child.on('exit', (code, signal) => {
      this.exited = { code, signal };
      this.killAtExit({ run: false });
      this.kill('SIGKILL'); // ranks it started, should any outlive it
      onExit();
    });
    this.child.on('error', () => onExit());
  }

  private keep(text: string): void {
    this.tail.push(...text.split('\n').filter((l) => l.trim()));
    if (this.tail.length > 50) this.tail = this.tail.slice(-50);
  }

  /** What ended it, as one line: its own marked error line, else its last line, else how it ended. */
  endLine(): string {
    const marked = [...this.tail].reverse().find((l) => l.startsWith('red-engine-error: '));
    if (marked) return marked.slice('red-engine-error: '.length);
    const how = this.exited
      ? this.exited.signal
        ? `killed by ${this.exited.signal}`
        : `exit status ${this.exited.code}`
      : 'did not start';
    const last = this.tail.at(-1);
    const oom = this.exited?.signal === 'SIGKILL' ? ' (out of memory? lower optim.microBatchTokens)' : '';
    return `rank 0 ended (${how})${oom}${last ? `: ${last.trim()}` : ''}`;
  }

  /** Signals every process of the engine's group (rank 0 and the ranks it started). */
  kill(signal: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** Ends the group: SIGTERM, then SIGKILL after graceMs if rank 0 is still there. */
  async stop(graceMs: number): Promise<void> {
    if (!this.exited) {
      const ended = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      this.kill('SIGTERM');
      const timer = setTimeout(() => this.kill('SIGKILL'), graceMs);
      await ended;
      clearTimeout(timer);
    }
    this.kill('SIGKILL');
    this.killAtExit({ run: false });
  }
}
