// Whether a job's memory fits the machine, checked before anything large is allocated: a setting
// that cannot fit (rollout.groupSize 1e9, a response limit of 1e9 tokens) gets one line with the
// estimate and its largest parts instead of a process that grows until the system kills it.
import { totalmem } from 'node:os';
import { fail } from './errors.ts';

/** The memory this process may use: the machine's, or its cgroup's limit when lower. */
export function machineMemory(): number {
  const limit = typeof process.constrainedMemory === 'function' ? process.constrainedMemory() : 0;
  const total = totalmem();
  return limit !== undefined && limit > 0 && limit < total ? limit : total;
}

/** "1.5 GiB", "512 MiB", "3.2 TiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 || i === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`;
}

/** "494.0M", "1.5B", "8192": a count for messages. */
export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  return String(n);
}

/** One part of an estimate: what it is ("the KV cache of 64 sequences × 9216 positions"), its bytes and the settings that size it. */
export interface MemoryPart {
  what: string;
  bytes: number;
  /** What to lower when this part is the largest ("rollout.maxTokens"). */
  sizedBy?: string;
}

/**
 * Fails in one line when the parts add up to more than the machine has: "`who` needs at least
 * 7.3 TiB (parts, largest first) but this machine has 23.5 GiB; lower <the largest part's settings>".
 */
export function checkMemoryFits(who: string, parts: readonly MemoryPart[], available = machineMemory()): void {
  const total = parts.reduce((a, p) => a + p.bytes, 0);
  if (total <= available) return; // NaN (an overflowing product) does not pass either
  const sorted = [...parts].filter((p) => p.bytes > 0).sort((a, b) => b.bytes - a.bytes);
  const shown = sorted.map((p) => `${p.what}: ${formatBytes(p.bytes)}`);
  const fix = sorted[0]?.sizedBy ? `lower ${sorted[0].sizedBy}` : 'choose smaller settings or a smaller model';
  fail(
    `${who} needs at least ${formatBytes(total)} (${shown.join('; ')}) but this machine has ${formatBytes(available)}; ${fix}`,
  );
}
