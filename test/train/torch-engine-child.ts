// Stands in for `red` in torch-engine-failures.test.ts's Ctrl-C test: opens a two-rank engine on
// the tied fixture, prints rank 0's process id, and waits to be interrupted.
import { fixturePath } from '../helpers/paths.ts';
import { openTorchEngine } from './torch-fixtures.ts';

const engine = await openTorchEngine(fixturePath('qwen2-tiny-tied'), { devices: 2 });
console.log(JSON.stringify({ rank0: engine.rank0Pid }));
setInterval(() => {}, 1000);
