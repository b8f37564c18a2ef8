/** The `rampart` command: dispatches to subcommands; usage errors exit 2 with one clear line. */
import 'reflect-metadata';
import { readFileSync } from 'node:fs';
import { nearestWord } from './nearest-word.js';
import { runCommand, type Command } from './run-command.js';

export const MAIN_HELP = `Usage: rampart <command> [flags]

Commands:
  ca              run the certificate authority
  agent           run the per-pod agent: keep a certificate fresh and proxy mTLS
  token           mint a dev service-account token
  root            root rotation: status, prepare, activate, retire
  cert inspect    show what a certificate file says
  bundle          fetch the trust bundle
  demo            run a whole mesh on loopback and show what happens

Run "rampart <command> --help" (or "rampart help <command>") for the flags of a command,
"rampart --version" for the version.
`;

/** The version in package.json (two directories up from src/cli or dist/cli). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

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
  if (argv[0] === 'help' && argv[1] !== undefined && argv[1] in COMMANDS) return runCli([argv[1], '--help']);
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(MAIN_HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write(`rampart ${version()}\n`);
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    const guess = nearestWord(name, Object.keys(COMMANDS));
    process.stderr.write(`rampart: unknown command "${name}"${guess === undefined ? '' : `; did you mean "${guess}"?`} [RAMPART_ERR_USAGE]\nRun "rampart --help" for the list of commands.\n`);
    return 2;
  }
  return runCommand(name, load, rest);
}
