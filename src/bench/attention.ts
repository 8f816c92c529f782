// `red bench engine`'s attention rows: causal grouped-query attention (fp32) forward and backward
// over one long sequence with the Qwen2.5-0.5B heads, as GFLOP/s of the causal half, beside
// PyTorch's scaled_dot_product_attention on the CPU measured in the same run (optional: the first
// of python3 and /usr/bin/python3 that imports torch, e.g. Debian's python3-torch).
import { spawnSync } from 'node:child_process';
import type { Backend } from '../engine/backend.ts';
import { Rng } from '../util/rng.ts';
import { loadAvg, round, timeRuns, type Timing } from './timing.ts';

interface AttentionShape {
  L: number;
  NH: number;
  NKV: number;
  HD: number;
}

// PyTorch's attention timed as ours, on as many threads: forward alone, then backward alone after
// an untimed forward. scaled_dot_product_attention where this torch has it, else the math by hand.
const TORCH_ATTENTION = `
import json, sys, time
import torch
import torch.nn.functional as F
L, NH, NKV, HD = (int(x) for x in sys.argv[1:5])
min_reps, min_s, max_reps = int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
torch.manual_seed(0)
q = torch.randn(1, NH, L, HD, requires_grad=True)
k = torch.randn(1, NKV, L, HD, requires_grad=True)
v = torch.randn(1, NKV, L, HD, requires_grad=True)
dout = torch.randn(1, NH, L, HD)
torch.set_num_threads(int(sys.argv[8]))
g = NH // NKV
mask = torch.ones(L, L, dtype=torch.bool).triu(1)
impl = "sdpa" if hasattr(F, "scaled_dot_product_attention") else "math"
def attend():
    if impl == "math":  # torch < 2.0: softmax(q·kᵀ/√d, causal)·v as written by hand
        s = (q @ k.repeat_interleave(g, 1).transpose(-1, -2)) * HD**-0.5
        return torch.softmax(s.masked_fill(mask, float("-inf")), -1) @ v.repeat_interleave(g, 1)
    try:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    except TypeError:  # torch < 2.5: the kv heads repeated (their gradients are summed back)
        return F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1), v.repeat_interleave(g, 1), is_causal=True)
def timed(step, prepare):
    step(prepare())
    times, cpus = [], []
    t0 = time.perf_counter()
    while len(times) < min_reps or (time.perf_counter() - t0 < min_s and len(times) < max_reps):
        arg = prepare()
        t, p = time.perf_counter(), time.process_time()
        step(arg)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - p)
    times.sort()
    return {"best": times[0], "median": times[len(times) // 2], "bestCpu": min(cpus), "reps": len(times)}
def forward(_):
    with torch.no_grad():
        attend()
def fresh():
    q.grad = k.grad = v.grad = None
    return attend()
fwd = timed(forward, lambda: None)
bwd = timed(lambda out: out.backward(dout), fresh)
print(json.dumps({"fwd": fwd, "bwd": bwd, "torch": torch.__version__, "threads": torch.get_num_threads(), "impl": impl}))
`;

interface TorchTiming {
  fwd: Timing;
  bwd: Timing;
  torch: string;
  threads: number;
  /** sdpa: F.scaled_dot_product_attention; math: softmax(q·kᵀ/√d)·v by hand (torch < 2.0). */
  impl: 'sdpa' | 'math';
}

function torchAttention(s: AttentionShape, reps: [number, number, number], threads: number): TorchTiming | string {
  let why = 'no python3 with torch (install python3-torch for this peer)';
  for (const python of ['python3', '/usr/bin/python3']) {
    const args = [s.L, s.NH, s.NKV, s.HD, ...reps, threads].map(String);
    const r = spawnSync(python, ['-c', TORCH_ATTENTION, ...args], { encoding: 'utf8' });
    if (r.error) continue;
    const last = (r.stdout || '').trim().split('\n').pop() ?? '';
    if (r.status === 0 && last.startsWith('{')) return JSON.parse(last) as TorchTiming;
    const err = (r.stderr || '').trim().split('\n').pop() ?? '';
    if (!err.includes('No module named')) why = `torch peer failed under ${python}: ${err}`;
  }
  return why;
}

/** Our forward and backward at one shape: best wall seconds of each. */
function ourAttention(be: Backend, s: AttentionShape, reps: [number, number, number]): { fwd: Timing; bwd: Timing } {
  const { L, NH, NKV, HD } = s;
  const rng = new Rng(L + NH);
  const f32 = (n: number, random: boolean) => {
    const t = be.alloc('f32', n);
    if (random)
      be.upload(
        t,
        Float32Array.from({ length: n }, () => rng.normal()),
      );
    return t;
  };
  const [q, k, v, dout] = [
    f32(L * NH * HD, true),
    f32(L * NKV * HD, true),
    f32(L * NKV * HD, true),
    f32(L * NH * HD, true),
  ];
  const [out, lse, dq, dk, dv] = [
    f32(L * NH * HD, false),
    f32(L * NH, false),
    f32(L * NH * HD, false),
    f32(L * NKV * HD, false),
    f32(L * NKV * HD, false),
  ];
  const cu = be.alloc('i32', 2);
  be.upload(cu, Int32Array.from([0, L]));
  const forward = () => be.attentionForward(out, lse, q, k, v, cu, 1, L, NH, NKV, HD);
  const fwd = timeRuns(forward, ...reps);
  const bwd = timeRuns(() => be.attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, cu, 1, L, NH, NKV, HD), ...reps);
  return { fwd, bwd };
}

/** One row per sequence length: ours and PyTorch's forward/backward GFLOP/s and their ratios. */
export function attentionRows(be: Backend, quick: boolean, emit: (row: Record<string, unknown>) => void): void {
  const reps: [number, number, number] = quick ? [2, 0.3, 5] : [3, 1, 10];
  for (const L of quick ? [2048] : [2048, 4096]) {
    const s: AttentionShape = { L, NH: 14, NKV: 2, HD: 64 };
    const fwdFlops = 2 * L * L * s.HD * s.NH, // the causal half of QKᵀ and PV
      bwdFlops = 2.5 * fwdFlops; // recomputed scores, dP, dV, dK, dQ
    const ours = ourAttention(be, s, reps);
    const torch = torchAttention(s, reps, be.threads);
    const gf = (flops: number, t: Timing) => round(flops / t.best / 1e9);
    const row: Record<string, unknown> = {
      bench: 'attention',
      dtype: 'fp32',
      seq_len: L,
      heads: s.NH,
      kv_heads: s.NKV,
      head_dim: s.HD,
      fwd_gflops: gf(fwdFlops, ours.fwd),
      bwd_gflops: gf(bwdFlops, ours.bwd),
    };
    if (typeof torch === 'string') row.note = `${torch}; peer skipped`;
    else
      Object.assign(row, {
        torch_fwd_gflops: gf(fwdFlops, torch.fwd),
        torch_bwd_gflops: gf(bwdFlops, torch.bwd),
        ratio_fwd: round(torch.fwd.best / ours.fwd.best, 2),
        ratio_bwd: round(torch.bwd.best / ours.bwd.best, 2),
        torch: torch.torch,
        torch_impl: torch.impl,
        torch_threads: torch.threads,
      });
    emit({
      ...row,
      backend: be.name,
      isa: be.isa,
      threads: be.threads,
      load_avg_1m: loadAvg(),
      flops_def: 'forward 2·L²·HD·heads (causal half of QKᵀ and PV); backward 2.5× that; best of reps',
    });
  }
}
