// saveState / loadState's files for the in-process engines, in the one format every engine shares
// (documented on TrainingEngine): parameters and AdamW moments per tensor under Hugging Face names,
// fp32, the optimiser's step in the file's metadata. Also reads red train's version-2 checkpoints,
// whose state was flat arrays in the native parameter layout (`params`; `m`, `v`, `step`).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { SafetensorsFile, writeSafetensors } from '../../model/safetensors.ts';
import { fail } from '../../util/errors.ts';
import { MASTER_WEIGHTS_FILE, optimizerStateFile, type SaveStateOptions } from '../engine.ts';

/** The tensors a state file holds, in the engine's flat order (a ParamLayout fits). */
export interface StateLayout {
  specs: readonly { name: string; shape: number[]; offset: number; size: number }[];
  total: number;
}

/** An optimiser's state on the host: the step and the flat moments. */
export interface MomentState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** Version-2 checkpoints named their optimisers by file; these are the names they now have. */
const LEGACY_OPTIMIZER_FILES: Record<string, string> = {
  policy: 'optimizer.safetensors',
  sft: 'sft_optimizer.safetensors',
};

const tensorsOf = (layout: StateLayout, flat: Float32Array, suffix = '') =>
  layout.specs.map((s) => ({
    name: s.name + suffix,
    shape: s.shape,
    data: flat.subarray(s.offset, s.offset + s.size),
  }));

/** Writes master.safetensors (unless opts.master is false) and optimizer-NAME.safetensors per optimiser. */
export function writeState(
  dir: string,
  layout: StateLayout,
  params: () => Float32Array,
  optimizers: Iterable<[string, () => MomentState]>,
  opts: SaveStateOptions = {},
): void {
  if (opts.master !== false) writeSafetensors(path.join(dir, MASTER_WEIGHTS_FILE), tensorsOf(layout, params()));
  for (const [name, state] of optimizers) {
    const s = state();
    writeSafetensors(
      path.join(dir, optimizerStateFile(name)),
      [...tensorsOf(layout, s.m, '.exp_avg'), ...tensorsOf(layout, s.v, '.exp_avg_sq')],
      { format: 'pt', step: String(s.step) },
    );
  }
}

/** The parameters of dir's master.safetensors (per tensor, or a version-2 flat `params`); null when it has none. */
export function readMasterState(dir: string, layout: StateLayout): Float32Array | null {
  const file = path.join(dir, MASTER_WEIGHTS_FILE);
  if (!existsSync(file)) return null;
  return readFlat(file, layout, [['', 'params']]).params;
}

/** The optimiser `name`'s state in dir (optimizer-NAME.safetensors, or a version-2 file); null when absent. */
export function readOptimizerState(dir: string, name: string, layout: StateLayout): MomentState | null {
  const file = path.join(dir, optimizerStateFile(name));
  if (existsSync(file)) {
    const f = readFlat(file, layout, [
      ['.exp_avg', 'm'],
      ['.exp_avg_sq', 'v'],
    ]);
    return { step: f.step ?? fail(`${file}: no "step" in the header's metadata`), m: f.m, v: f.v };
  }
  const legacy = LEGACY_OPTIMIZER_FILES[name];
  if (legacy === undefined || !existsSync(path.join(dir, legacy))) return null;
  const f = readFlat(path.join(dir, legacy), layout, [
    ['', 'm'],
    ['', 'v'],
  ]);
  return { step: f.step ?? fail(`${path.join(dir, legacy)}: no step`), m: f.m, v: f.v };
}

/**
 * Reads one flat array per (suffix, flatName): the per-tensor form `<name><suffix>` for every
 * tensor of the layout, or the version-2 form, one tensor `flatName` of layout.total elements.
 * Names, shapes and dtypes are checked before anything is read.
 */
function readFlat(
  file: string,
  layout: StateLayout,
  parts: [suffix: string, flatName: string][],
): Record<string, Float32Array> & { step?: number } {
  const f = new SafetensorsFile(file);
  try {
    const legacy = parts.every(([, flat]) => f.entries.has(flat));
    const out: Record<string, Float32Array> & { step?: number } = {};
    const metaStep = f.metadata.step;
    if (metaStep !== undefined) out.step = checkedStep(file, Number(metaStep));
    for (const [suffix, flat] of parts) {
      const dst = new Float32Array(layout.total);
      if (legacy) readLegacyTensor(f, flat, dst);
      else
        for (const s of layout.specs) {
          const e = f.entries.get(s.name + suffix);
          if (!e)
            fail(
              `${file}: missing tensor "${s.name + suffix}"; the checkpoint belongs to another model (or is cut short)`,
            );
          if (e.dtype !== 'F32' || e.shape.join(',') !== s.shape.join(','))
            fail(
              `${file}: tensor "${s.name + suffix}" is ${e.dtype} [${e.shape.join(', ')}], the model needs F32 [${s.shape.join(', ')}]; the checkpoint belongs to another model`,
            );
          f.readInto(s.name + suffix, dst.subarray(s.offset, s.offset + s.size));
        }
      out[flat] = dst;
    }
    if (legacy && f.entries.has('step')) {
      const step = new Float32Array(1);
      f.readInto('step', step);
      out.step = checkedStep(file, step[0]);
    }
    return out;
  } finally {
    f.close();
  }
}

function readLegacyTensor(f: SafetensorsFile, name: string, dst: Float32Array): void {
  const e = f.entry(name);
  const count = e.shape.reduce((a, b) => a * b, 1);
  if (e.dtype !== 'F32' || count !== dst.length)
    fail(
      `${f.file}: "${name}" has ${count} ${e.dtype} values, the model ${dst.length} parameters; it belongs to another model`,
    );
  f.readInto(name, dst);
}

function checkedStep(file: string, step: number): number {
  if (!Number.isInteger(step) || step < 0)
    fail(`${file}: the optimiser step must be a non-negative integer, got ${step}`);
  return step;
}
