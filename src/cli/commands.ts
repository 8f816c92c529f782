// The list of subcommands. Each lives in its own file and exports register(program); the
// heavy modules behind a command are imported inside its action, so `red --help` stays fast.
import type { Command } from 'commander';
import { registerBench } from './bench.ts';
import { registerEval } from './eval.ts';
import { registerData } from './data.ts';
import { registerDownload } from './download.ts';
import { registerDemo } from './demo.ts';
import { registerPretrain } from './pretrain.ts';
import { registerReport } from './report.ts';
import { registerGenerate } from './generate.ts';
import { registerScore } from './score.ts';
import { registerServe } from './serve.ts';
import { registerMethods } from './methods.ts';
import { registerTrain } from './train.ts';
import { registerVerify } from './verify.ts';

export function registerCommands(program: Command): void {
  registerBench(program);
  registerEval(program);
  registerData(program);
  registerDownload(program);
  registerDemo(program);
  registerPretrain(program);
  registerReport(program);
  registerGenerate(program);
  registerScore(program);
  registerServe(program);
  registerMethods(program);
  registerTrain(program);
  registerVerify(program);
}
