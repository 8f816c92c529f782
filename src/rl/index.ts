// The algorithms of RED-SPEC as pure functions over packed arrays: import from here.
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
