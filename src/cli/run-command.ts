/** Runs one subcommand and turns what it throws into an exit code and one coded stderr line. */
import { isRampartError } from '../core/errors.js';
import { UsageError } from './args.js';

export type Command = (argv: readonly string[]) => Promise<number>;

export async function runCommand(name: string, load: () => Promise<Command>, argv: readonly string[]): Promise<number> {
  try {
    return await (await load())(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`rampart ${name}: ${err.message} [RAMPART_ERR_USAGE]\nRun "rampart ${name} --help" for usage.\n`);
      return 2;
    }
    if (isRampartError(err)) {
      process.stderr.write(`rampart ${name}: ${err.message} [${err.code}]\n`);
      return err.category === 'config' ? 2 : 1;
    }
    process.stderr.write(`rampart ${name}: unexpected error: ${(err as Error).message ?? String(err)} [RAMPART_ERR_INTERNAL]\n`);
    return 1;
  }
}
