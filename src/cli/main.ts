// Entry point of the `red` command: registers every subcommand and turns a RedError into one
// clear line on stderr (exit code 1) instead of a stack trace.
import { Command } from 'commander';
import { RedError } from '../util/errors.ts';
import { registerCommands } from './commands.ts';

// `red score … | head` closes our stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('red')
  .description('Post-train small language models to reason with Recall-Extend Dynamics (RED).')
  .showHelpAfterError();
registerCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof RedError) {
    console.error(`red: ${err.message}`);
    process.exit(1);
  }
  throw err;
}
