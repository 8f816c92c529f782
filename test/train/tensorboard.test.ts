// The TensorBoard event files that MetricsWriter writes beside metrics.jsonl, read back by a reader
// written here from the format's definition: TFRecord framing with masked CRC-32C (computed bit by
// bit, checked against the standard check value, not with the writer's table), and a generic
// protobuf decoder for Event / Summary / Value (field numbers as in TensorBoard 2.21's event.proto:
// wall_time 1, step 2, file_version 3, summary 5, session_log 7; Value tag 1, simple_value 2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MetricsWriter } from '../../src/train/metrics.ts';
import { tempDir } from '../helpers/tmp.ts';

function crc32cBitwise(bytes: Uint8Array): number {
  let crc = ~0 >>> 0;
  for (const b of bytes) {
    crc = (crc ^ b) >>> 0;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? ((crc >>> 1) ^ 0x82f63b78) >>> 0 : crc >>> 1;
  }
  return ~crc >>> 0;
}
const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;

type Field = { no: number; wire: number; value: bigint | Buffer };
function decode(buf: Buffer): Field[] {
  const out: Field[] = [];
  let i = 0;
  const varint = (): bigint => {
    let v = 0n,
      shift = 0n;
    for (;;) {
      const b = buf[i++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const key = Number(varint());
    const no = key >> 3,
      wire = key & 7;
    if (wire === 0) out.push({ no, wire, value: varint() });
    else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(i, i + 8) });
      i += 8;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(i, i + 4) });
      i += 4;
    } else if (wire === 2) {
      const n = Number(varint());
      out.push({ no, wire, value: buf.subarray(i, i + n) });
      i += n;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

interface Ev {
  wallTime: number;
  step: number;
  fileVersion?: string;
  scalars?: Record<string, number>;
  sessionStart?: boolean;
}
function readEvents(file: string): Ev[] {
  const buf = readFileSync(file);
  const events: Ev[] = [];
  let off = 0;
  while (off < buf.length) {
    const lenBytes = buf.subarray(off, off + 8);
    assert.equal(buf.readUInt32LE(off + 8), mask(crc32cBitwise(lenBytes)), `length CRC at byte ${off}`);
    const n = Number(lenBytes.readBigUInt64LE());
    const data = buf.subarray(off + 12, off + 12 + n);
    assert.equal(buf.readUInt32LE(off + 12 + n), mask(crc32cBitwise(data)), `data CRC at byte ${off}`);
    off += 16 + n;
    const ev: Ev = { wallTime: NaN, step: 0 };
    for (const f of decode(data)) {
      if (f.no === 1 && f.wire === 1) ev.wallTime = (f.value as Buffer).readDoubleLE();
      else if (f.no === 2 && f.wire === 0) ev.step = Number(f.value);
      else if (f.no === 3 && f.wire === 2) ev.fileVersion = (f.value as Buffer).toString('utf8');
      else if (f.no === 7 && f.wire === 2)
        ev.sessionStart = decode(f.value as Buffer).some((g) => g.no === 1 && g.value === 1n);
      else if (f.no === 5 && f.wire === 2) {
        ev.scalars = {};
        for (const v of decode(f.value as Buffer)) {
          assert.equal(v.no, 1);
          const parts = decode(v.value as Buffer);
          const tag = (parts.find((p) => p.no === 1)!.value as Buffer).toString('utf8');
          const simple = parts.find((p) => p.no === 2 && p.wire === 5)!;
          ev.scalars[tag] = (simple.value as Buffer).readFloatLE();
        }
      } else throw new Error(`unexpected Event field ${f.no}`);
    }
    events.push(ev);
  }
  return events;
}

test('CRC-32C of the reader: the standard check value', () => {
  assert.equal(crc32cBitwise(Buffer.from('123456789')), 0xe3069283);
});

test('every metrics.jsonl line is a TensorBoard scalar event at its step, in a valid TFRecord file', () => {
  const dir = tempDir('red-tb-');
  const w = new MetricsWriter(path.join(dir, 'metrics.jsonl'), undefined, true);
  const steps: Array<Record<string, number>> = [
    { step: 1, 'reward/mean': 0.25, 'loss/policy': -0.125, lr: 1e-4, 'timing_s/rollout': 3.5 },
    { step: 2, 'reward/mean': 0.5, 'loss/policy': Number.NaN, lr: 2e-4, 'grad/norm': 12345.678 },
  ];
  const t0 = Date.now() / 1000;
  for (const m of steps) w.write(m);
  const files = readdirSync(path.join(dir, 'tb'));
  assert.equal(files.length, 1);
  assert.match(files[0], /^events\.out\.tfevents\.\d{10}\./);
  const events = readEvents(path.join(dir, 'tb', files[0])).filter((e) => !e.sessionStart);
  assert.equal(events[0].fileVersion, 'brain.Event:2');
  assert.equal(events.length, 3);
  const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);
  for (let k = 0; k < 2; k++) {
    const ev = events[k + 1];
    assert.equal(ev.step, lines[k].step);
    assert.ok(Math.abs(ev.wallTime - t0) < 60);
    const { step: _, ...expected } = lines[k];
    assert.deepEqual(Object.keys(ev.scalars!).sort(), Object.keys(expected).sort()); // NaN left out, as in the JSON
    for (const [tag, v] of Object.entries(expected)) assert.equal(ev.scalars![tag], Math.fround(v), tag);
  }

  // A resumed run opens a second file whose SessionLog START at step 2 purges the old step 2.
  const resumed = new MetricsWriter(path.join(dir, 'metrics.jsonl'), 1, true);
  resumed.write({ step: 2, 'reward/mean': 0.75 });
  const second = readdirSync(path.join(dir, 'tb'))
    .map((f) => path.join(dir, 'tb', f))
    .find((f) => readEvents(f).some((e) => e.sessionStart && e.step === 2));
  assert.ok(second, 'no file with a SessionLog START');
  const ev2 = readEvents(second);
  assert.deepEqual(
    ev2.map((e) => [e.step, e.sessionStart === true]),
    [
      [0, false],
      [2, true],
      [2, true],
      [2, false],
    ],
  );
  assert.equal(ev2[3].scalars!['reward/mean'], 0.75);
});

/**
 * What TensorBoard shows of a run folder, per tag: its (step, value) points, read as TensorBoard's
 * Python loader reads them (tensorboard/backend/event_processing/plugin_event_accumulator.py):
 * files in name order; with file_version ≥ 2 the first SessionLog START of the run marks its
 * beginning and each later START drops every point whose step is ≥ the START's step
 * (_CheckForRestartAndMaybePurge / _Purge); scalars are appended as they come.
 */
function tensorboardView(tbDir: string): Record<string, Array<[number, number]>> {
  const tags: Record<string, Array<[number, number]>> = {};
  let seenStart = false;
  for (const f of readdirSync(tbDir).sort()) {
    for (const e of readEvents(path.join(tbDir, f))) {
      if (e.sessionStart) {
        if (seenStart) for (const t of Object.keys(tags)) tags[t] = tags[t].filter(([step]) => step < e.step);
        seenStart = true;
      }
      for (const [tag, v] of Object.entries(e.scalars ?? {})) (tags[tag] ??= []).push([e.step, v]);
    }
  }
  return tags;
}

/** The event file without its SessionLog records: what red wrote before it marked sessions. */
function withoutSessionLog(file: string): void {
  const buf = readFileSync(file);
  const keep: Buffer[] = [];
  for (let off = 0; off < buf.length;) {
    const n = Number(buf.readBigUInt64LE(off));
    const rec = buf.subarray(off, off + 16 + n);
    if (!decode(rec.subarray(12, 12 + n)).some((f) => f.no === 7)) keep.push(rec);
    off += 16 + n;
  }
  writeFileSync(file, Buffer.concat(keep));
}

test('a run stopped after step 3 and resumed from its checkpoint at step 2: TensorBoard shows each step once', async () => {
  for (const olderFirstFile of [false, true]) {
    const dir = tempDir('red-tb-');
    const metrics = path.join(dir, 'metrics.jsonl');
    const first = new MetricsWriter(metrics, undefined, true);
    for (const step of [1, 2, 3]) first.write({ step, 'reward/mean': step / 10 });
    // The event files' names start with the second: the resumed one must sort after.
    if (olderFirstFile) withoutSessionLog(path.join(dir, 'tb', readdirSync(path.join(dir, 'tb'))[0]));
    await new Promise((r) => setTimeout(r, 1100));
    const resumed = new MetricsWriter(metrics, 2, true);
    for (const step of [3, 4]) resumed.write({ step, 'reward/mean': step });
    assert.deepEqual(
      tensorboardView(path.join(dir, 'tb'))['reward/mean'],
      [
        [1, Math.fround(0.1)],
        [2, Math.fround(0.2)],
        [3, 3],
        [4, 4],
      ],
      olderFirstFile ? 'first file written without a START' : 'both files from this version',
    );
  }
});

test('log.tensorboard off: no tb folder', () => {
  const dir = tempDir('red-tb-');
  new MetricsWriter(path.join(dir, 'metrics.jsonl')).write({ step: 1, lr: 1 });
  assert.deepEqual(readdirSync(dir), ['metrics.jsonl']);
});
