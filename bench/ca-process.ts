/**
 * Starts `rampart ca` from source as a separate process on loopback port 0 with a fresh state
 * dir, finds its API URL, reads its memory from /proc, and stops it by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '..');

export interface CaProcess {
  readonly pid: number;
  readonly apiUrl: string;
  /** The monitoring listener (/metrics), or null if the CA's start-up output did not name it. */
  readonly monitoringUrl: string | null;
  readonly stateDir: string;
  readonly rootPem: string;
  /** Peak RSS in MB of the CA and its direct children (cluster workers), from VmHWM. */
  peakRssMb(): number;
  /** CPU seconds (utime+stime) the CA and its live direct children have used so far. */
  cpuSeconds(): number;
  /** Last lines the CA wrote (for failure reports). */
  tail(): string;
  stop(): Promise<void>;
}

export interface CaProcessOptions {
  readonly workers?: number;
  readonly extraArgs?: readonly string[];
  readonly startTimeoutMs?: number;
}

/** Node flags for the CA process: a CPU profile (BENCH_CA_CPU_PROF=DIR) and any experiment flags (BENCH_CA_NODE_FLAGS). */
function profileArgs(): string[] {
  const dir = process.env['BENCH_CA_CPU_PROF'];
  const extra = (process.env['BENCH_CA_NODE_FLAGS'] ?? '').split(/\s+/).filter(Boolean);
  return [...(dir ? ['--cpu-prof', '--cpu-prof-dir', dir] : []), ...extra];
}

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

const CLK_TCK = 100; // USER_HZ on Linux

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

// The file store prints a banner with the URL whatever the log level; at info the JSON line
// {"event":"ca-started","apiUrl":...} says it too. Either is accepted.
const BANNER = /Rampart CA listening on (https:\/\/\S+)/;
const JSON_URL = /"event":"ca-started"[^\n]*?"apiUrl":"([^"]+)"/;
const BANNER_MONITORING = /Rampart CA listening on \S+\s+\(monitoring (http:\/\/[^\s)]+)\)/;
const JSON_MONITORING = /"event":"ca-started"[^\n]*?"monitoringUrl":"([^"]+)"/;

/**
 * The `--warm-up-requests` the CA Deployment ships with (manifests/base/deployment.yaml), so the
 * fleet is measured against the CA as deployed rather than a number of the bench's own.
 */
export function shippedWarmUpRequests(): number {
  const manifest = readFileSync(join(REPO_ROOT, 'manifests/base/deployment.yaml'), 'utf8');
  const m = /^\s*- --warm-up-requests\s*\n\s*- "?(\d+)"?\s*$/m.exec(manifest);
  if (m === null) throw new Error('manifests/base/deployment.yaml sets no --warm-up-requests');
  return Number(m[1]);
}

/** A section's `--warm-up-requests` argument: `shipped` (the default) or a count. */
export function warmUpRequestsArg(value: string): number {
  return value === 'shipped' ? shippedWarmUpRequests() : Number(value);
}

export async function startCaProcess(options: CaProcessOptions = {}): Promise<CaProcess> {
  const stateDir = mkdtempSync(join(tmpdir(), 'rampart-bench-ca-'));
  // The CA under test runs as shipped (compiled dist/, which bench/run.mjs builds first).
  const args = [...profileArgs(), 'bin/rampart.js', 'ca', '--state-dir', stateDir, '--listen', '127.0.0.1:0', '--monitoring-listen', '127.0.0.1:0', '--log-level', 'warn'];
  if (options.workers !== undefined) args.push('--workers', String(options.workers));
  args.push(...(options.extraArgs ?? []));
  const child: ChildProcess = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  // BENCH_CA_OUTPUT=FILE keeps everything the CA prints (e.g. with BENCH_CA_NODE_FLAGS=--trace-gc).
  const tee = process.env['BENCH_CA_OUTPUT'];
  if (tee) for (const s of [child.stdout!, child.stderr!]) s.on('data', (c: Buffer) => appendFileSync(tee, c));
  let output = '';
  let peakKb = 0;
  const sample = (): void => {
    let kb = statusKb(pid, 'VmHWM');
    for (const c of childPids(pid)) kb += statusKb(c, 'VmHWM');
    peakKb = Math.max(peakKb, kb);
  };
  const sampler = setInterval(sample, 250);
  sampler.unref();
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const apiUrl = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`CA did not start within ${options.startTimeoutMs ?? 120_000} ms:\n${output.slice(-2000)}`)), options.startTimeoutMs ?? 120_000);
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-20_000);
      const m = BANNER.exec(output) ?? JSON_URL.exec(output);
      if (m !== null) {
        clearTimeout(timer);
        res(m[1]!);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`CA exited (${code}) before starting:\n${output.slice(-2000)}`));
    });
  });
  const monitoring = BANNER_MONITORING.exec(output) ?? JSON_MONITORING.exec(output);
  // Keep draining its output so it never blocks on a full pipe.
  const rootPem = readFileSync(join(stateDir, 'root-cert.pem'), 'utf8');
  let stopped = false;
  return {
    pid,
    apiUrl,
    monitoringUrl: monitoring?.[1] ?? null,
    stateDir,
    rootPem,
    peakRssMb() {
      sample();
      return Math.round(peakKb / 102.4) / 10;
    },
    cpuSeconds: () => (cpuTicks(pid) + childPids(pid).reduce((a, c) => a + cpuTicks(c), 0)) / CLK_TCK,
    tail: () => output.slice(-2000),
    async stop() {
      if (stopped) return;
      stopped = true;
      sample();
      clearInterval(sampler);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(killer);
      }
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
