// Where a run reports itself: DIR/metrics.jsonl (one JSON object per step, STYLE.md names) and
// the progress display (a cli-progress bar on a terminal, one plain line per step otherwise).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { SingleBar } from 'cli-progress';
import { writeFileAtomic, writeOrFail } from '../util/fs.ts';
import { TensorBoardWriter } from './tensorboard.ts';

/** One step's metrics by name (`reward/mean`, `timing_s/rollout`, ...). */
export type Metrics = Record<string, number>;

export class MetricsWriter {
  private readonly tensorboard: TensorBoardWriter | null;

  /**
   * Opens DIR/metrics.jsonl for appending. With `resumeStep`, lines of steps after it are dropped
   * first (they belong to a run that was killed after its last checkpoint and will be redone), so
   * a resumed run's file reads like an uninterrupted one's. Without it the file starts empty.
   * With `tensorboard`, every line is also a TensorBoard scalar event in DIR/tb/.
   */
  constructor(
    readonly file: string,
    resumeStep?: number,
    tensorboard = false,
  ) {
    this.tensorboard = tensorboard ? new TensorBoardWriter(path.join(path.dirname(file), 'tb'), resumeStep) : null;
    if (resumeStep === undefined || !existsSync(file)) {
      writeFileAtomic(file, '');
      return;
    }
    const kept = readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => {
        if (line.trim() === '') return false;
        try {
          const step = (JSON.parse(line) as { step?: unknown }).step;
          return typeof step === 'number' && step <= resumeStep;
        } catch {
          return false; // a line torn by a kill mid-write
        }
      });
    writeFileAtomic(file, kept.map((l) => l + '\n').join(''));
  }

  /** Appends one line; non-finite values are left out (JSON has no NaN). */
  write(metrics: Metrics): void {
    const clean: Metrics = {};
    for (const [k, v] of Object.entries(metrics)) if (Number.isFinite(v)) clean[k] = v;
    writeOrFail(
      this.file,
      () => appendFileSync(this.file, JSON.stringify(clean) + '\n'),
      'the newest checkpoint is intact; --resume continues from it',
    );
    if (typeof clean.step === 'number') this.tensorboard?.write(clean.step, clean);
  }
}

export type ProgressMode = 'auto' | 'bar' | 'plain' | 'none';

export interface Progress {
  /** Called once the first step of this process is about to run. */
  start(total: number, firstStep: number): void;
  update(step: number, metrics: Metrics): void;
  /** A line of text that must not tear the bar. */
  log(message: string): void;
  stop(): void;
}

const fmt = (v: number | undefined, digits: number): string =>
  v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);

function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '-';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** The progress display for `mode`; `auto` picks the bar only when `stream` is a terminal. */
export function createProgress(
  mode: ProgressMode,
  stream: NodeJS.WriteStream = process.stderr,
  label = 'train',
): Progress {
  const useBar = mode === 'bar' || (mode === 'auto' && stream.isTTY === true);
  if (mode === 'none') return { start() {}, update() {}, log() {}, stop() {} };
  if (useBar) return barProgress(stream, label);
  return plainProgress(stream, label);
}

function plainProgress(stream: NodeJS.WritableStream, label: string): Progress {
  let total = 0;
  let first = 0;
  let t0 = 0;
  return {
    start(t, firstStep) {
      total = t;
      first = firstStep;
      t0 = performance.now();
    },
    update(step, m) {
      const done = step - first + 1;
      const eta = ((performance.now() - t0) / 1000 / done) * (total - step);
      stream.write(
        `${label} step ${step}/${total} | reward ${fmt(m['reward/mean'], 3)} | acc ${fmt(m['acc/mean'], 3)} | ` +
          `w ${fmt(m['red/w'], 2)} | loss ${fmt(m['loss/total'], 4)} | ${fmt(m['throughput/tokens_per_s'], 0)} tok/s | eta ${formatEta(eta)}\n`,
      );
    },
    log(message) {
      stream.write(message + '\n');
    },
    stop() {},
  };
}

function barProgress(stream: NodeJS.WriteStream, label: string): Progress {
  const bar = new SingleBar({
    stream,
    format: `${label} {value}/{total} [{bar}] reward {reward} | acc {acc} | w {w} | {tps} tok/s | ETA {eta_formatted}`,
    barsize: 24,
    hideCursor: true,
    etaBuffer: 20,
  });
  let running = false;
  return {
    start(total, firstStep) {
      bar.start(total, firstStep - 1, { reward: '-', acc: '-', w: '-', tps: '-' });
      running = true;
    },
    update(step, m) {
      bar.update(step, {
        reward: fmt(m['reward/mean'], 3),
        acc: fmt(m['acc/mean'], 3),
        w: fmt(m['red/w'], 2),
        tps: fmt(m['throughput/tokens_per_s'], 0),
      });
    },
    log(message) {
      if (running) stream.write('\r\x1b[K');
      stream.write(message + '\n');
      if (running) bar.render();
    },
    stop() {
      if (running) bar.stop();
      running = false;
    },
  };
}
