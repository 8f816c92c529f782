// Weight sync over NCCL, from a trainer that holds the tensors (the PyTorch engine) to inference
// servers, with each server's own HTTP protocol: vLLM's weight transfer (VLLM_SERVER_DEV_MODE=1,
// --weight-transfer-config '{"backend":"nccl"}': /init_weight_transfer_engine once, then per sync
// /pause, /start_weight_update, /update_weights, /finish_weight_update, /resume) and SGLang's
// (/init_weights_update_group once, /update_weights_from_distributed per sync). This is the HTTP
// half. The tensor half (join the group as rank 0, broadcast the named tensors in order) is
// injected: python/red_engine/nccl_sync.py implements it for the PyTorch engine.
// Simplified: one group spans every server (the trainer is rank 0, server k's workers follow);
// tensors go one broadcast each, unpacked; SGLang servers must run with dp_size and pp_size 1.
import { fail } from '../util/errors.ts';

export type TransferProtocol = 'vllm' | 'sglang';
export type TransferBackend = 'nccl' | 'gloo';

/** One tensor as it is broadcast: its Hugging Face name, torch dtype name ('bfloat16', 'float32', …) and shape. */
export interface TensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

/** The group the trainer joins as rank 0 (the servers' workers take ranks 1 … worldSize − 1). */
export interface GroupSpec {
  protocol: TransferProtocol;
  masterAddress: string;
  masterPort: number;
  worldSize: number;
  /** SGLang: the torch.distributed group's name; vLLM has one unnamed group. */
  groupName: string;
  /** torch.distributed's backend: 'nccl', or 'gloo' for a trainer on CPUs (SGLang's group only). */
  backend: TransferBackend;
  /** Seconds the join, and each broadcast, may wait for the other ranks. */
  timeoutS: number;
}

/** The trainer's side of the transfer (rank 0 of the group), injected. */
export interface TensorBroadcaster {
  /** Joins the group as rank 0; resolves once every rank has joined (the servers join at the same time). */
  joinGroup(group: GroupSpec): Promise<void>;
  /** Broadcasts these tensors from rank 0, in this order, one broadcast each; resolves when all are sent. */
  broadcast(tensors: TensorSpec[]): Promise<void>;
}

export interface NcclSyncOptions {
  servers: string[];
  protocol: TransferProtocol;
  /** An address of the trainer's host that every server can reach, and a free port there. */
  masterAddress: string;
  masterPort: number;
  /** SGLang's group name (default weight_update_group, SGLang's own default). */
  groupName?: string;
  /** Default 'nccl'; 'gloo' where the trainer's tensors are on CPUs (SGLang only: vLLM's transfer engine is NCCL). */
  backend?: TransferBackend;
  /** Seconds one HTTP call may take (a transfer of large weights included). */
  timeoutS: number;
}

export class NcclWeightSync {
  private readonly servers: string[];
  private readonly group: string;
  /** vLLM: whether the servers have /pause and /start_weight_update (vLLM versions before them take the two-call protocol). */
  private pausable = true;
  private phased = true;
  private ready = false;

  constructor(
    private readonly o: NcclSyncOptions,
    private readonly trainer: TensorBroadcaster,
  ) {
    if (o.servers.length === 0) fail('rollout.servers: NCCL weight sync needs at least one server URL');
    if (o.protocol === 'vllm' && o.backend === 'gloo')
      fail(
        "rollout.weightSync: vLLM's weight transfer is NCCL only, and the training engine's tensors are on CPUs; run the PyTorch engine on GPUs, or set rollout.weightSync: disk",
      );
    this.servers = o.servers.map((u) => u.replace(/\/+$/, ''));
    this.group = o.groupName ?? 'weight_update_group';
  }

  /** Forms the group: asks each server for its workers, then every server and the trainer join at once. */
  async init(): Promise<void> {
    const workers = await Promise.all(this.servers.map((u) => this.workersOf(u)));
    const worldSize = 1 + workers.reduce((a, w) => a + w, 0);
    const base = { master_address: this.o.masterAddress, master_port: this.o.masterPort, world_size: worldSize };
    // A server's join call returns only once the trainer has joined too: both are under way together.
    const joins = this.servers.map((u, k) => {
      const rankOffset = 1 + workers.slice(0, k).reduce((a, w) => a + w, 0);
      return this.o.protocol === 'vllm'
        ? this.call(u, '/init_weight_transfer_engine', { init_info: { ...base, rank_offset: rankOffset } })
        : this.call(u, '/init_weights_update_group', {
            ...base,
            rank_offset: rankOffset,
            group_name: this.group,
            backend: this.o.backend ?? 'nccl',
          }).then((r) => succeeded(u, '/init_weights_update_group', r));
    });
    await Promise.all([
      ...joins,
      this.trainer.joinGroup({
        protocol: this.o.protocol,
        masterAddress: this.o.masterAddress,
        masterPort: this.o.masterPort,
        worldSize,
        groupName: this.group,
        backend: this.o.backend ?? 'nccl',
        timeoutS: this.o.timeoutS,
      }),
    ]);
    this.ready = true;
  }

  /** Every server loads `tensors` from the trainer's broadcast as `version`; returns the seconds taken. */
  async sync(tensors: TensorSpec[], version: string): Promise<number> {
    if (!this.ready) fail('rollout: NCCL weight sync before init(): the group is not formed');
    const t0 = performance.now();
    if (this.o.protocol === 'vllm') await this.syncVllm(tensors, version);
    else await this.syncSglang(tensors, version);
    return (performance.now() - t0) / 1000;
  }

  /**
   * vLLM: pause once the running requests are done (mode=wait: they finish on the old weights),
   * start, receive while the trainer broadcasts, finish with the version, resume.
   */
  private async syncVllm(tensors: TensorSpec[], version: string): Promise<void> {
    const updateInfo = {
      names: tensors.map((t) => t.name),
      dtype_names: tensors.map((t) => t.dtype),
      shapes: tensors.map((t) => t.shape),
      packed: false,
    };
    // mode=wait, and its older spelling, which versions without `mode` take (they would abort).
    if (this.pausable) this.pausable = await this.optional('/pause?mode=wait&wait_for_inflight_requests=true', {});
    if (this.phased) this.phased = await this.optional('/start_weight_update', { is_checkpoint_format: true });
    await Promise.all([
      ...this.servers.map((u) => this.call(u, '/update_weights', { update_info: updateInfo })),
      this.trainer.broadcast(tensors),
    ]);
    if (this.phased)
      await Promise.all(this.servers.map((u) => this.call(u, '/finish_weight_update', { weight_version: version })));
    if (this.pausable) await Promise.all(this.servers.map((u) => this.call(u, '/resume', {})));
  }

  /** SGLang: receive while the trainer broadcasts (SGLang holds new requests meanwhile), then check the version. */
  private async syncSglang(tensors: TensorSpec[], version: string): Promise<void> {
    const body = {
      names: tensors.map((t) => t.name),
      dtypes: tensors.map((t) => t.dtype),
      shapes: tensors.map((t) => t.shape),
      group_name: this.group,
      flush_cache: true,
      abort_all_requests: false,
      weight_version: version,
    };
    await Promise.all([
      ...this.servers.map((u) =>
        this.call(u, '/update_weights_from_distributed', body).then((r) =>
          succeeded(u, '/update_weights_from_distributed', r),
        ),
      ),
      this.trainer.broadcast(tensors),
    ]);
    for (const u of this.servers) {
      const got = (await this.call(u, '/get_weight_version', null)) as { weight_version?: unknown };
      if (got.weight_version !== undefined && String(got.weight_version) !== version)
        fail(`rollout: ${u} reports weight_version ${String(got.weight_version)} after receiving version ${version}`);
    }
  }

  /** Calls `route` on every server; false when none has it (an older vLLM), so later syncs skip it. */
  private async optional(route: string, body: unknown): Promise<boolean> {
    const found = await Promise.all(this.servers.map((u) => this.call(u, route, body, true)));
    return found.some((r) => r !== null);
  }

  /** The inference workers (ranks) a server brings to the group. */
  private async workersOf(u: string): Promise<number> {
    if (this.o.protocol === 'vllm') {
      const r = (await this.call(u, '/get_world_size', null, true)) as { world_size?: unknown } | null;
      if (r === null)
        fail(
          `rollout: ${u} has no /get_world_size: start vLLM with VLLM_SERVER_DEV_MODE=1 and --weight-transfer-config '{"backend":"nccl"}' for NCCL weight sync`,
        );
      if (!Number.isInteger(r.world_size) || (r.world_size as number) < 1)
        fail(`rollout: ${u}/get_world_size answered ${JSON.stringify(r)}; expected {world_size: n}`);
      return r.world_size as number;
    }
    const info = (await this.call(u, '/get_server_info', null)) as Record<string, unknown>;
    for (const key of ['dp_size', 'pp_size'])
      if (info[key] !== undefined && info[key] !== 1)
        fail(`rollout: ${u} runs with ${key} ${String(info[key])}; NCCL weight sync to SGLang needs ${key} 1`);
    return typeof info.tp_size === 'number' ? info.tp_size : 1;
  }

  /** One HTTP call (GET when body is null); a 404 is null where `missingOk`, any other failure stops the run naming the server. */
  private async call(u: string, route: string, body: unknown, missingOk = false): Promise<unknown> {
    let r: Response;
    try {
      r = await fetch(`${u}${route}`, {
        method: body === null ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json' },
        body: body === null ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.o.timeoutS * 1000),
      });
    } catch (err) {
      const e = err as { name?: string; cause?: { code?: string }; message?: string };
      const why = e.name === 'TimeoutError' ? `no answer within ${this.o.timeoutS} s` : (e.cause?.code ?? e.message);
      return fail(`rollout: ${u}${route}: ${why} (NCCL weight sync)`);
    }
    const text = await r.text();
    if (r.status === 404 && missingOk) return null;
    if (!r.ok) fail(`rollout: ${u}${route} answered HTTP ${r.status} ${text.slice(0, 200)} (NCCL weight sync)`);
    try {
      return text === '' ? {} : JSON.parse(text);
    } catch {
      return fail(`rollout: ${u}${route} answered ${JSON.stringify(text.slice(0, 80))}, not JSON (NCCL weight sync)`);
    }
  }
}

/** SGLang's answers are {success, message}: a failure stops the run with its message. */
function succeeded(u: string, route: string, r: unknown): void {
  const o = r as { success?: unknown; message?: unknown };
  if (o?.success !== true) fail(`rollout: ${u}${route} failed: ${String(o?.message ?? JSON.stringify(r))}`);
}
