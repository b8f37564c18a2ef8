/** Runs a bench child (`node --import tsx bench/<script>`, or a built program) and returns its BENCH_RESULT value. */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from './ca-process.js';
import { RESULT_PREFIX } from './result-line.js';

export interface SpawnedScript<T> {
  readonly pid: number;
  /** Lines the child printed on stdout other than the result (e.g. READY). */
  onLine(listener: (line: string) => void): void;
  send(line: string): void;
  readonly result: Promise<T>;
}

export function spawnScript<T>(script: string, args: readonly string[], timeoutMs: number): SpawnedScript<T> {
  const profile = process.env['BENCH_CLIENT_CPU_PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_CLIENT_CPU_PROF']}`] : [];
  return spawnProgram<T>(process.execPath, [...profile, '--import', 'tsx', `bench/${script}`, ...args], `bench/${script}`, timeoutMs);
}

/** Runs `command` with the same READY/GO line protocol and BENCH_RESULT line as a bench script. */
export function spawnProgram<T>(command: string, args: readonly string[], label: string, timeoutMs: number): SpawnedScript<T> {
  const child = spawn(command, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const listeners: Array<(line: string) => void> = [];
  let buffered = '';
  let value: T | undefined;
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith(RESULT_PREFIX)) value = JSON.parse(line.slice(RESULT_PREFIX.length)) as T;
      else for (const l of listeners) l(line);
    }
  });
  const result = new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (value !== undefined) resolve(value);
      else reject(new Error(`${label} exited (${code ?? signal}) without a result`));
    });
  });
  return {
    pid: child.pid!,
    onLine: (l) => void listeners.push(l),
    send: (line) => void child.stdin.write(`${line}\n`),
    result,
  };
}
