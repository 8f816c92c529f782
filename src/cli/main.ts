// Entry point of the `red` command: registers every subcommand and turns any error into one
// clear line on stderr (exit code 1) instead of a stack trace; RED_DEBUG=1 shows the stack.
// Exit codes: 0 done, 1 an error, 130 interrupted by Ctrl-C (train after its checkpoint, eval,
// demo); `red verify` follows cmp and diff instead: 0 equal, 1 not equal, 2 an error.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { printError } from '../util/errors.ts';
import { registerCommands } from './commands.ts';

// `red score … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

/** Prints the error as one line (the stack only under RED_DEBUG=1) and exits 1. */
function die(err: unknown): never {
  printError(err);
  process.exit(1);
}
process.on('uncaughtException', die);
process.on('unhandledRejection', die);

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const program = new Command('red')
  .description('Post-train small language models to reason with Recall-Extend Dynamics (RED).')
  .version(version, '-V, --version', 'print the version of red')
  .showHelpAfterError();
registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  die(err);
}
