// A pool of CAS worker threads with a hard timeout per comparison: a worker that runs past its
// budget is terminated and replaced, and the comparison reports 'timeout'. Workers start lazily,
// keep the process alive only while they hold or await work (unref when idle), and close() ends them.
import { Worker } from 'node:worker_threads';
import type { CasReply, CasRequest } from './casWorker.ts';
import type { LeafMode } from './compare.ts';

export type LeafStatus = 'equal' | 'unequal' | 'timeout' | 'error';
export interface LeafResult {
  status: LeafStatus;
  reason?: string;
  /** Time the comparison held a worker (queueing and worker start-up excluded). */
  elapsedMs: number;
  /** The prediction's variables were renamed to the gold's (a non-strict comparison). */
  renamed?: boolean;
}

interface Job {
  req: CasRequest;
  budgetMs: number;
  resolve: (r: LeafResult) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  timer: NodeJS.Timeout | null;
  startedAt: number;
}

const WORKER_URL = new URL('./casWorker.mjs', import.meta.url);

// Workers that die before they are ready, in a row, before the pool stops retrying and fails the
// waiting comparisons (a worker that cannot start must not respawn forever).
const MAX_START_FAILURES = 3;

/** The parent's node flags, less those a worker started from a file rejects (`--input-type`,
 * which `node -e` scripts carry). */
function workerExecArgv(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--input-type') i++;
    else if (!args[i].startsWith('--input-type=')) out.push(args[i]);
  }
  return out;
}

export class CasPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly readyWaiters: Array<() => void> = [];
  private nextId = 1;
  private closed = false;
  private startFailures = 0;

  /** `workerUrl` is for tests (a worker that cannot start). */
  constructor(
    readonly size: number,
    private readonly workerUrl: URL = WORKER_URL,
  ) {}

  /** Compares two leaf LaTeX strings in a worker, giving up after budgetMs of worker time; with
   * `rename`, the prediction's variables may be renamed to the gold's. */
  compare(gold: string, pred: string, budgetMs: number, mode: LeafMode = 'equal', rename = false): Promise<LeafResult> {
    if (this.closed) return Promise.resolve({ status: 'error', reason: 'error: verifier closed', elapsedMs: 0 });
    return new Promise((resolve) => {
      this.queue.push({ req: { id: this.nextId++, gold, pred, mode, rename }, budgetMs, resolve });
      this.dispatch();
    });
  }

  /** Starts every worker and resolves once all of them can take work. */
  async warm(): Promise<void> {
    while (this.slots.length < this.size) this.spawn();
    while (!this.closed && this.slots.some((s) => !s.ready)) {
      await new Promise<void>((r) => {
        this.readyWaiters.push(r);
        this.updateRefs();
      });
    }
    this.updateRefs();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.queue.splice(0))
      job.resolve({ status: 'error', reason: 'error: verifier closed', elapsedMs: 0 });
    const ends: Array<Promise<number>> = [];
    for (const slot of this.slots.splice(0)) {
      if (slot.timer) clearTimeout(slot.timer);
      slot.job?.resolve({ status: 'error', reason: 'error: verifier closed', elapsedMs: 0 });
      slot.worker.removeAllListeners();
      ends.push(slot.worker.terminate());
    }
    for (const w of this.readyWaiters.splice(0)) w();
    await Promise.all(ends);
  }

  private spawn(): Slot {
    const worker = new Worker(this.workerUrl, { execArgv: workerExecArgv() });
    const slot: Slot = { worker, ready: false, job: null, timer: null, startedAt: 0 };
    worker.on('message', (msg: CasReply) => this.onMessage(slot, msg));
    worker.on('error', (err: Error) =>
      this.replace(slot, { status: 'error', reason: `error: worker failed: ${err.message}` }),
    );
    worker.on('exit', (code) => this.replace(slot, { status: 'error', reason: `error: worker exited (${code})` }));
    this.slots.push(slot);
    this.updateRefs();
    return slot;
  }

  private onMessage(slot: Slot, msg: CasReply): void {
    if (msg.type === 'ready') {
      slot.ready = true;
      this.startFailures = 0;
      if (this.slots.every((s) => s.ready)) for (const w of this.readyWaiters.splice(0)) w();
    } else {
      const job = slot.job;
      if (!job || job.req.id !== msg.id) return;
      if (slot.timer) clearTimeout(slot.timer);
      slot.timer = null;
      slot.job = null;
      job.resolve({
        status: msg.equal ? 'equal' : 'unequal',
        reason: msg.reason,
        elapsedMs: performance.now() - slot.startedAt,
        ...(msg.renamed && { renamed: true }),
      });
    }
    this.dispatch();
  }

  /** Ends a worker that hung or died, settles its job with `result`, and starts a fresh one. */
  private replace(slot: Slot, result: Omit<LeafResult, 'elapsedMs'>): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    if (slot.timer) clearTimeout(slot.timer);
    slot.worker.removeAllListeners();
    // A worker stuck in synchronous code is interrupted by terminate(); nothing waits on it.
    void slot.worker.terminate().catch(() => undefined);
    const job = slot.job;
    slot.job = null;
    job?.resolve({ ...result, elapsedMs: performance.now() - slot.startedAt });
    if (this.closed) return;
    if (!slot.ready && ++this.startFailures >= MAX_START_FAILURES) {
      // Give up for now: fail what waits; the next compare() tries a fresh worker again.
      this.startFailures = 0;
      const reason = `error: CAS worker cannot start (${result.reason ?? 'unknown'})`;
      for (const waiting of this.queue.splice(0)) waiting.resolve({ status: 'error', reason, elapsedMs: 0 });
      for (const w of this.readyWaiters.splice(0)) w();
      this.updateRefs();
      return;
    }
    // Start the replacement now, so that it is ready by the time more work comes.
    this.spawn();
    this.dispatch();
  }

  private dispatch(): void {
    if (this.closed) return;
    for (const slot of this.slots) {
      if (this.queue.length === 0) break;
      if (!slot.ready || slot.job) continue;
      const job = this.queue.shift()!;
      slot.job = job;
      slot.startedAt = performance.now();
      slot.timer = setTimeout(
        () => this.replace(slot, { status: 'timeout', reason: 'timeout' }),
        Math.max(1, job.budgetMs),
      );
      slot.worker.postMessage(job.req);
    }
    // Grow while work waits and no starting worker will take it.
    const starting = this.slots.filter((s) => !s.ready).length;
    if (this.queue.length > starting && this.slots.length < this.size) {
      for (let n = Math.min(this.queue.length - starting, this.size - this.slots.length); n > 0; n--) this.spawn();
    }
    this.updateRefs();
  }

  /** A worker keeps the process alive only while some comparison is running or waiting. */
  private updateRefs(): void {
    const waiting = this.queue.length > 0 || this.readyWaiters.length > 0;
    for (const s of this.slots) {
      if (s.job || (waiting && !s.ready)) s.worker.ref();
      else s.worker.unref();
    }
  }
}
