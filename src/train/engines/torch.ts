// The PyTorch training engine (engine.kind: torch): the contract of ../engine.ts served by
// python/red_engine in Python processes, one rank per GPU (or `devices` CPU ranks), rank 0
// talking to red over torch-wire.ts. red starts rank 0, which starts the other ranks; or, across
// nodes, torchrun starts every rank and rank 0 connects to the socket that RED_ENGINE_ATTACH names
// (README "Training on GPUs"). Every failure is one line that names the fix; every wait is bounded.
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { GroupSpec, TensorBroadcaster, TensorSpec, TransferBackend } from '../../rollout/weight-transfer.ts';
import { fail, RedError } from '../../util/errors.ts';
import { atExit, makeTempDir } from '../../util/exit.ts';
import type {
  AdamWSettings,
  BatchHandle,
  EngineBatch,
  EngineModelInfo,
  EngineSample,
  EngineSampleParams,
  EngineSettings,
  LoadBatchOptions,
  OptimStepResult,
  TokenScores,
  TrainingEngine,
} from '../engine.ts';
import { EngineProcess, resolvePython } from './torch-launch.ts';
import { ControlSocket, SharedArrays, type Reply, type WireArray, type WireStats } from './torch-wire.ts';

const seconds = (name: string, fallback: number): number => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
/** Longest wait for one request (a step, a save, a sampling call). */
const REQUEST_TIMEOUT_MS = seconds('RED_ENGINE_TIMEOUT_S', 3600) * 1000;
/** Longest wait for rank 0 to connect (importing torch, starting the ranks). */
const CONNECT_TIMEOUT_MS = seconds('RED_ENGINE_CONNECT_TIMEOUT_S', 180) * 1000;

/**
 * A folder in shared memory (/dev/shm) where there is one, else the temp dir, removed at exit.
 * makeTempDir's folder beside it (for the socket) also makes SIGINT/SIGTERM an exit that runs
 * the cleanups, the engine's processes included.
 */
function engineFolders(): { shm: string; socketDir: string; remove: () => void } {
  const temp = makeTempDir('red-engine-');
  let shm: string;
  try {
    shm = mkdtempSync('/dev/shm/red-engine-');
  } catch {
    shm = mkdtempSync(path.join(temp.path, 'shm-'));
  }
  const removeShm = atExit(() => rmSync(shm, { recursive: true, force: true }));
  return { shm, socketDir: temp.path, remove: () => (removeShm(), temp.remove()) };
}

function scalar(x: unknown): number {
  return typeof x === 'string' ? Number(x) : (x as number); // NaN / ±Infinity travel as strings
}

/** The first entry of `a` that is not finite, or -1. */
function firstNonFinite(a: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return i;
  return -1;
}

export class TorchEngine implements TrainingEngine, TensorBroadcaster {
  readonly kind = 'torch';
  info!: EngineModelInfo;
  /** Ranks in all, and where rank 0 runs (e.g. "cuda:0", "cpu"). */
  world = 1;
  device = 'cpu';
  private closed = false;

  private constructor(
    private readonly control: ControlSocket,
    private readonly shm: SharedArrays,
    private readonly folders: { shm: string; remove: () => void },
    private readonly proc: EngineProcess | null,
  ) {}

  static async create(settings: EngineSettings): Promise<TorchEngine> {
    const attach = process.env.RED_ENGINE_ATTACH || null;
    const python = attach ? null : resolvePython(settings.python);
    const folders = engineFolders();
    const shm = new SharedArrays(folders.shm);
    const socketPath = attach ?? path.join(folders.socketDir, 'engine.sock');
    if (attach) rmSync(attach, { force: true });
    let proc: EngineProcess | null = null;
    const control = new ControlSocket(socketPath, shm, settings.log, (line) => new RedError(`PyTorch engine: ${line}`));
    if (python) proc = new EngineProcess(python, socketPath, () => control.fail(proc!.endLine()));
    const engine = new TorchEngine(control, shm, folders, proc);
    try {
      if (attach)
        settings.log(
          `engine: waiting for rank 0 of torchrun to connect to ${attach} (python -m red_engine --socket ${attach})`,
        );
      await control.waitConnected(
        attach ? seconds('RED_ENGINE_ATTACH_TIMEOUT_S', 600) * 1000 : CONNECT_TIMEOUT_MS,
        attach
          ? `no rank 0 connected to ${attach}; start torchrun on every node (README "Training on GPUs")`
          : `rank 0 did not connect in ${CONNECT_TIMEOUT_MS / 1000} s (RED_ENGINE_CONNECT_TIMEOUT_S raises it)`,
      );
      const init = await control.request(
        'init',
        { settings: { ...settings, log: undefined }, shm: folders.shm },
        [],
        REQUEST_TIMEOUT_MS,
      );
      engine.info = init.fields.info as EngineModelInfo;
      engine.world = Number(init.fields.world);
      engine.device = String((init.fields.info as { device: string }).device);
    } catch (err) {
      await engine.close();
      throw err;
    }
    return engine;
  }

  /** Time in requests so far, and the engine's own part of it (the rest is the wire and red). */
  get wireStats(): WireStats {
    return { ...this.control.stats };
  }

  /** Rank 0's process id (null when torchrun started it): tests count the ranks through it. */
  get rank0Pid(): number | null {
    return this.proc?.child.pid ?? null;
  }

  private call(op: string, fields: Record<string, unknown> = {}, arrays: [string, WireArray][] = []): Promise<Reply> {
    if (this.closed) fail(`PyTorch engine: ${op} after close()`);
    return this.control.request(op, fields, arrays, REQUEST_TIMEOUT_MS);
  }

  async loadBatch(batch: EngineBatch, opts: LoadBatchOptions): Promise<BatchHandle> {
    const r = await this.call('loadBatch', { microBatchTokens: opts.microBatchTokens }, [
      ['ids', batch.ids],
      ['cuSeqlens', batch.cuSeqlens],
      ['scoredFrom', batch.scoredFrom],
    ]);
    return {
      id: Number(r.fields.handle),
      scoredTokens: Number(r.fields.scoredTokens),
      totalTokens: Number(r.fields.totalTokens),
    };
  }

  async releaseBatch(batch: BatchHandle): Promise<void> {
    await this.call('releaseBatch', { handle: batch.id });
  }

  async forward(batch: BatchHandle, model: 'policy' | 'reference'): Promise<TokenScores> {
    const r = await this.call('forward', { handle: batch.id, model });
    return { logprob: r.arrays.logprob as Float32Array, entropy: r.arrays.entropy as Float32Array };
  }

  async forwardBackward(batch: BatchHandle, dLogprob: Float32Array, dEntropy: Float32Array): Promise<void> {
    for (const [name, a] of [
      ['dLogprob', dLogprob],
      ['dEntropy', dEntropy],
    ] as const) {
      const i = firstNonFinite(a);
      if (i >= 0)
        fail(
          `forwardBackward: ${name}[${i}] is ${a[i]} (the loss gave a non-finite coefficient: check the rewards and advantages of this batch, or lower optim.lr)`,
        );
    }
    await this.call('forwardBackward', { handle: batch.id }, [
      ['dLogprob', dLogprob],
      ['dEntropy', dEntropy],
    ]);
  }

  async createOptimizer(name: string, settings: AdamWSettings): Promise<void> {
    await this.call('createOptimizer', { name, settings });
  }

  async optimStep(name: string, lr: number, maxGradNorm: number): Promise<OptimStepResult> {
    const r = await this.call('optimStep', {
      name,
      lr,
      maxGradNorm: Number.isFinite(maxGradNorm) ? maxGradNorm : null,
    });
    return { gradNorm: scalar(r.fields.gradNorm), applied: r.fields.applied === true };
  }

  async stash(): Promise<void> {
    await this.call('stash');
  }

  async restore(): Promise<void> {
    await this.call('restore');
  }

  async saveForSampler(dir: string, dtype: 'fp32' | 'bf16'): Promise<void> {
    await this.call('saveForSampler', { dir: path.resolve(dir), dtype });
  }

  async saveState(dir: string): Promise<void> {
    await this.call('saveState', { dir: path.resolve(dir) });
  }

  async loadState(dir: string): Promise<void> {
    await this.call('loadState', { dir: path.resolve(dir) });
  }

  /** Test-only: writes every parameter's accumulated gradient (fp32, Hugging Face names) to `file`. */
  async saveGradients(file: string): Promise<void> {
    await this.call('saveGrads', { file: path.resolve(file) });
  }

  /** Test-only: sets every gradient from the tensors `<prefix><name>` of a safetensors file. */
  async loadGradients(file: string, prefix: string): Promise<void> {
    await this.call('loadGrads', { file: path.resolve(file), prefix });
  }

  /** rollout.weightSync nccl: tensors on a GPU go over NCCL; CPU ranks can only use gloo. */
  get transferBackend(): TransferBackend {
    return this.device.startsWith('cuda') ? 'nccl' : 'gloo';
  }

  /** Rank 0 joins the servers' transfer group (python/red_engine/nccl_sync.py); resolves once every rank has. */
  async joinGroup(group: GroupSpec): Promise<void> {
    await this.call('joinWeightGroup', { group });
  }

  /** Every parameter named in `tensors`, whole (FSDP2 shards gathered), in their dtype and order, from rank 0 to the group. */
  async broadcast(tensors: TensorSpec[]): Promise<void> {
    await this.call('broadcastWeights', { tensors });
  }

  async sample(prompts: number[][], params: EngineSampleParams): Promise<EngineSample[][]> {
    if (params.seeds.length !== prompts.length)
      fail(`sample: ${params.seeds.length} seeds for ${prompts.length} prompts (one seed per prompt)`);
    const offsets = new Int32Array(prompts.length + 1);
    prompts.forEach((p, i) => (offsets[i + 1] = offsets[i] + p.length));
    const ids = Int32Array.from(prompts.flat());
    const r = await this.call('sample', { params }, [
      ['promptIds', ids],
      ['promptOffsets', offsets],
    ]);
    const out = r.arrays.ids as Int32Array,
      logprobs = r.arrays.logprobs as Float32Array,
      lengths = r.arrays.lengths as Int32Array,
      stopped = r.arrays.stopped as Uint8Array;
    const result: EngineSample[][] = [];
    let row = 0,
      at = 0;
    for (let i = 0; i < prompts.length; i++) {
      const samples: EngineSample[] = [];
      for (let j = 0; j < params.n; j++, row++) {
        const n = lengths[row];
        samples.push({
          ids: Array.from(out.subarray(at, at + n)),
          logprobs: Array.from(logprobs.subarray(at, at + n)),
          finishReason: stopped[row] ? 'stop' : 'length',
        });
        at += n;
      }
      result.push(samples);
    }
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (!this.control.failed) {
      try {
        await this.control.request('exit', {}, [], 15_000);
      } catch {
        /* ended below either way */
      }
    }
    this.control.fail('the engine was closed');
    await this.proc?.stop(5_000);
    this.shm.close();
    this.folders.remove();
  }
}

export function createTorchEngine(settings: EngineSettings): Promise<TrainingEngine> {
  return TorchEngine.create(settings);
}
