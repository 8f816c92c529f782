// AdamW over the model's flat parameter buffer (torch.optim.AdamW semantics: decoupled weight
// decay, bias correction), with its two moments as flat buffers of the same layout, plus
// global-norm gradient clipping as torch.nn.utils.clip_grad_norm_. Parameters, gradients and
// moments are backend tensors; the moments cross to the host only to be saved or restored.
import type { Backend } from '../engine/backend.ts';
import { fail } from '../util/errors.ts';
import type { F32, ParamLayout } from '../model/params.ts';

/** AdamW's hyper-parameters. The learning rate is not one: update(lr) takes it from the schedule. */
export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number; // decoupled, on the parameters noDecay does not exempt
  /** Which parameters (Hugging Face names) are NOT decayed; absent: every parameter is, as torch. */
  noDecay?: (name: string) => boolean;
}

/** The optimiser's state on the host (downloaded moments): what a checkpoint saves. */
export interface AdamWState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** Decay-exempt predicate for the usual recipe: no weight decay on norms and biases. */
export function noDecayNormsAndBiases(name: string): boolean {
  return name.endsWith('.bias') || name.endsWith('norm.weight');
}

export class AdamW {
  readonly m: F32; // first moment, the params' layout
  readonly v: F32; // second moment
  step = 0;
  /** Contiguous runs of the layout, merged where the decay flag agrees, with their views of p, g, m, v. */
  private runs: { offset: number; size: number; decay: boolean; p: F32; g: F32; m: F32; v: F32 }[];
  constructor(
    private backend: Backend,
    params: F32,
    grads: F32,
    layout: ParamLayout,
    readonly opts: AdamWOptions,
  ) {
    if (params.length !== layout.total || grads.length !== layout.total)
      throw new Error('AdamW: buffers do not match the layout');
    this.m = backend.alloc('f32', layout.total);
    this.v = backend.alloc('f32', layout.total);
    const spans: { offset: number; size: number; decay: boolean }[] = [];
    for (const s of layout.specs) {
      const decay = !(this.opts.noDecay?.(s.name) ?? false);
      const last = spans[spans.length - 1];
      if (last && last.decay === decay && last.offset + last.size === s.offset) last.size += s.size;
      else spans.push({ offset: s.offset, size: s.size, decay });
    }
    const at = (t: F32, r: { offset: number; size: number }): F32 => backend.view(t, r.offset, r.size);
    this.runs = spans.map((r) => ({ ...r, p: at(params, r), g: at(grads, r), m: at(this.m, r), v: at(this.v, r) }));
  }

  /** One update from the current gradients at learning rate `lr` (the schedule's, this step). */
  update(lr?: number): void {
    const rate = lr ?? fail('AdamW.update: no learning rate given');
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    for (const r of this.runs) {
      this.backend.adamw(r.p, r.g, r.m, r.v, r.size, rate, beta1, beta2, eps, r.decay ? weightDecay : 0, this.step);
    }
  }

  /** Back to a fresh optimiser: zero moments, step 0 (no reallocation). */
  reset(): void {
    this.backend.zero(this.m);
    this.backend.zero(this.v);
    this.step = 0;
  }

  /** The step and the moments, downloaded. */
  state(): AdamWState {
    return { step: this.step, m: this.backend.download(this.m), v: this.backend.download(this.v) };
  }

  /** Restores a state saved from an optimiser over the same layout (the moments uploaded). */
  load(state: AdamWState): void {
    if (state.m.length !== this.m.length || state.v.length !== this.v.length) {
      fail(`optimizer state has ${state.m.length} moments, the model has ${this.m.length} parameters`);
    }
    if (!Number.isInteger(state.step) || state.step < 0)
      fail(`optimizer state: step must be a non-negative integer, got ${state.step}`);
    this.backend.upload(this.m, state.m);
    this.backend.upload(this.v, state.v);
    this.step = state.step;
  }
}

/**
 * Global L2 norm of `grads`; when it exceeds maxNorm the gradients are scaled by
 * maxNorm / (norm + 1e-6) (when that is < 1), as torch.nn.utils.clip_grad_norm_. Returns the norm before clipping.
 */
export function clipGradNorm(backend: Backend, grads: F32, maxNorm: number): number {
  const norm = Math.sqrt(backend.sumSquares(grads, grads.length));
  const coef = maxNorm / (norm + 1e-6); // torch clamps this at 1
  if (coef < 1) backend.scale(grads, coef, grads.length);
  return norm;
}
