/** Runs the rampart CLI from source in a child process. */
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_ENTRY = fileURLToPath(new URL('../../src/cli/entry.ts', import.meta.url));
export const CLI_BIN = fileURLToPath(new URL('../../bin/rampart.js', import.meta.url));

/**
 * Arguments for `spawn(process.execPath, ...)` running `rampart ARGS`. scripts/run-tests.mjs
 * builds dist/ first and sets RAMPART_CLI=dist, so child processes skip compiling TypeScript on
 * every start; run directly, the tests fall back to the sources through tsx.
 */
export function cliArgs(args: readonly string[]): string[] {
  return process.env['RAMPART_CLI'] === 'dist' ? [CLI_BIN, ...args] : ['--import', 'tsx', CLI_ENTRY, ...args];
}

/** Runs `rampart ARGS` to completion. */
export function runCliSync(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, cliArgs(args), {
    cwd: options.cwd ?? REPO_ROOT,
    env: options.env ?? process.env,
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 60_000,
    // A CLI stuck past the timeout (even deaf to SIGTERM) is a failure, not a hung suite.
    killSignal: 'SIGKILL',
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
}

/** Starts `rampart ARGS` in the background. */
export function spawnCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; ownProcessGroup?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, cliArgs(args), { cwd: options.cwd ?? REPO_ROOT, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.ownProcessGroup === true });
}

/** What a finished `rampart` run printed, and how it ended. */
export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `rampart ARGS` to completion in the background (the test's event loop keeps turning, unlike
 * runCliSync), killing it with SIGKILL after `timeoutMs`.
 */
export async function runCli(args: readonly string[], options: { timeoutMs?: number } = {}): Promise<CliRun> {
  const child = spawnCli(args);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/** The JSON log lines in a CLI's output. */
export function jsonLines(output: string): Array<Record<string, unknown>> {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Calls `onEntry` with each JSON log line a running CLI prints on stdout, as it prints it. */
export function onJsonLine(child: ChildProcess, onEntry: (entry: Record<string, unknown>) => void): void {
  if (child.stdout === null) return;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('{')) onEntry(JSON.parse(line) as Record<string, unknown>);
  });
}

/** The JSON log lines a running CLI prints on stdout, as a list that grows while it runs. */
export function collectLog(child: ChildProcess): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  onJsonLine(child, (entry) => lines.push(entry));
  return lines;
}
