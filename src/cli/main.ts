/** The `rampart` command: dispatches to subcommands; usage errors exit 2 with one clear line. */
import 'reflect-metadata';
import { isRampartError } from '../core/errors.js';
import { UsageError } from './args.js';

export const MAIN_HELP = `Usage: rampart <command> [flags]

Commands:
  ca              run the certificate authority
  agent           run the per-pod agent: keep a certificate fresh and proxy mTLS
  token           mint a dev service-account token
  root            root rotation: status, prepare, activate, retire
  cert inspect    show what a certificate file says
  bundle          fetch the trust bundle
  demo            run a whole mesh on loopback and show what happens

Run "rampart <command> --help" for the flags of a command.
`;

type Command = (argv: readonly string[]) => Promise<number>;

async function lazy(path: string, name: string): Promise<Command> {
  const mod = (await import(path)) as Record<string, Command>;
  const fn = mod[name];
  if (!fn) throw new Error(`command module ${path} lacks ${name}`);
  return fn;
}

// Every command loads lazily: an agent sidecar should not pay for the CA's Kubernetes client.
const COMMANDS: Record<string, () => Promise<Command>> = {
  ca: () => lazy('./commands/ca.js', 'runCa'),
  token: () => lazy('./commands/token.js', 'runToken'),
  cert: () => lazy('./commands/cert.js', 'runCert'),
  bundle: () => lazy('./commands/bundle.js', 'runBundle'),
  agent: () => lazy('./commands/agent.js', 'runAgent'),
  root: () => lazy('./commands/root.js', 'runRoot'),
  demo: () => lazy('./commands/demo.js', 'runDemo'),
};

/** Runs the CLI and returns the process exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(MAIN_HELP);
    return name === undefined ? 2 : 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`rampart: unknown command "${name}" [RAMPART_ERR_USAGE]\nRun "rampart --help" for the list of commands.\n`);
    return 2;
  }
  try {
    return await (await load())(rest);
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
