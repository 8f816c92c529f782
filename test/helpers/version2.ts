// A checkpoint's engine state rewritten as red train wrote it before the training-engine contract
// (trainer state version 2): flat arrays in the native parameter layout, `params` in
// master.safetensors, `m`, `v` and `step` in optimizer.safetensors (the policy's) and
// sft_optimizer.safetensors (ReLIFT's).
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { ParamLayout } from '../../src/model/params.ts';
import { SafetensorsFile, writeSafetensors } from '../../src/model/safetensors.ts';

/** Reads `from`'s per-tensor state files and writes their version-2 form into `to` (which may be `from`: the per-tensor optimiser files are then removed). */
export function writeVersion2State(from: string, to: string, layout: ParamLayout): void {
  const flat = (file: string, suffix: string) => {
    const f = new SafetensorsFile(path.join(from, file));
    const a = new Float32Array(layout.total);
    for (const spec of layout.specs) a.set(f.readFloat(spec.name + suffix), spec.offset);
    const step = Number(f.metadata.step);
    f.close();
    return { data: a, step };
  };
  const t = (name: string, data: Float32Array) => ({ name, shape: [data.length], data });
  writeSafetensors(path.join(to, 'master.safetensors'), [t('params', flat('master.safetensors', '').data)]);
  for (const [name, legacy] of [
    ['policy', 'optimizer.safetensors'],
    ['sft', 'sft_optimizer.safetensors'],
  ]) {
    const file = `optimizer-${name}.safetensors`;
    if (!existsSync(path.join(from, file))) continue;
    const m = flat(file, '.exp_avg');
    const v = flat(file, '.exp_avg_sq');
    writeSafetensors(path.join(to, legacy), [t('m', m.data), t('v', v.data), t('step', new Float32Array([m.step]))]);
    if (from === to) rmSync(path.join(from, file));
  }
}
