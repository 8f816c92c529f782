// red's side of the wire to the PyTorch engine's rank 0 (python/red_engine/wire.py is the other).
// Control: a Unix socket that red listens on and rank 0 connects to, carrying frames of a 4-byte
// little-endian length and UTF-8 JSON ({id, op, …} → {id, ok, …}, plus rank 0's {event} lines).
// Bulk arrays never travel as JSON: they go through two files in a shared-memory folder
// (/dev/shm, else the temp dir), `to-engine` (red writes) and `from-engine` (rank 0 writes), each
// grown when a call needs more and reused by the next, never re-created per call.
import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export type WireArray = Int32Array | Float32Array | Uint8Array;
type WireDtype = 'i32' | 'f32' | 'u8';

/** Where an array lies in a shared-memory file (element offset in bytes, length in elements). */
export interface ArrayDesc {
  name: string;
  dtype: WireDtype;
  offset: number;
  length: number;
}

/** A reply's JSON fields, and its arrays read back from `from-engine`. */
export interface Reply {
  fields: Record<string, unknown>;
  arrays: Record<string, WireArray>;
}

function dtypeOf(a: WireArray): WireDtype {
  return a instanceof Int32Array ? 'i32' : a instanceof Float32Array ? 'f32' : 'u8';
}

const MAKERS: Record<WireDtype, (buf: ArrayBuffer) => WireArray> = {
  i32: (b) => new Int32Array(b),
  f32: (b) => new Float32Array(b),
  u8: (b) => new Uint8Array(b),
};

/** The two shared-memory files, each opened once; `to-engine` grows by doubling. */
export class SharedArrays {
  private readonly toFd: number;
  private toSize = 0;
  private fromFd: number | null = null;
  private scratch = Buffer.alloc(1 << 16); // reads of `from-engine`, grown

  constructor(readonly dir: string) {
    this.toFd = openSync(path.join(dir, 'to-engine'), 'w+', 0o600);
  }

  /** Writes the arrays one after the other (8-byte aligned) and names where each lies. */
  write(arrays: [string, WireArray][]): ArrayDesc[] {
    const descs: ArrayDesc[] = [];
    let offset = 0;
    for (const [name, a] of arrays) {
      descs.push({ name, dtype: dtypeOf(a), offset, length: a.length });
      offset += Math.ceil(a.byteLength / 8) * 8;
    }
    if (offset > this.toSize) {
      this.toSize = Math.max(offset, 2 * this.toSize, 1 << 20);
      ftruncateSync(this.toFd, this.toSize);
    }
    arrays.forEach(([, a], i) =>
      writeSync(this.toFd, new Uint8Array(a.buffer, a.byteOffset, a.byteLength), 0, a.byteLength, descs[i].offset),
    );
    return descs;
  }

  /** Copies the described arrays out of `from-engine` (rank 0 reuses its bytes next call). */
  read(descs: ArrayDesc[]): Record<string, WireArray> {
    const out: Record<string, WireArray> = {};
    if (descs.length === 0) return out;
    const file = path.join(this.dir, 'from-engine');
    if (this.fromFd === null) {
      if (!existsSync(file)) throw new Error(`${file}: the engine named arrays but wrote no file`);
      this.fromFd = openSync(file, 'r');
    }
    const size = fstatSync(this.fromFd).size;
    for (const d of descs) {
      const bytes = d.length * (d.dtype === 'u8' ? 1 : 4);
      if (d.offset + bytes > size) throw new Error(`${file}: holds ${size} bytes, the reply names ${d.offset + bytes}`);
      if (this.scratch.length < bytes) this.scratch = Buffer.alloc(Math.max(bytes, 2 * this.scratch.length));
      let done = 0;
      while (done < bytes) done += readSync(this.fromFd, this.scratch, done, bytes - done, d.offset + done);
      out[d.name] = MAKERS[d.dtype](
        this.scratch.buffer.slice(this.scratch.byteOffset, this.scratch.byteOffset + bytes),
      );
    }
    return out;
  }

  close(): void {
    closeSync(this.toFd);
    if (this.fromFd !== null) closeSync(this.fromFd);
  }
}

interface Pending {
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  sentAt: number;
}

/**
 * Seconds spent in answered requests: wall time, the part rank 0 reported inside the engine
 * (engineS), and CPU time on the wire (red's, writing requests and reading replies, and rank 0's
 * wireCpuS), which a loaded machine's scheduling does not inflate.
 */
export interface WireStats {
  requests: number;
  roundTripS: number;
  engineS: number;
  wireCpuS: number;
}

/**
 * The control socket: listens at `socketPath`, takes the first connection (rank 0) and matches
 * replies to requests by id. `fail(line)` ends it: every pending and later request rejects with
 * that line (rank 0's fatal event, its process exiting, a timeout).
 */
export class ControlSocket {
  private readonly server: net.Server;
  private conn: net.Socket | null = null;
  private inbox = Buffer.alloc(0);
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  readonly stats: WireStats = { requests: 0, roundTripS: 0, engineS: 0, wireCpuS: 0 };
  private readonly connected: Promise<void>;
  private rejectConnected: (e: Error) => void = () => {};

  constructor(
    readonly socketPath: string,
    private readonly shm: SharedArrays,
    private readonly onLog: (line: string) => void,
    private readonly makeError: (line: string) => Error,
  ) {
    this.server = net.createServer();
    this.connected = new Promise((resolve, reject) => {
      this.rejectConnected = reject;
      this.server.once('error', (err) => this.fail(`cannot listen on ${socketPath}: ${err.message}`));
      this.server.once('connection', (conn) => {
        this.conn = conn;
        conn.unref();
        conn.on('data', (chunk) => this.receive(chunk));
        // A closed socket most often means rank 0 ended: its exit (and the line saying why) comes a
        // moment later and wins if it comes within a second.
        const closed = () => setTimeout(() => this.fail('rank 0 closed its socket'), 1000).unref();
        conn.on('error', closed);
        conn.on('close', closed);
        resolve();
      });
    });
    this.server.listen(socketPath);
    this.server.unref();
  }

  /** Resolves when rank 0 has connected; rejects after timeoutMs or on failure. */
  waitConnected(timeoutMs: number, what: string): Promise<void> {
    const timer = setTimeout(() => this.fail(what), timeoutMs);
    return this.connected.finally(() => clearTimeout(timer));
  }

  /** One request; its reply's fields and arrays. */
  request(
    op: string,
    fields: Record<string, unknown>,
    arrays: [string, WireArray][],
    timeoutMs: number,
  ): Promise<Reply> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const sentAt = performance.now(); // the wire's time includes writing the arrays
    const cpuAt = process.cpuUsage();
    const descs = this.shm.write(arrays);
    const body = Buffer.from(JSON.stringify({ id, op, ...fields, arrays: descs }), 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length, 0);
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(`${op} got no answer in ${Math.round(timeoutMs / 1000)} s (RED_ENGINE_TIMEOUT_S raises it)`),
        timeoutMs,
      );
      this.pending.set(id, { resolve, reject, timer, sentAt });
      this.conn!.write(Buffer.concat([head, body]));
      this.addCpu(cpuAt);
    });
  }

  private addCpu(since: NodeJS.CpuUsage): void {
    const cpu = process.cpuUsage(since);
    this.stats.wireCpuS += (cpu.user + cpu.system) / 1e6;
  }

  private receive(chunk: Buffer): void {
    const cpuAt = process.cpuUsage();
    this.receiveFrames(chunk);
    this.addCpu(cpuAt);
  }

  private receiveFrames(chunk: Buffer): void {
    this.inbox = Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= 4) {
      const n = this.inbox.readUInt32LE(0);
      if (this.inbox.length < 4 + n) return;
      const msg = JSON.parse(this.inbox.subarray(4, 4 + n).toString('utf8')) as Record<string, unknown>;
      this.inbox = this.inbox.subarray(4 + n);
      this.dispatch(msg);
    }
  }

  private dispatch(msg: Record<string, unknown>): void {
    if (msg.event === 'log') return this.onLog(String(msg.line));
    if (msg.event === 'fatal') return this.fail(String(msg.error));
    const p = this.pending.get(Number(msg.id));
    if (!p) return;
    this.pending.delete(Number(msg.id));
    clearTimeout(p.timer);
    if (msg.ok !== true) {
      const err = this.makeError(String(msg.error));
      if (msg.fatal === true) this.fail(String(msg.error));
      return p.reject(err);
    }
    try {
      const arrays = this.shm.read((msg.arrays as ArrayDesc[] | undefined) ?? []);
      this.stats.requests++;
      this.stats.roundTripS += (performance.now() - p.sentAt) / 1000;
      this.stats.engineS += Number(msg.engineS ?? 0);
      this.stats.wireCpuS += Number(msg.wireCpuS ?? 0);
      p.resolve({ fields: msg, arrays });
    } catch (err) {
      p.reject(err as Error);
    }
  }

  /** Ends the socket with `line` (the first failure wins): pending and later requests reject with it. */
  fail(line: string): void {
    if (!this.failure) this.failure = this.makeError(line);
    this.rejectConnected(this.failure);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.failure);
    }
    this.pending.clear();
    this.conn?.destroy();
    this.server.close();
  }

  get failed(): Error | null {
    return this.failure;
  }
}
