// Reading and writing a model folder in the Hugging Face layout (config.json, model.safetensors
// or shards + index, generation_config.json, tokenizer files). Every tensor is checked against
// the shape config.json implies before any is read, and a folder is saved by writing a sibling
// temporary folder and renaming it into place, so nothing half-written is ever seen.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../util/errors.ts';
import { writeJsonAtomic } from '../util/fs.ts';
import { configToJson, type ModelConfig } from './config.ts';
import type { ParamLayout, ParamSpec } from './params.ts';
import { Checkpoint, writeSafetensors, type SafetensorsFile } from './safetensors.ts';

/**
 * Fails naming the first tensor that holds a NaN or an Inf (a corrupt or diverged checkpoint would
 * otherwise generate one token forever and train with `loss -`). For fp32, `allFinite` (e.g. the
 * model uploading them and taking the backend's Σx², one fast pass) settles the common all-finite
 * case; only otherwise are the values searched. bf16 weights (raw bits) are scanned directly.
 */
export function checkFinite(
  dir: string,
  params: Float32Array | Uint16Array,
  layout: ParamLayout,
  allFinite?: AllFinite,
): void {
  const f32 = params instanceof Float32Array;
  if (f32 && allFinite && allFinite(params)) return;
  const bits = f32 ? new Uint32Array(params.buffer, params.byteOffset, params.length) : params;
  // Exponent all ones: Inf (mantissa 0) or NaN; fp32 and bf16 share the layout, bf16 is the top half.
  const [EXP, MANT, SIGN] = f32 ? [0x7f800000, 0x007fffff, 0x80000000] : [0x7f80, 0x007f, 0x8000];
  for (const spec of layout.specs) {
    for (let i = spec.offset, end = spec.offset + spec.size; i < end; i++) {
      if ((bits[i]! & EXP) >>> 0 !== EXP) continue;
      const what = (bits[i]! & MANT) !== 0 ? 'NaN' : (bits[i]! & SIGN) !== 0 ? '-Inf' : '+Inf';
      fail(
        `${dir}: tensor "${spec.name}" holds ${what} (first at element ${i - spec.offset} of ${spec.size}); the checkpoint is corrupt or from a diverged run: use an earlier checkpoint or the original weights`,
      );
    }
  }
}

/** A fast test that every value of the fp32 parameters is finite (false: search them). */
export type AllFinite = (params: Float32Array) => boolean;

/** Reads every parameter of `layout` from the checkpoint in `dir` into a new flat buffer (checked finite). */
export function readWeights(
  dir: string,
  layout: ParamLayout,
  config: ModelConfig,
  allFinite?: AllFinite,
): Float32Array {
  const params = new Float32Array(layout.total);
  streamWeights(dir, layout, config, 'fp32', (spec, data) => params.set(data, spec.offset));
  checkFinite(dir, params, layout, allFinite);
  return params;
}

/** The same as bf16 bits (BF16 tensors copied as they are, F32/F16 rounded): no fp32 copy. */
export function readWeightsBf16(dir: string, layout: ParamLayout, config: ModelConfig): Uint16Array {
  const params = new Uint16Array(layout.total);
  streamWeights(dir, layout, config, 'bf16', (spec, data) => params.set(data, spec.offset));
  checkFinite(dir, params, layout);
  return params;
}

/**
 * Every parameter of `layout` from the checkpoint in `dir`, one tensor at a time, as fp32 or as
 * bf16 bits: `sink(spec, data)` gets each in a host buffer reused for the next one (so a model is
 * loaded without a host copy of all its weights). Names, shapes and dtypes are checked before any
 * tensor is read; finiteness is the caller's (checkFinite).
 */
export function streamWeights(
  dir: string,
  layout: ParamLayout,
  config: ModelConfig,
  dtype: 'fp32' | 'bf16',
  sink: (spec: ParamSpec, data: Float32Array | Uint16Array) => void,
): void {
  const largest = layout.specs.reduce((n, spec) => Math.max(n, spec.size), 0);
  if (dtype === 'bf16') {
    const buf = new Uint16Array(largest);
    readCheckedWeights(dir, layout, config, buf, (file, name, dst) => file.readIntoBf16(name, dst), sink);
  } else {
    const buf = new Float32Array(largest);
    readCheckedWeights(dir, layout, config, buf, (file, name, dst) => file.readInto(name, dst), sink);
  }
}

function readCheckedWeights<B extends Float32Array | Uint16Array>(
  dir: string,
  layout: ParamLayout,
  config: ModelConfig,
  buf: B,
  readInto: (file: SafetensorsFile, name: string, dst: B) => void,
  sink: (spec: ParamSpec, data: B) => void,
): void {
  const ckpt = Checkpoint.open(dir);
  try {
    // Check names and shapes of everything first: a bad checkpoint fails before any allocation.
    for (const spec of layout.specs) {
      const found = ckpt.find(spec.name);
      if (!found)
        fail(
          `${path.join(dir, 'model.safetensors')}: missing tensor "${spec.name}" (config.json: ${config.modelType}, ${config.numLayers} layers${config.tieWordEmbeddings ? ', tied embeddings' : ''})`,
        );
      const { file, entry } = found;
      if (entry.shape.length !== spec.shape.length || entry.shape.some((d, i) => d !== spec.shape[i])) {
        fail(
          `${file.file}: tensor "${spec.name}" has shape [${entry.shape.join(', ')}] but config.json implies [${spec.shape.join(', ')}]`,
        );
      }
      if (entry.dtype !== 'F32' && entry.dtype !== 'BF16' && entry.dtype !== 'F16')
        fail(`${file.file}: tensor "${spec.name}" is ${entry.dtype}, expected a float tensor`);
    }
    for (const name of ckpt.names()) {
      if (layout.byName.has(name)) continue;
      if (name.endsWith('rotary_emb.inv_freq')) continue; // recomputed from rope_theta
      if (name === 'lm_head.weight' && config.tieWordEmbeddings) continue; // tied: the embedding is the head
      fail(`${ckpt.find(name)?.file.file}: unexpected tensor "${name}" (config.json describes a model without it)`);
    }
    for (const spec of layout.specs) {
      const data = buf.subarray(0, spec.size) as B;
      readInto(ckpt.find(spec.name)!.file, spec.name, data);
      sink(spec, data);
    }
  } finally {
    ckpt.close();
  }
}

/** Files of a model folder that save() regenerates instead of copying. */
function isRegenerated(name: string): boolean {
  return (
    name === 'config.json' ||
    name === 'generation_config.json' ||
    name.endsWith('.safetensors') ||
    name === 'model.safetensors.index.json' ||
    name.endsWith('.bin') ||
    name.endsWith('.pt') ||
    name.endsWith('.pth') ||
    name.startsWith('.')
  );
}

export interface SaveContents {
  config: ModelConfig;
  layout: ParamLayout;
  /** fp32, or bf16 bits (written as BF16). */
  params: Float32Array | Uint16Array;
  /** generation_config.json's object (kept from the loaded folder, or made from the config). */
  generationConfig: Record<string, unknown>;
  /** The folder the model was loaded from: its tokenizer and other files are copied along. */
  sourceDir: string | null;
}

/**
 * Writes `dir` as a folder transformers loads: config.json, model.safetensors (F32 or BF16, Hugging Face
 * names, no lm_head.weight when tied), generation_config.json and the source folder's other files.
 * The whole folder is replaced atomically.
 */
export function writeModelDir(dir: string, s: SaveContents): void {
  const target = path.resolve(dir);
  const tmp = `${target}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  try {
    if (s.sourceDir && existsSync(s.sourceDir)) {
      for (const name of readdirSync(s.sourceDir)) {
        const src = path.join(s.sourceDir, name);
        if (!isRegenerated(name) && statSync(src).isFile()) copyFileSync(src, path.join(tmp, name));
      }
    }
    writeJsonAtomic(
      path.join(tmp, 'config.json'),
      configToJson(s.config, s.params instanceof Uint16Array ? 'bfloat16' : 'float32'),
    );
    writeJsonAtomic(path.join(tmp, 'generation_config.json'), s.generationConfig);
    writeSafetensors(
      path.join(tmp, 'model.safetensors'),
      s.layout.specs.map((p) => ({
        name: p.name,
        shape: p.shape,
        data: s.params.subarray(p.offset, p.offset + p.size),
      })),
    );
    if (existsSync(target)) {
      const old = `${target}.old-${process.pid}`;
      renameSync(target, old);
      renameSync(tmp, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      mkdirSync(path.dirname(target), { recursive: true });
      renameSync(tmp, target);
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** generation_config.json of `dir` if present, else one made from the config's token ids. */
export function readGenerationConfig(dir: string, config: ModelConfig): Record<string, unknown> {
  const file = path.join(dir, 'generation_config.json');
  if (existsSync(file)) {
    try {
      const json: unknown = JSON.parse(readFileSync(file, 'utf8'));
      if (typeof json === 'object' && json !== null && !Array.isArray(json)) return json as Record<string, unknown>;
    } catch {
      /* fall through: an unreadable generation config is reported below */
    }
    fail(`${file}: not a JSON object`);
  }
  return defaultGenerationConfig(config);
}

export function defaultGenerationConfig(config: ModelConfig): Record<string, unknown> {
  const g: Record<string, unknown> = {};
  if (config.bosTokenId !== null) g.bos_token_id = config.bosTokenId;
  if (config.eosTokenId !== null) g.eos_token_id = config.eosTokenId;
  return g;
}
