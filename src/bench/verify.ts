// `red bench verify`: the answer verifier's speed with the CAS pool warm — comparisons per second on
// a mix (plain numbers, fractions, symbolic, sets, and Math-Verify's other forms: unboxed answers,
// relations, labels, matrices), on plain numeric pairs alone (the main-thread fast path), and the
// mix's latency one comparison at a time (median, p90, worst) against the timeout. One JSON line
// per figure.
import type { BenchOptions } from './options.ts';
import { Rng } from '../util/rng.ts';
import { closeVerifier, verifyBatch, verify, warmVerifier, DEFAULT_TIMEOUT_MS } from '../reward/index.ts';
import { availableParallelism } from 'node:os';

interface Pair {
  gold: string;
  pred: string;
  kind: 'number' | 'fraction' | 'symbolic' | 'set' | 'form';
}

function emit(fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ bench: 'verify', ...fields }));
}

function box(s: string): string {
  return `Reasoning ... so the answer is $\\boxed{${s}}$.`;
}

function numberPair(rng: Rng): Pair {
  const n = rng.int(100000) - 50000;
  const k = rng.int(4);
  // Integers as the AMC files write them (142.0), decimals, and near misses.
  if (k === 0) return { gold: `${n}.0`, pred: box(String(n)), kind: 'number' };
  if (k === 1) return { gold: String(n), pred: box(String(n + 1)), kind: 'number' };
  if (k === 2) return { gold: (n / 8).toString(), pred: box((n / 8).toFixed(3)), kind: 'number' };
  return { gold: String(n), pred: box(n.toLocaleString('en-US')), kind: 'number' };
}

function fractionPair(rng: Rng): Pair {
  const a = 1 + rng.int(50);
  const b = 2 + rng.int(50);
  const k = rng.int(3);
  if (k === 0) return { gold: `\\frac{${a}}{${b}}`, pred: box(`\\dfrac{${2 * a}}{${2 * b}}`), kind: 'fraction' };
  if (k === 1) return { gold: `\\frac{${a}}{${b}}`, pred: box((a / b).toFixed(6)), kind: 'fraction' };
  return { gold: `\\frac{\\sqrt{${a}}}{${b}}`, pred: box(`\\frac{${a}}{${b}\\sqrt{${a}}}`), kind: 'fraction' };
}

function symbolicPair(rng: Rng): Pair {
  const a = 1 + rng.int(9);
  const k = rng.int(3);
  if (k === 0) return { gold: `x^2+${2 * a}x+${a * a}`, pred: box(`(x+${a})^2`), kind: 'symbolic' };
  if (k === 1) return { gold: `${a}\\sqrt{${a + 1}}`, pred: box(`\\sqrt{${a * a * (a + 1)}}`), kind: 'symbolic' };
  return { gold: `\\frac{n(n+${a})}{2}`, pred: box(`\\frac{n^2+${a}n}{2}`), kind: 'symbolic' };
}

function setPair(rng: Rng): Pair {
  const xs = [rng.int(20), 20 + rng.int(20), 40 + rng.int(20)];
  const k = rng.int(2);
  if (k === 0)
    return { gold: `\\{${xs.join(',')}\\}`, pred: box(`\\{${[...xs].reverse().join(', ')}\\}`), kind: 'set' };
  return { gold: `(${xs[0]},${xs[1]})`, pred: box(`\\left(${xs[0]}, ${xs[1]}\\right)`), kind: 'set' };
}

/** Math-Verify's other answer forms: no box, display math, relations, labels, matrices. */
function formPair(rng: Rng): Pair {
  const a = 2 + rng.int(20);
  const b = 1 + rng.int(9);
  switch (rng.int(6)) {
    case 0:
      return { gold: String(a), pred: `Checking each case, the largest $n$ is ${a}.`, kind: 'form' };
    case 1:
      return { gold: `\\frac{${b}}{${a}}`, pred: `Therefore\n\\[ x = \\frac{${2 * b}}{${2 * a}} \\]`, kind: 'form' };
    case 2:
      return { gold: `x < ${a}`, pred: box(`-x > -${a}`), kind: 'form' };
    case 3:
      return { gold: `${b}x+${a}y-${a * b}=0`, pred: box(`y = -\\frac{${b}x}{${a}} + ${b}`), kind: 'form' };
    case 4:
      return { gold: `(${a},${b})`, pred: box(`(p,q) = (${a},${b})`), kind: 'form' };
    default:
      return {
        gold: `\\begin{pmatrix}${a}&${b}\\\\0&1\\end{pmatrix}`,
        pred: box(`\\begin{bmatrix}${a}&${b}\\\\0&1\\end{bmatrix}`),
        kind: 'form',
      };
  }
}

function mix(rng: Rng, n: number): Pair[] {
  const makers = [numberPair, fractionPair, symbolicPair, setPair, formPair];
  return Array.from({ length: n }, (_, i) => makers[i % makers.length](rng));
}

async function throughput(pairs: Pair[]): Promise<{ perS: number; seconds: number; equal: number }> {
  const t = performance.now();
  const rs = await verifyBatch(pairs.map((p) => ({ gold: p.gold, pred: p.pred })));
  const seconds = (performance.now() - t) / 1000;
  return { perS: pairs.length / seconds, seconds, equal: rs.filter((r) => r.equal).length };
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

export async function run(opts: BenchOptions): Promise<void> {
  const rng = new Rng(2024);
  const nMix = opts.quick ? 400 : 2000;
  const nNum = opts.quick ? 5000 : 20000;
  const workers = availableParallelism();
  try {
    await warmVerifier();
    // Warm-up: the first comparisons of each worker also warm the engine's caches.
    await throughput(mix(rng, 100));

    const m = await throughput(mix(rng, nMix));
    emit({
      figure: 'mix',
      unit: 'comparisons/s',
      value: round(m.perS),
      n: nMix,
      seconds: round(m.seconds, 2),
      equal: m.equal,
      workers,
      kinds: 'number,fraction,symbolic,set,form',
    });

    const numeric = Array.from({ length: nNum }, () => numberPair(rng));
    const p = await throughput(numeric);
    emit({
      figure: 'numeric',
      unit: 'comparisons/s',
      value: round(p.perS),
      n: nNum,
      seconds: round(p.seconds, 2),
      equal: p.equal,
      target: 2000,
    });

    // One at a time, so each latency is the comparison's own (no queueing behind the batch).
    let slowest = { ms: 0, gold: '', pred: '' };
    const lat: number[] = [];
    for (const pair of mix(rng, opts.quick ? 100 : 400)) {
      const t = performance.now();
      await verify(pair.gold, pair.pred);
      const ms = performance.now() - t;
      lat.push(ms);
      if (ms > slowest.ms) slowest = { ms, gold: pair.gold, pred: pair.pred };
    }
    lat.sort((a, b) => a - b);
    emit({
      figure: 'mix_latency',
      unit: 'ms',
      value: round(lat[Math.floor(lat.length / 2)], 2),
      median_ms: round(lat[Math.floor(lat.length / 2)], 2),
      p90_ms: round(lat[Math.floor(lat.length * 0.9)], 2),
      worst_ms: round(slowest.ms, 1),
      n: lat.length,
    });
    emit({
      figure: 'slowest',
      unit: 'ms',
      value: round(slowest.ms),
      median_ms: round(lat[Math.floor(lat.length / 2)], 2),
      timeout_ms: DEFAULT_TIMEOUT_MS,
      under_timeout: slowest.ms < DEFAULT_TIMEOUT_MS,
      gold: slowest.gold,
      n: lat.length,
    });
  } finally {
    await closeVerifier();
  }
}
