// The configuration of `red train`: ONE typed source of truth (TRL GRPOConfig style). Every option
// is declared once here with its default and its documentation; YAML files and `--set` only
// override. Validation happens once, before anything runs, and lists every problem by path.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { BF16_BACKWARDS, DEFAULT_BF16_BACKWARD } from '../engine/precision.ts';
import { parseHubId } from '../hub/id.ts';
import { z } from 'zod';
import YAML from 'yaml';
import {
  AlgorithmOptionsSchema,
  mergeOverrides,
  PRESET_NAMES,
  PRESETS,
  type AlgorithmOptions,
  type PresetName,
} from '../rl/options.ts';
import { fail } from '../util/errors.ts';
import { ADAMW_DEFAULTS, type EngineSettings } from './engine.ts';

const positiveInt = () => z.number().int().min(1);

export const modelSchema = z.strictObject({
  path: z
    .string()
    .min(1)
    .describe('Hugging Face model folder to start from (config.json, model.safetensors, tokenizer.json).'),
  referencePath: z
    .string()
    .min(1)
    .optional()
    .describe(
      'Frozen reference model for the KL term (loaded only when the KL coefficient is above 0); default: model.path.',
    ),
});

export const engineSchema = z.strictObject({
  kind: z
    .enum(['native', 'torch'])
    .default('native')
    .describe(
      "The training engine behind the policy's compute: 'native' (this process, the CPU engine) or 'torch' (PyTorch processes: DDP / FSDP2 on GPUs or CPU ranks).",
    ),
  devices: positiveInt()
    .default(1)
    .describe('torch: GPUs per node (CPU ranks where there is no GPU). native: ignored.'),
  python: z
    .string()
    .min(1)
    .optional()
    .describe('torch: the Python interpreter to start; default the first python3 on PATH that imports torch.'),
  strategy: z
    .enum(['ddp', 'fsdp'])
    .default('ddp')
    .describe("torch: 'ddp' for models that fit one device, 'fsdp' (FSDP2 fully_shard) for the rest."),
  precision: z
    .enum(['fp32', 'bf16'])
    .default('fp32')
    .describe(
      'bf16: mixed precision, the GEMMs on a bf16 copy of the fp32 master weights (fp32 accumulation); gradients, AdamW moments, norms, softmax and the loss head stay fp32.',
    ),
  activationCheckpointing: z
    .boolean()
    .default(false)
    .describe(
      "Keep only each layer's input in forward and recompute the layer in backward: activations of about T·hidden floats per layer instead of ~T·(6·hidden + 2·intermediate), for one more forward per step.",
    ),
  backend: z
    .enum(['auto', 'native', 'reference'])
    .default('auto')
    .describe(
      'native: the compute backend, the C++ addon when built (auto) or the TypeScript reference. torch: ignored.',
    ),
  bf16Backward: z
    .enum(BF16_BACKWARDS)
    .default(DEFAULT_BF16_BACKWARD)
    .describe(
      "native, precision bf16: how each linear layer's backward feeds dout and its input to the bf16 GEMMs: 'round' them to bf16 (the usual mixed precision), or 'split' each into a bf16 hi+lo pair (as accurate as fp32 products, 2.5× the bf16 GEMM work: a ~25% slower step). Ignored in fp32.",
    ),
});

export const dataSchema = z.strictObject({
  train: z.string().min(1).describe('Training set: a .jsonl or .parquet file.'),
  fields: z
    .string()
    .min(1)
    .default('paper')
    .describe(
      "Field mapping: 'paper' (problem/answer/distill), 'luffy' (LUFFY's OpenR1: prompt, reward_model.ground_truth, target), or 'problem=PATH,answer=PATH,trace=PATH'.",
    ),
  onBadRow: z
    .enum(['error', 'skip'])
    .default('error')
    .describe(
      "A malformed row: 'error' stops naming the file and row; 'skip' drops it and counts it in data/skipped_rows.",
    ),
  maxPromptTokens: positiveInt()
    .default(1024)
    .describe('Longer prompts are passed over when drawn (each time counted in data/skipped_prompts).'),
  maxRowBytes: positiveInt()
    .default(1_000_000)
    .describe(
      'Rows longer than this many bytes are skipped unread when the data loads, as are rows that are not UTF-8 (counted in data/skipped_rows, with one warning).',
    ),
  epochs: z
    .number()
    .positive()
    .default(5)
    .describe(
      'Passes over the training set in RL stages (sets the planned number of steps; SFT stages use sft.epochs).',
    ),
});

export const rolloutSchema = z
  .strictObject({
    groupSize: z
      .number()
      .int()
      .min(2, 'must be ≥ 2')
      .default(7)
      .describe('G: online rollouts per prompt (the offline trace is an extra member).'),
    promptsPerStep: positiveInt().default(64).describe('Groups per optimiser step (prompts drawn per rollout batch).'),
    temperature: z.number().min(0).default(1.0).describe('Sampling temperature.'),
    topP: z.number().gt(0).max(1).default(1.0).describe('Nucleus sampling threshold (1 = off).'),
    topK: z.number().int().min(0).default(0).describe('Top-k sampling (0 = off).'),
    maxTokens: positiveInt()
      .default(8192)
      .describe('Response limit in tokens; offline traces are truncated to it too.'),
    stopStrings: z.array(z.string()).default([]).describe('Extra stop strings (the tokenizer EOS tokens always stop).'),
    engine: z
      .enum(['local', 'engine', 'remote'])
      .default('local')
      .describe(
        "Where rollouts are generated: 'local' (this process's CPU sampler on the native engine's own weights; refused with engine.kind torch, whose weights live in its Python processes), 'engine' (the training engine's own sampling: the way to run end to end with PyTorch but no vLLM/SGLang; slow) or 'remote' (rollout.servers: red serve, SGLang or vLLM).",
      ),
    servers: z
      .array(z.string().url())
      .default([])
      .describe('Remote: base URLs of the inference servers, e.g. [http://127.0.0.1:8000].'),
    api: z
      .enum(['openai', 'sglang'])
      .default('openai')
      .describe(
        "Remote: 'openai' = POST /v1/completions (token ids in, token_ids + logprobs out); 'sglang' = SGLang's native POST /generate.",
      ),
    syncDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Remote: a folder every server can read; the policy is written there after each optimiser step and loaded by POST /update_weights_from_disk (default: OUT/rollout-weights).',
      ),
    syncDtype: z
      .enum(['bf16', 'fp32'])
      .default('bf16')
      .describe(
        "Remote: the dtype of the synced weights. bf16 halves the bytes written and loaded each step; the servers then sample from bf16-rounded weights (see rollout/logprob_diff and algorithm.rolloutCorrection). fp32 gives the servers the trainer's exact weights.",
      ),
    weightSync: z
      .enum(['disk', 'nccl'])
      .default('disk')
      .describe(
        "Remote: how the servers get the policy after each step. 'disk': a folder under rollout.syncDir and POST /update_weights_from_disk (red serve, SGLang, red-vllm). 'nccl': the PyTorch engine's rank 0 broadcasts every tensor to the servers' workers (rollout.api openai: vLLM's weight-transfer routes; sglang: /init_weights_update_group + /update_weights_from_distributed); needs engine.kind torch and rollout.nccl.",
      ),
    nccl: z
      .strictObject({
        address: z
          .string()
          .min(1)
          .default('127.0.0.1')
          .describe("weightSync nccl: an address of the trainer's rank 0 that every server can reach."),
        port: z
          .number()
          .int()
          .min(0)
          .max(65535)
          .default(0)
          .describe("weightSync nccl: the group's port on that host (0: a free one, chosen at start)."),
      })
      .prefault({}),
    maxAttempts: positiveInt()
      .default(3)
      .describe('Remote: tries per prompt, on different servers, before the step fails.'),
    requestTimeoutS: z.number().positive().default(600).describe('Remote: seconds one generation request may take.'),
    async: z
      .boolean()
      .default(false)
      .describe(
        "Remote: generate step k+1's rollouts while step k trains (one step off-policy; see rollout/version_lag, and use algorithm.rolloutCorrection).",
      ),
  })
  .superRefine((r, ctx) => {
    if (r.async && r.engine !== 'remote')
      ctx.addIssue({
        code: 'custom',
        path: ['async'],
        message: "needs rollout.engine remote (local rollouts share the trainer's CPU)",
      });
    if (r.engine === 'remote' && r.servers.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['servers'],
        message: 'must list at least one server URL when rollout.engine is remote',
      });
  });

export const optimSchema = z.strictObject({
  lr: z
    .number()
    .positive()
    .default(2e-6)
    .describe(
      'Peak learning rate of RL stages (algorithm.lrScale multiplies it, e.g. luffy 0.5 = RED-SPEC 1e-6 vs 2e-6).',
    ),
  beta1: z.number().min(0).lt(1).default(ADAMW_DEFAULTS.beta1).describe('AdamW β1.'),
  beta2: z.number().min(0).lt(1).default(ADAMW_DEFAULTS.beta2).describe('AdamW β2.'),
  eps: z.number().positive().default(ADAMW_DEFAULTS.eps).describe('AdamW ε.'),
  weightDecay: z.number().min(0).default(ADAMW_DEFAULTS.weightDecay).describe('AdamW decoupled weight decay.'),
  maxGradNorm: z.number().min(0).default(1.0).describe('Clip the global gradient norm to this (0 = no clipping).'),
  updatesPerBatch: positiveInt()
    .default(1)
    .describe('Optimiser steps on each rollout batch (>1: the PPO clip matters).'),
  microBatchTokens: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe(
      'Token budget of one forward/backward; the step accumulates gradients over micro-batches (0 = whole batch at once).',
    ),
});

export const scheduleSchema = z.strictObject({
  warmupSteps: z.number().int().min(0).default(1).describe('Linear warm-up steps.'),
  minLrRatio: z.number().min(0).max(1).default(0.1).describe('Cosine decays to this fraction of the peak lr.'),
  totalSteps: positiveInt()
    .optional()
    .describe(
      'Planned optimiser steps of each stage; default: epochs × training set / (promptsPerStep, or sft.batchSize for SFT stages).',
    ),
});

export const sftSchema = z.strictObject({
  lr: z
    .number()
    .positive()
    .default(5e-5)
    .describe('Peak learning rate of SFT stages (objective nll: the sft method, the first stage of sft-grpo).'),
  epochs: z.number().positive().default(3).describe('Passes over the traces in an SFT stage.'),
  batchSize: positiveInt().default(64).describe('Traces per SFT optimiser step.'),
});

export const checkpointSchema = z.strictObject({
  every: positiveInt()
    .default(50)
    .describe('Write a checkpoint every this many steps (and at the end, on --max-steps and on Ctrl-C).'),
  keep: positiveInt().default(3).describe('Keep the newest K checkpoints.'),
  saveDtype: z
    .enum(['fp32', 'bf16'])
    .default('fp32')
    .describe(
      "The dtype of each checkpoint's model.safetensors (`red train --save-dtype`): fp32, the training model's own, or bf16 (half the size, as Qwen2.5 ships); with bf16 the fp32 master weights go to master.safetensors beside it, so --resume stays exact.",
    ),
});

export const logSchema = z.strictObject({
  progress: z
    .enum(['auto', 'bar', 'plain', 'none'])
    .default('auto')
    .describe('auto: a progress bar on a terminal, one plain line per step otherwise.'),
  tensorboard: z
    .boolean()
    .default(true)
    .describe(
      'Also write every metric as a TensorBoard scalar to DIR/tb/events.out.tfevents.* (tensorboard --logdir, wandb sync --sync-tensorboard).',
    ),
});

/**
 * The training configuration without the algorithm group, which belongs to src/rl (its schema
 * is applied by resolveTrainConfig after the preset named by `method` is expanded).
 */
export const trainSchema = z.strictObject({
  method: z
    .string()
    .default('red')
    .describe(
      'A preset of the algorithm options (sft, grpo, sft-grpo, mixpolicy, luffy, srft, relift, bread, red-I, red-II, red).',
    ),
  seed: z.number().int().min(0).default(42).describe('Seeds sampling, data order and initialisation; resume is exact.'),
  model: modelSchema,
  engine: engineSchema.prefault({}),
  data: dataSchema,
  rollout: rolloutSchema.prefault({}),
  algorithm: z
    .record(z.string(), z.unknown())
    .default({})
    .describe('Overrides of the algorithm options of the method preset (src/rl/options.ts).'),
  optim: optimSchema.prefault({}),
  schedule: scheduleSchema.prefault({}),
  sft: sftSchema.prefault({}),
  checkpoint: checkpointSchema.prefault({}),
  log: logSchema.prefault({}),
});

export type TrainConfigBase = z.infer<typeof trainSchema>;

/** The resolved configuration: every option present, `algorithm` expanded from the method's preset. */
export type TrainConfig = Omit<TrainConfigBase, 'algorithm'> & { algorithm: AlgorithmOptions };

/** One zod issue as "path message", e.g. `rollout.groupSize must be ≥ 2`. */
export function formatIssue(issue: z.core.$ZodIssue, prefix: readonly PropertyKey[] = []): string {
  const where = [...prefix, ...issue.path].map(String).join('.') || '(config)';
  switch (issue.code) {
    case 'too_small':
      return `${where} must be ${issue.inclusive === false ? '>' : '≥'} ${String(issue.minimum)}`;
    case 'too_big':
      return `${where} must be ${issue.inclusive === false ? '<' : '≤'} ${String(issue.maximum)}`;
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${where === '(config)' ? k : `${where}.${k}`}: unknown option`).join('\n');
    case 'invalid_type':
      return issue.input === undefined
        ? `${where} is required (${issue.expected})`
        : `${where} must be ${article(issue.expected)}, got ${JSON.stringify(issue.input)}`;
    case 'invalid_value':
      return `${where} must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${JSON.stringify(issue.input)}`;
    default:
      return `${where}: ${issue.message}`;
  }
}

function article(word: string): string {
  return /^[aeiou]/.test(word) ? `an ${word}` : `a ${word}`;
}

/** Throws one RedError listing every issue, one per line. */
export function failWithIssues(source: string, lines: string[]): never {
  fail(`invalid configuration (${source}):\n  ${lines.join('\n  ')}`);
}

/** Options that hold a file or folder path (a relative one is relative to the config file that sets it). */
export const PATH_KEYS = [
  ['model', 'path'],
  ['model', 'referencePath'],
  ['data', 'train'],
] as const;

/**
 * Makes every path option of `raw` absolute, relative paths taken from `dir`. A Hub id
 * (`org/name`, no such path beside the config) stays as written: the run resolves it to the cache.
 */
export function resolvePathKeys(raw: Record<string, unknown>, dir: string): void {
  for (const [group, key] of PATH_KEYS) {
    const g = raw[group];
    if (g === null || typeof g !== 'object' || Array.isArray(g)) continue;
    const v = (g as Record<string, unknown>)[key];
    if (typeof v !== 'string' || v === '') continue;
    const local = path.resolve(dir, v);
    const isHubId = !existsSync(local) && parseHubId(v, group === 'data' ? 'dataset' : 'model') !== null;
    if (!isHubId) (g as Record<string, unknown>)[key] = local;
  }
}

/**
 * A config file as a plain object. `extends: other.yaml` (a path relative to the file) starts from
 * that file's content and overrides it key by key, so example configs share one base without
 * repeating it. Relative `model.path`, `model.referencePath` and `data.train` are relative to the
 * file that sets them (as `extends` is) and come back absolute, so a run's config.yaml can be
 * rerun as it is from any directory.
 */
export function readYamlConfig(file: string, seen: string[] = []): Record<string, unknown> {
  const raw = readYamlFile(file);
  resolvePathKeys(raw, path.dirname(path.resolve(file)));
  const parent = raw.extends;
  delete raw.extends;
  if (parent === undefined) return raw;
  if (typeof parent !== 'string') fail(`${file}: extends must be a file name, got ${JSON.stringify(parent)}`);
  const base = path.resolve(path.dirname(file), parent);
  if (seen.includes(base)) fail(`${file}: extends ${parent} forms a cycle`);
  if (!existsSync(base))
    fail(`${file}: extends ${parent}, but ${base} does not exist (the path is relative to ${file})`);
  return mergeOverrides(readYamlConfig(base, [...seen, path.resolve(file)]), raw) as Record<string, unknown>;
}

function readYamlFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return fail(`${file}: cannot read the config (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) fail(`${file}: not valid YAML: ${doc.errors[0].message}`);
  const value: unknown = doc.toJS();
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) fail(`${file}: the config must be a mapping of option groups`);
  return value as Record<string, unknown>;
}

/**
 * Apply `key.path=value` overrides in place. The value is read as a YAML scalar or flow
 * collection (`3`, `true`, `1e-6`, `[a, b]`, `null`), so types match what a YAML file would give.
 */
export function applySets(config: Record<string, unknown>, sets: readonly string[]): void {
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) fail(`--set ${s}: expected key.path=value`);
    const keys = s.slice(0, eq).split('.');
    if (keys.some((k) => k === '')) fail(`--set ${s}: empty key in "${s.slice(0, eq)}"`);
    let value: unknown;
    try {
      value = YAML.parse(s.slice(eq + 1));
    } catch (err) {
      fail(`--set ${s}: the value is not valid YAML (${(err as Error).message})`);
    }
    let node: Record<string, unknown> = config;
    for (let i = 0; i < keys.length - 1; i++) {
      const next = node[keys[i]];
      if (next === undefined || next === null) node[keys[i]] = {};
      else if (typeof next !== 'object' || Array.isArray(next))
        fail(`--set ${s}: ${keys.slice(0, i + 1).join('.')} is not an option group`);
      node = node[keys[i]] as Record<string, unknown>;
    }
    node[keys[keys.length - 1]] = value;
  }
}

/** Validate the part of the config the trainer owns; every problem listed by path. */
export function parseTrainBase(raw: unknown, source: string): TrainConfigBase {
  const r = trainSchema.safeParse(raw, { reportInput: true });
  if (!r.success)
    failWithIssues(
      source,
      r.error.issues.map((i) => formatIssue(i)),
    );
  return r.data;
}

/**
 * The whole configuration, validated once: the trainer's groups and the algorithm options (the
 * method's preset row with `algorithm` overrides on top), every problem of both listed together.
 */
export function resolveTrainConfig(
  raw: Record<string, unknown>,
  source: string,
  warn: (line: string) => void = (line) => process.stderr.write(`warning: ${line}\n`),
): TrainConfig {
  const moved = moveDeprecatedKeys(raw, source);
  if (moved) warn(moved);
  const problems: string[] = [];
  const base = trainSchema.safeParse(raw, { reportInput: true });
  if (!base.success) problems.push(...base.error.issues.map((i) => formatIssue(i)));
  const method = typeof raw.method === 'string' ? raw.method : 'red';
  let algorithm: AlgorithmOptions | null = null;
  if (!(PRESET_NAMES as readonly string[]).includes(method)) {
    problems.push(`method must be one of ${PRESET_NAMES.join(', ')}, got ${JSON.stringify(method)}`);
  } else if (isRecord(raw.algorithm) && 'lr' in raw.algorithm) {
    problems.push(
      'algorithm.lr: the learning rate has one name per stage kind: set optim.lr (RL stages) or sft.lr (SFT stages); algorithm.lrScale scales either',
    );
  } else {
    const a = AlgorithmOptionsSchema.safeParse(
      mergeOverrides(PRESETS[method as PresetName].sets, raw.algorithm ?? {}),
      { reportInput: true },
    );
    if (a.success) algorithm = a.data;
    else problems.push(...a.error.issues.map((i) => formatIssue(i, ['algorithm'])));
  }
  if (base.success && base.data.engine.kind === 'torch' && base.data.rollout.engine === 'local')
    problems.push(
      "rollout.engine: local samples on this process's CPU copy of the policy, which engine.kind torch does not keep; set rollout.engine: engine (sampling on the torch engine) or remote (red serve, SGLang or vLLM servers)",
    );
  if (base.success) problems.push(...ncclSyncProblems(base.data));
  if (problems.length > 0 || !base.success || algorithm === null) return failWithIssues(source, problems);
  return { ...base.data, algorithm };
}

/** rollout.weightSync nccl: the tensors come from the PyTorch engine's processes and go to remote servers. */
function ncclSyncProblems(c: TrainConfigBase): string[] {
  if (c.rollout.weightSync !== 'nccl') return [];
  const problems: string[] = [];
  if (c.engine.kind !== 'torch')
    problems.push(
      'rollout.weightSync: nccl broadcasts from the PyTorch engine; set engine.kind: torch, or rollout.weightSync: disk',
    );
  if (c.rollout.engine !== 'remote')
    problems.push(
      `rollout.weightSync: nccl sends the weights to rollout.servers; set rollout.engine: remote, or rollout.weightSync: disk (rollout.engine is ${c.rollout.engine})`,
    );
  return problems;
}

/** Keys that moved to the engine group (issue 26): read there, with one warning line naming them. */
const MOVED_TO_ENGINE = ['backend', 'precision', 'bf16Backward', 'activationCheckpointing'] as const;

/**
 * Moves model.backend / precision / bf16Backward / activationCheckpointing of `raw` (in place) to
 * the engine group, where a key already set there wins; returns the warning line, or null.
 */
export function moveDeprecatedKeys(raw: Record<string, unknown>, source: string): string | null {
  const model = raw.model;
  if (!isRecord(model)) return null;
  const moved = MOVED_TO_ENGINE.filter((k) => k in model);
  if (moved.length === 0) return null;
  const engine = isRecord(raw.engine) ? raw.engine : (raw.engine = {});
  for (const k of moved) {
    if (!(k in engine)) engine[k] = model[k];
    delete model[k];
  }
  const names = (prefix: string) => moved.map((k) => `${prefix}.${k}`).join(', ');
  return `${source}: ${names('model')} moved to ${names('engine')}; read as such (rename them in the config)`;
}

/** The training engine's settings from the config: the one place they are built. */
export function engineSettings(
  config: TrainConfig,
  needsReference: boolean,
  log: (line: string) => void,
): EngineSettings {
  const e = config.engine;
  return {
    kind: e.kind,
    modelPath: config.model.path,
    referencePath: needsReference ? (config.model.referencePath ?? config.model.path) : null,
    precision: e.precision,
    activationCheckpointing: e.activationCheckpointing,
    devices: e.devices,
    python: e.python ?? null,
    strategy: e.strategy,
    backend: e.backend,
    bf16Backward: e.bf16Backward,
    log,
  };
}

/** A plain object (not null, not an array). */
function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The resolved config as YAML (written to DIR/config.yaml). */
export function configToYaml(config: unknown): string {
  return YAML.stringify(config, { lineWidth: 0 });
}
