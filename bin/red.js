#!/usr/bin/env node
// The `red` command. An installed package runs the JS that `npm pack` compiled into dist/ (fast
// start-up); a checkout runs the TypeScript sources in src/ through tsx's loader (no build step).
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/cli/main.js', import.meta.url);
if (existsSync(compiled) && !existsSync(new URL('../src/cli/main.ts', import.meta.url))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
