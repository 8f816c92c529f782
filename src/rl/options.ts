// The algorithm options: ONE typed source of truth (a zod schema with every default and its
// meaning), and the paper's methods (RED-SPEC "The methods of the paper's Table 2") as rows of
// overrides on it. The trainer nests these options as its `algorithm` group and never branches on
// a method's name, only on these options.
import { z } from 'zod';
import { fail } from '../util/errors.ts';

export const PI_OFFLINE_NAMES = ['one', 'self', 'luffy', 'accuracy', 'accuracy-no-sg'] as const;
/** How offline tokens' importance ratio is formed (RED-SPEC "π_offline: the variants"). */
export type PiOfflineName = (typeof PI_OFFLINE_NAMES)[number];

export const AGGREGATION_NAMES = ['seq-mean-token-mean', 'token-mean', 'seq-sum-norm'] as const;
/** How per-token losses become one number (RED-SPEC "agg_t"). */
export type AggregationName = (typeof AGGREGATION_NAMES)[number];

export const OBJECTIVE_NAMES = ['nll', 'group-policy', 'srft'] as const;
/** Which loss the trainer calls (a key of `objectives` in src/rl/objectives.ts). */
export type ObjectiveName = (typeof OBJECTIVE_NAMES)[number];

export const KL_ESTIMATOR_NAMES = ['k1', 'k3'] as const;
export type KlEstimatorName = (typeof KL_ESTIMATOR_NAMES)[number];

export const PRESET_NAMES = [
  'sft',
  'grpo',
  'sft-grpo',
  'mixpolicy',
  'luffy',
  'srft',
  'relift',
  'bread',
  'red-I',
  'red-II',
  'red',
] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

const positive = z.number().positive();
const fraction = z.number().min(0).max(1);

export const AlgorithmOptionsSchema = z
  .strictObject({
    objective: z
      .enum(OBJECTIVE_NAMES)
      .default('group-policy')
      .describe("loss the trainer calls: 'nll' (SFT on offline traces), 'group-policy' (GRPO family, RED), 'srft'"),
    onlineRollouts: z
      .boolean()
      .default(true)
      .describe('sample G rollouts per prompt; false = batches hold only offline traces (sft)'),
    offlineMember: z
      .boolean()
      .default(false)
      .describe('put the teacher trace into each group as an extra member (G+1 members)'),
    piOffline: z
      .enum(PI_OFFLINE_NAMES)
      .default('one')
      .describe(
        'behaviour probability of offline tokens: one | self | luffy | accuracy (RED II) | accuracy-no-sg (RED II without the stop-gradient, for study)',
      ),
    luffyGamma: positive.default(0.1).describe("γ of LUFFY's policy shaping ρ = π/(π+γ) (piOffline luffy)"),
    accuracyIncludesOffline: z
      .boolean()
      .default(true)
      .describe(
        "r̄ of piOffline accuracy: mean accuracy over all G+1 members (Eq. 8, the paper's code); false = the G online ones only (an ablation: an all-fail group then imitates at full strength)",
      ),
    entropyRegulation: z
      .boolean()
      .default(false)
      .describe('RED (I): offline weight w = clip(ΔH_sft/ΔH_rl, 1, G) each step; false = w 1'),
    entropySmoothing: z
      .number()
      .min(0)
      .lt(1)
      .default(0)
      .describe(
        'RED (I), beyond the paper: β of an EMA S(k) = β·S(k−1) + (1−β)·H(k) of H_rl and H_sft taken before the ratio ΔH = |1 − S(k)/S(k−1)|; 0 = the raw entropies (the paper)',
      ),
    normalizeStd: z
      .boolean()
      .default(true)
      .describe('divide group advantages by the unbiased std (+1e-6); false = R − mean (Dr.GRPO / LUFFY)'),
    clip: z
      .strictObject({
        enabled: z.boolean().default(true).describe('PPO clip on online tokens (offline tokens are never clipped)'),
        epsLow: z.number().min(0).max(1).default(0.2).describe('ε_low: ratio floor 1 − ε_low'),
        epsHigh: z.number().min(0).default(0.2).describe('ε_high: ratio ceiling 1 + ε_high (0.28 = DAPO clip-higher)'),
      })
      .prefault({})
      .describe('PPO clip of online tokens'),
    aggregation: z
      .enum(AGGREGATION_NAMES)
      .default('seq-mean-token-mean')
      .describe('per-token losses → one number: seq-mean-token-mean | token-mean | seq-sum-norm'),
    lNorm: positive
      .nullable()
      .default(null)
      .describe('L_norm of seq-sum-norm (sum over tokens / L_norm); null = the response token limit'),
    entropyCoef: z.number().min(0).default(0).describe('entropy bonus: loss −= entropyCoef · agg(H) over every member'),
    klCoef: z
      .number()
      .min(0)
      .default(0)
      .describe('KL penalty to the reference policy on online tokens: loss += klCoef · agg(KL)'),
    klEstimator: z
      .enum(KL_ESTIMATOR_NAMES)
      .default('k3')
      .describe('per-token KL estimator: k1 = log π − log π_ref, k3 = e^(ref−log π) − (ref−log π) − 1'),
    groupFilter: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe('drop groups whose G+1 accuracies are all equal (DAPO dynamic sampling)'),
        maxFillAttempts: z.int().min(1).default(6).describe('prompt draws per step before training on what there is'),
      })
      .prefault({})
      .describe('dynamic sampling (RED-SPEC "Group filtering")'),
    overlong: z
      .strictObject({
        enabled: z.boolean().default(false).describe('DAPO overlong penalty on online rollouts'),
        bufferTokens: z
          .int()
          .min(1)
          .default(2000)
          .describe('L_buf: penalty ramps over the last L_buf tokens of the limit'),
      })
      .prefault({})
      .describe('DAPO overlong reward shaping'),
    lrScale: positive
      .default(1)
      .describe(
        "multiplies the stage's learning rate (the trainer's optim.lr for RL stages, sft.lr for SFT stages): a ratio keeps its meaning at every scale",
      ),
    stages: z
      .array(z.enum(PRESET_NAMES))
      .default(() => [])
      .describe(
        "run these presets in order, each starting from the previous stage's final weights; [] = one stage (these options)",
      ),
    sftInterleave: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe('ReLIFT: buffer questions whose online rollouts all fail, SFT on their traces when full'),
        bufferSize: z.int().min(1).default(128).describe('N: questions that trigger one SFT step'),
        entropyCoef: z.number().min(0).default(0.001).describe('SFT loss mean(−log π) − entropyCoef·H'),
        lr: positive
          .nullable()
          .default(null)
          .describe("learning rate of the SFT step's own optimiser; null = the stage's lr"),
      })
      .prefault({})
      .describe('ReLIFT interleaved SFT'),
    prefixSearch: z
      .strictObject({
        enabled: z
          .boolean()
          .default(false)
          .describe(
            'BREAD: for a group with no correct rollout, roll out from the shortest teacher prefix that brings success into the band',
          ),
        segments: z
          .int()
          .min(1)
          .default(10)
          .describe('the trace is cut into this many equal segments; prefixes end on segment bounds'),
        targetLow: fraction.default(0.1).describe('lower edge of the success band'),
        targetHigh: fraction.default(0.9).describe('upper edge of the success band'),
      })
      .prefault({})
      .describe('BREAD branched rollouts from teacher prefixes'),
    srft: z
      .strictObject({
        sftScale: z.number().min(0).default(0.5).describe('w_sft = sftScale · sg(exp(−H_demo))'),
        rlScale: z.number().min(0).default(0.1).describe('w_rl = rlScale · sg(exp(H_rollout)) on correct rollouts'),
      })
      .prefault({})
      .describe('SRFT term weights (objective srft)'),
    rolloutCorrection: z
      .strictObject({
        mode: z
          .enum(['none', 'tis'])
          .default('none')
          .describe(
            "off-policy correction of online tokens when the sampler's logprobs (the behaviour policy) differ from π_old: 'tis' weights each token's policy gradient by min(π_old/π_rollout, cap)",
          ),
        cap: positive.default(2).describe('C: the truncation of the importance weight'),
      })
      .prefault({})
      .describe(
        'truncated importance sampling (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL training")',
      ),
  })
  .superRefine((o, ctx) => {
    if (o.prefixSearch.targetLow > o.prefixSearch.targetHigh) {
      ctx.addIssue({
        code: 'custom',
        path: ['prefixSearch', 'targetLow'],
        message: 'must be ≤ prefixSearch.targetHigh',
      });
    }
  });

/** The fully resolved options (every field present). */
export type AlgorithmOptions = z.output<typeof AlgorithmOptionsSchema>;

type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
/** What a preset row or a user override may set. */
export type AlgorithmOverrides = DeepPartial<AlgorithmOptions>;

export interface Preset {
  /** One line on what the method is (RED-SPEC Table 2 row). */
  description: string;
  /** The options it sets; every other option keeps its schema default. */
  sets: AlgorithmOverrides;
}

// The paper's methods as data (RED-SPEC "The methods of the paper's Table 2").
export const PRESETS: Record<PresetName, Preset> = {
  sft: {
    // lr 5e-5 and 3 epochs live in the trainer's `sft` config group (one copy of those defaults).
    description: "NLL on offline traces, token mean (lr and epochs: the trainer's sft group)",
    sets: { objective: 'nll', onlineRollouts: false, groupFilter: { enabled: false } },
  },
  grpo: {
    description: 'online GRPO only (G rollouts, no offline member)',
    sets: { objective: 'group-policy', offlineMember: false },
  },
  'sft-grpo': {
    description: 'grpo started from the sft checkpoint (two stages)',
    sets: { stages: ['sft', 'grpo'] },
  },
  mixpolicy: {
    description: 'offline member in the group, π_offline = one, w = 1',
    sets: { offlineMember: true, piOffline: 'one' },
  },
  luffy: {
    // RED-SPEC: luffy lr 1e-6 vs 2e-6 for the others, kept as the ratio 0.5 so the recipe still
    // gets 1e-6 at paper scale and a small run (demo lr 1e-4) does not freeze at an absolute 1e-6.
    description:
      "π_offline = luffy (γ 0.1), no clip, no std, seq-sum-norm, entropy bonus 0.001, lr ×0.5 (1e-6 at the paper's 2e-6)",
    sets: {
      offlineMember: true,
      piOffline: 'luffy',
      luffyGamma: 0.1,
      clip: { enabled: false },
      normalizeStd: false,
      aggregation: 'seq-sum-norm',
      lNorm: null,
      entropyCoef: 0.001,
      lrScale: 0.5,
    },
  },
  srft: {
    description:
      'demo SFT (w_sft = 0.5·sg(e^−H)) + demo RL as luffy with π_offline = one + self-rollout ±log π (w_rl = 0.1·sg(e^H))',
    sets: {
      objective: 'srft',
      offlineMember: true,
      piOffline: 'one',
      clip: { enabled: false },
      normalizeStd: false,
      aggregation: 'seq-sum-norm',
      lNorm: null,
      srft: { sftScale: 0.5, rlScale: 0.1 },
    },
  },
  relift: {
    description: 'GRPO; all-fail questions buffered, one SFT step (mean(−log π) − 0.001·H) on their traces per N',
    sets: { offlineMember: false, sftInterleave: { enabled: true, bufferSize: 128, entropyCoef: 0.001 } },
  },
  bread: {
    description: 'GRPO; all-fail groups roll out from the shortest teacher prefix putting success in the band',
    sets: { offlineMember: false, prefixSearch: { enabled: true, segments: 10 } },
  },
  'red-I': {
    description: 'RED (I): dynamic entropy regulation of w, π_offline = one',
    sets: { offlineMember: true, piOffline: 'one', entropyRegulation: true },
  },
  'red-II': {
    description: 'RED (II): accuracy-aware policy shift π_offline = accuracy (r̄ over the G+1 members), w = 1',
    sets: { offlineMember: true, piOffline: 'accuracy', accuracyIncludesOffline: true, entropyRegulation: false },
  },
  red: {
    description: 'RED: (I) entropy regulation and (II) π_offline = accuracy (r̄ over the G+1 members) together',
    sets: { offlineMember: true, piOffline: 'accuracy', accuracyIncludesOffline: true, entropyRegulation: true },
  },
};

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Deep merge of plain objects; arrays and scalars in `over` replace those in `base`. */
export function mergeOverrides(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeOverrides(base[k], v);
  return out;
}

/**
 * Every problem of `input` as one line naming its path under `where`
 * (e.g. "algorithm.clip.epsLow: Too small: expected number to be >=0"); [] when valid.
 */
export function algorithmOptionIssues(input: unknown, where = 'algorithm'): string[] {
  const r = AlgorithmOptionsSchema.safeParse(input ?? {});
  if (r.success) return [];
  return r.error.issues.flatMap((issue) => {
    const path = [where, ...issue.path.map(String)].join('.');
    if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${path}.${key}: unknown option`);
    return [`${path}: ${issue.message}`];
  });
}

/** Validate options once, up front; a RedError lists every problem by path. */
export function parseAlgorithmOptions(input: unknown, where = 'algorithm'): AlgorithmOptions {
  const r = AlgorithmOptionsSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  fail(`invalid options:\n${algorithmOptionIssues(input, where).join('\n')}`);
}

/** The full options of a preset with `overrides` (user config) applied on top of its row. */
export function resolvePreset(name: string, overrides: unknown = {}, where = 'algorithm'): AlgorithmOptions {
  if (!(PRESET_NAMES as readonly string[]).includes(name)) {
    fail(`${where}.preset: unknown method "${name}"; expected one of ${PRESET_NAMES.join(', ')}`);
  }
  const row = PRESETS[name as PresetName];
  return parseAlgorithmOptions(mergeOverrides(row.sets, overrides), where);
}

/**
 * The stages to train in order: [options] for a single-stage method, else each named preset
 * resolved (a stage may not itself have stages) with every option the multi-stage options set
 * beyond the schema defaults (the user's `algorithm` overrides, e.g. clip.epsHigh or lrScale) applied on
 * top, so what config.yaml records is what every stage runs. A value equal to the schema default
 * cannot be told from no override and leaves the stage's preset value. The trainer initialises
 * stage k+1 from stage k's final weights.
 */
export function resolveStages(options: AlgorithmOptions): AlgorithmOptions[] {
  if (options.stages.length === 0) return [options];
  const overrides = nonDefaultOptions(options, parseAlgorithmOptions({}));
  delete (overrides as Record<string, unknown>).stages;
  return options.stages.map((name, k) => {
    const stage = resolvePreset(name, overrides, `algorithm.stages.${k}`);
    if (stage.stages.length > 0) fail(`algorithm.stages.${k}: preset "${name}" has stages itself; stages do not nest`);
    return stage;
  });
}

/** The parts of `options` that differ from `defaults`, as a nested overrides object. */
function nonDefaultOptions(options: unknown, defaults: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!isPlainObject(options) || !isPlainObject(defaults)) return out;
  for (const [k, v] of Object.entries(options)) {
    const d = defaults[k];
    if (isPlainObject(v) && isPlainObject(d)) {
      const inner = nonDefaultOptions(v, d);
      if (Object.keys(inner).length > 0) out[k] = inner;
    } else if (JSON.stringify(v) !== JSON.stringify(d)) out[k] = v;
  }
  return out;
}

/** `{ clip: { enabled: false } }` → `{ 'clip.enabled': false }` (for tables and logs). */
export function flattenOptions(obj: unknown, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!isPlainObject(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (isPlainObject(v)) Object.assign(out, flattenOptions(v, key));
    else out[key] = v;
  }
  return out;
}

/** Each option's dotted path with its description (the `.describe()` text above). */
export function optionDescriptions(): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (shape: Record<string, z.ZodType>, prefix: string): void => {
    for (const [k, schema] of Object.entries(shape)) {
      const key = prefix ? `${prefix}.${k}` : k;
      const inner = unwrapObject(schema);
      if (inner) walk(inner.shape as Record<string, z.ZodType>, key);
      else out[key] = schema.description ?? '';
    }
  };
  walk(AlgorithmOptionsSchema.shape as Record<string, z.ZodType>, '');
  return out;
}

function unwrapObject(schema: z.ZodType): z.ZodObject | null {
  let s: z.ZodType = schema;
  for (let i = 0; i < 4; i++) {
    if (s instanceof z.ZodObject) return s;
    if (
      s instanceof z.ZodDefault ||
      s instanceof z.ZodPrefault ||
      s instanceof z.ZodOptional ||
      s instanceof z.ZodNullable
    ) {
      s = s.unwrap() as z.ZodType;
    } else return null;
  }
  return null;
}
