// Timing shared by the engine benches: one warm-up, then best and median wall time of the runs,
// and the least process CPU time of a run (a kernel's efficiency when the machine is shared).
import { loadavg } from 'node:os';

export const now = () => performance.now() / 1000;
export const round = (x: number, digits = 1) => +x.toFixed(digits);
export const loadAvg = () => round(loadavg()[0], 2);

/** Process CPU seconds (every thread), to see a kernel's efficiency when the machine is shared. */
export const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

export interface Timing {
  best: number;
  median: number;
  bestCpu: number;
  reps: number;
}

/**
 * Runs `fn` once to warm up, then until `minReps` runs and `minSeconds` have passed (≤ maxReps).
 * best/median are wall seconds; bestCpu the least process CPU time of a run.
 */
export function timeRuns(fn: () => void, minReps: number, minSeconds: number, maxReps: number): Timing {
  fn();
  const times: number[] = [],
    cpus: number[] = [];
  const t0 = now();
  while (times.length < minReps || (now() - t0 < minSeconds && times.length < maxReps)) {
    const t = now(),
      c = cpuSeconds();
    fn();
    times.push(now() - t);
    cpus.push(cpuSeconds() - c);
  }
  times.sort((a, b) => a - b);
  return {
    best: times[0],
    median: times[Math.floor(times.length / 2)],
    bestCpu: Math.min(...cpus),
    reps: times.length,
  };
}
