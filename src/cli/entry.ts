/** Process entry for running the CLI from source (tests, `node --import tsx src/cli/entry.ts`). */
import { runCli } from './main.js';

process.exitCode = await runCli(process.argv.slice(2));
