// NCCL weight sync's HTTP half against loopback stand-ins of vLLM (VLLM_SERVER_DEV_MODE routes)
// and SGLang: the request bodies as their sources define them (vllm/entrypoints/serve/dev/rlhf/
// api_router.py and nccl_engine.py's init/update infos; SGLang's io_struct request classes), the
// order of the calls, and the rendezvous: a server's join and receive calls return only once the
// trainer's side has joined and broadcast, as NCCL's would, so an orchestration that waited for
// one before starting the other would hang here.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  NcclWeightSync,
  type GroupSpec,
  type TensorBroadcaster,
  type TensorSpec,
} from '../../src/rollout/weight-transfer.ts';

type Reply = { status?: number; json?: unknown; waitFor?: 'join' | 'broadcast' };

/** How far the trainer's side has got: a server's k-th receive waits for the k-th broadcast. */
interface Rendezvous {
  joined: number;
  broadcasts: number;
}

/** The trainer's side, recording its calls into `log` and counting them for the servers to wait on. */
function fakeTrainer(log: string[]) {
  const rendezvous: Rendezvous = { joined: 0, broadcasts: 0 };
  const calls: { group?: GroupSpec; tensors: TensorSpec[][] } = { tensors: [] };
  const trainer: TensorBroadcaster = {
    joinGroup: async (group) => {
      log.push('trainer join');
      calls.group = group;
      rendezvous.joined++;
    },
    broadcast: async (tensors) => {
      log.push('trainer broadcast');
      calls.tensors.push(tensors);
      rendezvous.broadcasts++;
    },
  };
  return { trainer, rendezvous, calls };
}

const servers: Server[] = [];
after(() => servers.forEach((s) => s.close()));

/** A stand-in that logs `name METHOD path body` and answers `reply(route)`, waiting for the trainer where told. */
async function standIn(
  name: string,
  log: string[],
  rendezvous: Rendezvous,
  reply: (route: string) => Reply,
): Promise<string> {
  const seen = { join: 0, broadcast: 0 };
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    log.push(`${name} ${req.method} ${req.url}${text ? ` ${text}` : ''}`);
    const r = reply(req.url ?? '');
    if (r.waitFor) {
      const k = ++seen[r.waitFor];
      const done = () => (r.waitFor === 'join' ? rendezvous.joined : rendezvous.broadcasts) >= k;
      while (!done()) await new Promise((w) => setTimeout(w, 1));
    }
    res.writeHead(r.status ?? 200, { 'content-type': 'application/json' }).end(JSON.stringify(r.json ?? {}));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const tensors: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', dtype: 'bfloat16', shape: [384, 64] },
  { name: 'model.norm.weight', dtype: 'float32', shape: [64] },
];
const master = { masterAddress: '10.0.0.1', masterPort: 29500, timeoutS: 10 };

/** vLLM with VLLM_SERVER_DEV_MODE=1 and an NCCL weight-transfer engine, `workers` ranks (TP × PP × DP). */
const vllm =
  (workers: number) =>
  (route: string): Reply => {
    if (route === '/get_world_size') return { json: { world_size: workers } };
    if (route === '/init_weight_transfer_engine')
      return { json: { message: 'Weight transfer initialized' }, waitFor: 'join' };
    if (route === '/update_weights') return { json: { message: 'Weights updated' }, waitFor: 'broadcast' };
    return { json: { message: 'ok' } };
  };

test("vLLM's weight-transfer protocol: ranks across two servers, then pause, start, update with the broadcast, finish, resume", async () => {
  const log: string[] = [];
  const { trainer, rendezvous, calls } = fakeTrainer(log);
  const a = await standIn('A', log, rendezvous, vllm(1));
  const b = await standIn('B', log, rendezvous, vllm(2));
  const sync = new NcclWeightSync({ servers: [a, b], protocol: 'vllm', ...master }, trainer);
  await sync.init();
  assert.deepEqual(calls.group, {
    protocol: 'vllm',
    masterAddress: '10.0.0.1',
    masterPort: 29500,
    worldSize: 4,
    groupName: 'weight_update_group',
    backend: 'nccl',
    timeoutS: 10,
  });
  assert.deepEqual(
    new Set(log),
    new Set([
      'A GET /get_world_size',
      'B GET /get_world_size',
      'A POST /init_weight_transfer_engine {"init_info":{"master_address":"10.0.0.1","master_port":29500,"world_size":4,"rank_offset":1}}',
      'B POST /init_weight_transfer_engine {"init_info":{"master_address":"10.0.0.1","master_port":29500,"world_size":4,"rank_offset":2}}',
      'trainer join',
    ]),
  );
  assert.ok(log.indexOf('trainer join') > log.indexOf('B GET /get_world_size'));
  log.length = 0;
  assert.ok((await sync.sync(tensors, '3')) >= 0);
  const update =
    '{"update_info":{"names":["model.embed_tokens.weight","model.norm.weight"],"dtype_names":["bfloat16","float32"],"shapes":[[384,64],[64]],"packed":false}}';
  for (const s of ['A', 'B'])
    assert.deepEqual(
      log.filter((l) => l.startsWith(s)),
      [
        `${s} POST /pause?mode=wait&wait_for_inflight_requests=true {}`,
        `${s} POST /start_weight_update {"is_checkpoint_format":true}`,
        `${s} POST /update_weights ${update}`,
        `${s} POST /finish_weight_update {"weight_version":"3"}`,
        `${s} POST /resume {}`,
      ],
    );
  const at = (l: string) => log.indexOf(l);
  assert.ok(at('trainer broadcast') > at('B POST /start_weight_update {"is_checkpoint_format":true}'));
  assert.ok(at('trainer broadcast') < at('A POST /finish_weight_update {"weight_version":"3"}'));
  assert.deepEqual(calls.tensors, [tensors]);
});

test('a vLLM without /pause and /start_weight_update (the two-call protocol) is updated with /update_weights alone', async () => {
  const log: string[] = [];
  const { trainer, rendezvous } = fakeTrainer(log);
  const old = (route: string): Reply =>
    [
      '/pause?mode=wait&wait_for_inflight_requests=true',
      '/start_weight_update',
      '/finish_weight_update',
      '/resume',
    ].includes(route)
      ? { status: 404, json: { detail: 'Not Found' } }
      : vllm(1)(route);
  const u = await standIn('A', log, rendezvous, old);
  const sync = new NcclWeightSync({ servers: [u], protocol: 'vllm', ...master }, trainer);
  await sync.init();
  await sync.sync(tensors, '1');
  await sync.sync(tensors, '2');
  assert.deepEqual(
    log.filter((l) => l.startsWith('A POST') && !l.includes('init')).map((l) => l.split(' ')[2]),
    ['/pause?mode=wait&wait_for_inflight_requests=true', '/start_weight_update', '/update_weights', '/update_weights'],
  );
});

test('a vLLM without the dev routes: one error naming VLLM_SERVER_DEV_MODE and the weight-transfer config', async () => {
  const log: string[] = [];
  const { trainer, rendezvous } = fakeTrainer(log);
  const u = await standIn('A', log, rendezvous, () => ({ status: 404, json: { detail: 'Not Found' } }));
  const sync = new NcclWeightSync({ servers: [u], protocol: 'vllm', ...master }, trainer);
  await assert.rejects(
    sync.init(),
    (err: Error) =>
      err.message ===
      `rollout: ${u} has no /get_world_size: start vLLM with VLLM_SERVER_DEV_MODE=1 and --weight-transfer-config '{"backend":"nccl"}' for NCCL weight sync`,
  );
});

test("SGLang's protocol: the group from tp_size, update_weights_from_distributed with the broadcast, the version checked", async () => {
  const log: string[] = [];
  const { trainer, rendezvous, calls } = fakeTrainer(log);
  let version = '0';
  const sglang = (route: string): Reply => {
    if (route === '/get_server_info') return { json: { tp_size: 2, dp_size: 1, pp_size: 1 } };
    if (route === '/init_weights_update_group')
      return { json: { success: true, message: 'Succeeded to initialize custom process group.' }, waitFor: 'join' };
    if (route === '/update_weights_from_distributed') {
      version = '5';
      return { json: { success: true, message: 'Succeeded to update parameter online.' }, waitFor: 'broadcast' };
    }
    if (route === '/get_weight_version') return { json: { weight_version: version } };
    return { status: 404 };
  };
  const u = await standIn('S', log, rendezvous, sglang);
  const sync = new NcclWeightSync({ servers: [u], protocol: 'sglang', ...master }, trainer);
  await sync.init();
  await sync.sync(tensors, '5');
  assert.equal(calls.group?.worldSize, 3);
  // The trainer's join and broadcast run concurrently with the server's calls: in either order.
  assert.deepEqual(
    [log[0], new Set(log.slice(1, 3)), new Set(log.slice(3, 5)), log[5], log.length],
    [
      'S GET /get_server_info',
      new Set([
        'S POST /init_weights_update_group {"master_address":"10.0.0.1","master_port":29500,"world_size":3,"rank_offset":1,"group_name":"weight_update_group","backend":"nccl"}',
        'trainer join',
      ]),
      new Set([
        'S POST /update_weights_from_distributed {"names":["model.embed_tokens.weight","model.norm.weight"],"dtypes":["bfloat16","float32"],"shapes":[[384,64],[64]],"group_name":"weight_update_group","flush_cache":true,"abort_all_requests":false,"weight_version":"5"}',
        'trainer broadcast',
      ]),
      'S GET /get_weight_version',
      6,
    ],
  );
  // A failed update stops the run with SGLang's message; a server with dp_size 2 is refused up front.
  const failing = await standIn('F', [], rendezvous, (route) =>
    route === '/update_weights_from_distributed'
      ? { json: { success: false, message: 'Failed to update parameter online: shape mismatch' } }
      : sglang(route),
  );
  const bad = new NcclWeightSync({ servers: [failing], protocol: 'sglang', ...master }, fakeTrainer([]).trainer);
  await bad.init();
  await assert.rejects(
    bad.sync(tensors, '6'),
    /update_weights_from_distributed failed: Failed to update parameter online: shape mismatch/,
  );
  const dp = await standIn('D', [], rendezvous, () => ({ json: { tp_size: 1, dp_size: 2 } }));
  await assert.rejects(
    new NcclWeightSync({ servers: [dp], protocol: 'sglang', ...master }, trainer).init(),
    /runs with dp_size 2; NCCL weight sync to SGLang needs dp_size 1/,
  );
});

test("vLLM's weight transfer (NCCL only) from a trainer on CPUs (gloo) is refused, naming the fix", () => {
  const { trainer } = fakeTrainer([]);
  assert.throws(
    () =>
      new NcclWeightSync({ servers: ['http://127.0.0.1:1'], protocol: 'vllm', backend: 'gloo', ...master }, trainer),
    /rollout\.weightSync: vLLM's weight transfer is NCCL only, .*; run the PyTorch engine on GPUs, or set rollout\.weightSync: disk$/,
  );
});
