// The safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)}}, then the
// raw little-endian data. We read F32/BF16/F16 into float32 (and I32/I64 ids into int32), tensor
// by tensor straight from the file, and write F32 only. A sharded checkpoint is a set of such
// files plus model.safetensors.index.json mapping each tensor name to its shard.
import {
  closeSync,
  existsSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
  fsyncSync,
} from 'node:fs';
import path from 'node:path';
import { toBf16 } from '../engine/bf16.ts';
import { fail } from '../util/errors.ts';

export type Dtype = 'F32' | 'BF16' | 'F16' | 'I32' | 'I64';
const BYTES: Record<Dtype, number> = { F32: 4, BF16: 2, F16: 2, I32: 4, I64: 8 };

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

function isDtype(x: unknown): x is Dtype {
  return typeof x === 'string' && x in BYTES;
}

/** One open safetensors file: the header is parsed and checked against the file size up front. */
export class SafetensorsFile {
  readonly entries = new Map<string, TensorEntry>();
  readonly metadata: Record<string, string> = {};
  private fd: number;

  constructor(readonly file: string) {
    if (!existsSync(file)) fail(`${file}: file not found`);
    this.fd = openSync(file, 'r');
    try {
      this.parseHeader();
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  private parseHeader(): void {
    const size = fstatSync(this.fd).size;
    if (size < 8) fail(`${this.file}: truncated safetensors file (${size} bytes, no header)`);
    const lenBuf = Buffer.alloc(8);
    readExactly(this.fd, lenBuf, 0, this.file);
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen > 100_000_000 || 8 + headerLen > size)
      fail(`${this.file}: truncated or corrupt safetensors file (header of ${headerLen} bytes, file of ${size})`);
    const hbuf = Buffer.alloc(headerLen);
    readExactly(this.fd, hbuf, 8, this.file);
    let header: unknown;
    try {
      header = JSON.parse(hbuf.toString('utf8'));
    } catch {
      fail(`${this.file}: the safetensors header is not valid JSON`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header))
      fail(`${this.file}: the safetensors header is not a JSON object`);
    const dataStart = 8 + headerLen;
    for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        if (typeof info === 'object' && info !== null) Object.assign(this.metadata, info);
        continue;
      }
      const e = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (!isDtype(e.dtype))
        fail(
          `${this.file}: tensor "${name}" has dtype ${JSON.stringify(e.dtype)}; supported: F32, BF16, F16 (I32, I64 for ids)`,
        );
      const shape = e.shape,
        offs = e.data_offsets;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
        fail(`${this.file}: tensor "${name}" has a malformed shape`);
      if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0))
        fail(`${this.file}: tensor "${name}" has malformed data_offsets`);
      const count = (shape as number[]).reduce((a, b) => a * b, 1);
      const [b, en] = offs as number[];
      if (en - b !== count * BYTES[e.dtype])
        fail(
          `${this.file}: tensor "${name}" spans ${en - b} bytes but its shape [${shape.join(', ')}] of ${e.dtype} needs ${count * BYTES[e.dtype]}`,
        );
      if (dataStart + en > size)
        fail(
          `${this.file}: truncated file: tensor "${name}" ends at byte ${dataStart + en} but the file has ${size} bytes`,
        );
      this.entries.set(name, {
        name,
        dtype: e.dtype,
        shape: shape as number[],
        begin: dataStart + b,
        end: dataStart + en,
      });
    }
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) fail(`${this.file}: no tensor "${name}"`);
    return e;
  }

  /** Reads a float tensor into dst (length ≥ its element count), converting to float32. */
  readInto(name: string, dst: Float32Array): void {
    const e = this.entry(name);
    const count = (e.end - e.begin) / BYTES[e.dtype];
    if (dst.length < count) fail(`${this.file}: tensor "${name}" has ${count} elements, destination ${dst.length}`);
    switch (e.dtype) {
      case 'F32':
        readExactly(this.fd, new Uint8Array(dst.buffer, dst.byteOffset, count * 4), e.begin, this.file);
        return;
      case 'BF16': {
        const raw = this.readRaw(e);
        const u16 = new Uint16Array(raw.buffer, raw.byteOffset, count);
        const u32 = new Uint32Array(dst.buffer, dst.byteOffset, count);
        // bfloat16 is the top half of a float32
        for (let i = 0; i < count; i++) u32[i] = u16[i] << 16;
        return;
      }
      case 'F16': {
        const raw = this.readRaw(e);
        const u16 = new Uint16Array(raw.buffer, raw.byteOffset, count);
        const table = halfTable();
        for (let i = 0; i < count; i++) dst[i] = table[u16[i]];
        return;
      }
      case 'I32':
      case 'I64':
        fail(`${this.file}: tensor "${name}" is ${e.dtype}, expected a float tensor`);
      default:
        e.dtype satisfies never;
    }
  }

  /**
   * Reads a float tensor into dst as bf16 bits: BF16 copied as stored, F32 and F16 rounded to
   * nearest even (F16 widened exactly first), so a bf16 model never holds an fp32 copy.
   */
  readIntoBf16(name: string, dst: Uint16Array): void {
    const e = this.entry(name);
    const count = (e.end - e.begin) / BYTES[e.dtype];
    if (dst.length < count) fail(`${this.file}: tensor "${name}" has ${count} elements, destination ${dst.length}`);
    if (e.dtype === 'BF16') {
      readExactly(this.fd, new Uint8Array(dst.buffer, dst.byteOffset, count * 2), e.begin, this.file);
      return;
    }
    // F32/F16 in pieces of ≤ 1M elements through a small fp32 buffer.
    const piece = 1 << 20,
      buf = new Float32Array(Math.min(piece, count));
    const half = e.dtype === 'F16' ? new Uint16Array(buf.length) : null;
    if (e.dtype !== 'F32' && e.dtype !== 'F16')
      fail(`${this.file}: tensor "${name}" is ${e.dtype}, expected a float tensor`);
    for (let i = 0; i < count; i += piece) {
      const n = Math.min(piece, count - i),
        f = buf.subarray(0, n);
      if (half) {
        readExactly(this.fd, new Uint8Array(half.buffer, 0, n * 2), e.begin + i * 2, this.file);
        const table = halfTable();
        for (let j = 0; j < n; j++) f[j] = table[half[j]];
      } else {
        readExactly(this.fd, new Uint8Array(f.buffer, 0, n * 4), e.begin + i * 4, this.file);
      }
      dst.set(toBf16(f), i);
    }
  }

  /** A float tensor as a new Float32Array. */
  readFloat(name: string): Float32Array {
    const e = this.entry(name);
    const out = new Float32Array(e.shape.reduce((a, b) => a * b, 1));
    this.readInto(name, out);
    return out;
  }

  /** An integer tensor (I32, or I64 within int32 range) as an Int32Array. */
  readInt(name: string): Int32Array {
    const e = this.entry(name);
    const count = e.shape.reduce((a, b) => a * b, 1);
    const raw = this.readRaw(e);
    if (e.dtype === 'I32') return new Int32Array(raw.buffer, raw.byteOffset, count).slice();
    if (e.dtype === 'I64') {
      const big = new BigInt64Array(raw.buffer, raw.byteOffset, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        if (big[i] > 2147483647n || big[i] < -2147483648n)
          fail(`${this.file}: tensor "${name}" has a value outside int32`);
        out[i] = Number(big[i]);
      }
      return out;
    }
    fail(`${this.file}: tensor "${name}" is ${e.dtype}, expected I32 or I64`);
  }

  private readRaw(e: TensorEntry): Uint8Array {
    // a fresh, 8-byte-aligned buffer so typed views over it are legal
    const buf = new Uint8Array(new ArrayBuffer(e.end - e.begin));
    readExactly(this.fd, buf, e.begin, this.file);
    return buf;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function readExactly(fd: number, buf: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < buf.length) {
    // readSync reads at most 2 GiB per call
    const n = readSync(fd, buf, off, Math.min(buf.length - off, 1 << 30), position + off);
    if (n === 0) fail(`${file}: truncated file (unexpected end at byte ${position + off})`);
    off += n;
  }
}

let half: Float32Array | null = null;
/** float16 bits → float32 value, for all 65536 patterns (IEEE 754 binary16). */
function halfTable(): Float32Array {
  if (half) return half;
  half = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    let v: number;
    if (exp === 0)
      v = frac * 2 ** -24; // subnormal: frac/1024 · 2^−14
    else if (exp === 31) v = frac ? NaN : Infinity;
    else v = (1 + frac / 1024) * 2 ** (exp - 15);
    half[h] = sign * v;
  }
  return half;
}

export interface TensorToWrite {
  name: string;
  shape: number[];
  /** F32, or BF16 given as bf16 bits. */
  data: Float32Array | Uint16Array;
}

/**
 * Writes an F32 safetensors file (to a temporary name, then renamed). The header is padded with
 * spaces to a multiple of 8 bytes so every tensor's data starts 8-byte aligned.
 */
export function writeSafetensors(
  file: string,
  tensors: TensorToWrite[],
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new Error(`writeSafetensors: ${t.name} has ${t.data.length} elements for shape [${t.shape}]`);
    const bytes = t.data.BYTES_PER_ELEMENT;
    header[t.name] = {
      dtype: bytes === 2 ? 'BF16' : 'F32',
      shape: t.shape,
      data_offsets: [offset, offset + count * bytes],
    };
    offset += count * bytes;
  }
  let json = JSON.stringify(header);
  const len = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (len % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(hbytes.length));

  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}`);
  const fd = openSync(tmp, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, hbytes);
    // In slices: a Uint8Array view of a multi-GB tensor (a 1.5B model's optimiser moments) is
    // past V8's typed-array length limit.
    for (const t of tensors) {
      for (let pos = 0; pos < t.data.byteLength; pos += WRITE_SLICE) {
        writeAll(
          fd,
          new Uint8Array(t.data.buffer, t.data.byteOffset + pos, Math.min(WRITE_SLICE, t.data.byteLength - pos)),
        );
      }
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw err;
  }
}

const WRITE_SLICE = 1 << 28;

function writeAll(fd: number, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
}

/** A checkpoint's tensors across one file or the shards named by model.safetensors.index.json. */
export class Checkpoint {
  private constructor(
    private files: SafetensorsFile[],
    private where: Map<string, SafetensorsFile>,
  ) {}

  /** Opens `<dir>/model.safetensors`, else the shards of `<dir>/model.safetensors.index.json`. */
  static open(dir: string): Checkpoint {
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    if (existsSync(single)) {
      const f = new SafetensorsFile(single);
      return new Checkpoint([f], new Map([...f.entries.keys()].map((n) => [n, f])));
    }
    if (!existsSync(index)) fail(`${dir}: no model.safetensors or model.safetensors.index.json`);
    let weightMap: Record<string, unknown>;
    try {
      const json = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: unknown };
      if (typeof json.weight_map !== 'object' || json.weight_map === null) fail(`${index}: missing key "weight_map"`);
      weightMap = json.weight_map as Record<string, unknown>;
    } catch (err) {
      if (err instanceof SyntaxError) fail(`${index}: not valid JSON`);
      throw err;
    }
    // Check every shard exists before opening any, so the error names the first missing one.
    for (const [tensor, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string') fail(`${index}: weight_map["${tensor}"] must be a file name`);
      if (!existsSync(path.join(dir, shard)))
        fail(`${index}: shard ${path.join(dir, shard)} (holding tensor "${tensor}") not found`);
    }
    const byShard = new Map<string, SafetensorsFile>();
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const [tensor, shard] of Object.entries(weightMap) as [string, string][]) {
        let f = byShard.get(shard);
        if (!f) {
          f = new SafetensorsFile(path.join(dir, shard));
          byShard.set(shard, f);
        }
        if (!f.entries.has(tensor))
          fail(`${f.file}: the index names tensor "${tensor}" in this shard but it is not there`);
        where.set(tensor, f);
      }
    } catch (err) {
      for (const f of byShard.values()) f.close();
      throw err;
    }
    return new Checkpoint([...byShard.values()], where);
  }

  names(): string[] {
    return [...this.where.keys()];
  }

  /** The entry and the file holding it, or null. */
  find(name: string): { file: SafetensorsFile; entry: TensorEntry } | null {
    const f = this.where.get(name);
    return f ? { file: f, entry: f.entry(name) } : null;
  }

  close(): void {
    for (const f of this.files) f.close();
  }
}
