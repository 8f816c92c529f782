// samples.jsonl: one line per finished problem (its samples, extracted answers, verdicts and
// lengths), appended as complete lines so that an interrupted evaluation resumes: on reopening,
// problems already present are skipped and a trailing partial line (a crash mid-write) is cut off.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, truncateSync, writeSync } from 'node:fs';
import { fail } from '../util/errors.ts';
import type { EvalProblem } from './benchmarks.ts';

export interface SampleRecord {
  text: string;
  /** The verifier's extracted answer; null when none was found. */
  extracted: string | null;
  correct: boolean;
  /** Response length in tokens. */
  tokens: number;
  finish: string;
  /** The verifier's reason for a wrong verdict, when it gives one. */
  reason?: string;
}

/** A problem as prompted (EvalProblem, whose gold was readable), with its samples and verdicts. */
export interface ProblemRecord extends Omit<EvalProblem, 'gold' | 'goldError'> {
  gold: string | string[];
  /** Samples drawn (= samples.length). */
  n: number;
  /** Samples judged correct. */
  correct: number;
  samples: SampleRecord[];
}

export function problemKey(benchmark: string, index: number): string {
  return `${benchmark}#${index}`;
}

function checkRecord(file: string, line: number, v: unknown): ProblemRecord {
  const r = v as Partial<ProblemRecord> | null;
  const ok =
    r !== null &&
    typeof r === 'object' &&
    typeof r.benchmark === 'string' &&
    Number.isInteger(r.index) &&
    typeof r.problem === 'string' &&
    Array.isArray(r.samples) &&
    r.n === r.samples.length &&
    Number.isInteger(r.correct) &&
    r.samples.every((s) => typeof s?.text === 'string' && typeof s.correct === 'boolean' && Number.isFinite(s.tokens));
  if (!ok)
    fail(
      `${file}: line ${line}: not a problem record (expected benchmark, index, problem, n, correct, samples[{text, correct, tokens}])`,
    );
  return r as ProblemRecord;
}

/** Appends problem records to samples.jsonl; opening it reads (and repairs) what is there. */
export class SamplesLog {
  private constructor(
    readonly file: string,
    /** Records already in the file, by problemKey. */
    readonly existing: Map<string, ProblemRecord>,
    /** Bytes of a trailing partial line that were cut off on opening (0 when the file was clean). */
    readonly droppedBytes: number,
  ) {}

  static open(file: string): SamplesLog {
    const existing = new Map<string, ProblemRecord>();
    if (!existsSync(file)) return new SamplesLog(file, existing, 0);
    const bytes = readFileSync(file);
    // Everything after the last newline is an unfinished write: drop it from the file too, so
    // the next append starts on a fresh line.
    const end = bytes.lastIndexOf(0x0a) + 1;
    const dropped = bytes.length - end;
    if (dropped > 0) truncateSync(file, end);
    const lines = bytes.subarray(0, end).toString('utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (lines[i].trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(lines[i]);
      } catch (err) {
        fail(
          `${file}: line ${i + 1}: malformed JSON (${(err as Error).message}); remove the line or use another --out`,
        );
      }
      const rec = checkRecord(file, i + 1, value);
      existing.set(problemKey(rec.benchmark, rec.index), rec);
    }
    return new SamplesLog(file, existing, dropped);
  }

  /** Appends records as whole lines in one write, then fsyncs, so a crash cuts at most the tail. */
  append(records: readonly ProblemRecord[]): void {
    if (records.length === 0) return;
    const text = records.map((r) => JSON.stringify(r) + '\n').join('');
    const fd = openSync(this.file, 'a');
    try {
      const buf = Buffer.from(text, 'utf8');
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    for (const r of records) this.existing.set(problemKey(r.benchmark, r.index), r);
  }
}
