// The algorithms of RED-SPEC as pure functions over packed arrays: import from here.
// One training step, as the trainer calls it (it never branches on the method's name):
//   options = resolvePreset(config.method, config.algorithm); for each of resolveStages(options):
//   rollouts → shapeRewards (R_i) → filterGroups / needsAnotherDraw (refill) → pack a TokenBatch
//   pre-update forward: oldLogprobs, entropies → H = memberEntropyMeans(batch) →
//   { w, next } = entropyRegulatorStep(state, H.rl, H.sft, entropyRegulatorSettings(options, G)) (next kept if the step succeeds)
//   forward: logprobs (+ entropies) → r = objectives[options.objective](batch, options,
//   { offlineWeight: w, maxResponseTokens }) → backprop r.dLogprobs (and r.dEntropies) per token.
export * from './options.ts';
export * from './batch.ts';
export * from './aggregate.ts';
export * from './advantages.ts';
export * from './policy-loss.ts';
export * from './entropy.ts';
export * from './sft.ts';
export * from './srft.ts';
export * from './bread.ts';
export * from './objectives.ts';
