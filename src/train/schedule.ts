// The learning-rate schedule: linear warm-up, then cosine decay to a floor (RED-SPEC defaults:
// warm-up 1 step, floor 0.1·lr). A pure function of the step, so a resumed run and a run that was
// stopped early with --max-steps follow exactly the same curve as one that never stopped.

export interface LrScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warm-up; step k ≤ warmupSteps gets lr·k/warmupSteps. */
  warmupSteps: number;
  /** The floor of the cosine as a fraction of lr (0.1 → decays to 0.1·lr at the last step). */
  minLrRatio: number;
  /** The planned number of optimiser steps (the end of the cosine). */
  totalSteps: number;
}

/**
 * Learning rate of optimiser step `step` (1-based, the step about to be taken):
 *   k ≤ W:  lr·k/W
 *   k > W:  floor + (lr − floor)·½·(1 + cos(π·p)),  p = min(1, (k−W−1)/max(1, T−W−1)),  floor = ratio·lr
 * so the first step after warm-up is at full lr and step T is at the floor.
 */
export function learningRate(step: number, o: LrScheduleOptions): number {
  const W = Math.max(0, o.warmupSteps);
  if (step <= W) return (o.lr * step) / W;
  const floor = o.minLrRatio * o.lr;
  const p = Math.min(1, (step - W - 1) / Math.max(1, o.totalSteps - W - 1));
  return floor + (o.lr - floor) * 0.5 * (1 + Math.cos(Math.PI * p));
}
