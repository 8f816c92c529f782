// Where a set of runs was measured, recorded beside its results: the CPU, the kernels the engine
// chose on it (AMX or not) and its threads. The same seed on another CPU gives other numbers (the
// kernels sum in another order, and a pretrained base drifts with them), so a table names its
// machine, and the base model's checksum says whether two tables started from the same weights.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Backend } from '../engine/backend.ts';

export interface MachineInfo {
  /** The CPU's model name as the OS reports it. */
  cpu: string;
  logicalCpus: number;
  /** The engine's backend ("native" or "reference") and the kernel set it dispatched to. */
  backend: string;
  isa: string;
  /** The native engine's bf16 kernels ("avx512_bf16+amx", "avx512_bf16", "fp32 fallback"); null on reference. */
  bf16Isa: string | null;
  /** Whether the engine runs GEMMs on AMX tiles here. */
  amx: boolean;
  threads: number;
  node: string;
}

export function machineInfo(backend: Backend): MachineInfo {
  const cpus = os.cpus();
  const bf16Isa = (backend as { bf16Isa?: string }).bf16Isa ?? null;
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    logicalCpus: os.availableParallelism(),
    backend: backend.name,
    isa: backend.isa,
    bf16Isa,
    amx: bf16Isa !== null && bf16Isa.includes('amx'),
    threads: backend.threads,
    node: process.version,
  };
}

/** One line for a report's notes. */
export function machineLine(m: MachineInfo): string {
  const bf16 = m.bf16Isa === null ? '' : `, bf16 kernels ${m.bf16Isa}`;
  return `${m.cpu} (${m.logicalCpus} logical CPUs); engine ${m.backend} ${m.isa}${bf16}, ${m.amx ? 'AMX' : 'no AMX'}, ${m.threads} thread${m.threads === 1 ? '' : 's'}; Node ${m.node}`;
}

/** SHA-256 of a file, hex. */
export function sha256File(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}
