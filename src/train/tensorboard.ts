// TensorBoard event files (DIR/tb/events.out.tfevents.*), so `tensorboard --logdir` and
// `wandb sync --sync-tensorboard` read a run. A file is a sequence of TFRecords — u64 length,
// masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes — each an Event proto:
// first `file_version: "brain.Event:2"`, then one Summary per step with a simple_value per metric.
// The protobuf encoding is written by hand: four message fields, no library needed.
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant, so CRCs of CRCs stay distinct. */
function maskedCrc(bytes: Uint8Array): number {
  const c = crc32c(bytes);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64 two's complement
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}

/** A length-delimited field (wire type 2). */
function bytesField(field: number, body: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((field << 3) | 2), ...varint(body.length)]), body]);
}

/** Event { wall_time = 1 (double), step = 2 (int64), then one of file_version = 3, summary = 5, session_log = 7 }. */
function event(wallTime: number, step: number, what: Buffer): Buffer {
  const time = Buffer.alloc(9);
  time[0] = (1 << 3) | 1; // fixed64
  time.writeDoubleLE(wallTime, 1);
  return Buffer.concat([time, Buffer.from([(2 << 3) | 0, ...varint(step)]), what]);
}

/** Summary { repeated Value value = 1 }, Value { tag = 1, simple_value = 2 (float) }. */
function scalarsSummary(metrics: Record<string, number>): Buffer {
  const values = Object.entries(metrics).map(([tag, v]) => {
    const simple = Buffer.alloc(5);
    simple[0] = (2 << 3) | 5; // fixed32
    simple.writeFloatLE(v, 1);
    return bytesField(1, Buffer.concat([bytesField(1, Buffer.from(tag, 'utf8')), simple]));
  });
  return bytesField(5, Buffer.concat(values));
}

function record(data: Buffer): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const crcs = Buffer.alloc(8);
  crcs.writeUInt32LE(maskedCrc(len), 0);
  crcs.writeUInt32LE(maskedCrc(data), 4);
  return Buffer.concat([len, crcs.subarray(0, 4), data, crcs.subarray(4)]);
}

export class TensorBoardWriter {
  readonly file: string;

  /**
   * Starts a new event file in `dir`, opening with a SessionLog START. TensorBoard's reader
   * (event_accumulator's _CheckForRestartAndMaybePurge, file_version 2) takes the first START of a
   * run for its beginning and, at every later START, drops the points at or after that START's
   * step. So a fresh run writes one at step 0 (nothing to drop), and a run resumed from
   * `resumeStep` one at resumeStep + 1, dropping the steps the stopped run logged after its last
   * checkpoint (they are redone). The resumed file writes it twice: a run begun by an older red has
   * no START of its own, and the first of the two then stands for the run's beginning.
   * (TensorBoard's Rust loader ignores SessionLog; it drops a tag's points at or after any step
   * it sees again, which the redone steps are.)
   */
  constructor(dir: string, resumeStep?: number) {
    mkdirSync(dir, { recursive: true });
    const now = Date.now() / 1000;
    let n = 0;
    do this.file = path.join(dir, `events.out.tfevents.${Math.floor(now)}.${hostname()}.${process.pid}.${n++}`);
    while (existsSync(this.file));
    // SessionLog { status = 1 (START) }
    const start = record(event(now, (resumeStep ?? -1) + 1, bytesField(7, Buffer.from([(1 << 3) | 0, 1]))));
    const parts = [record(event(now, 0, bytesField(3, Buffer.from('brain.Event:2')))), start];
    if (resumeStep !== undefined) parts.push(start);
    writeFileSync(this.file, Buffer.concat(parts));
  }

  /** Every finite metric but `step` as a scalar at `step`. */
  write(step: number, metrics: Record<string, number>): void {
    const scalars: Record<string, number> = {};
    for (const [k, v] of Object.entries(metrics)) if (k !== 'step' && Number.isFinite(v)) scalars[k] = v;
    appendFileSync(this.file, record(event(Date.now() / 1000, step, scalarsSummary(scalars))));
  }
}
