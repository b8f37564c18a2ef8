/**
 * The e2e HTTPS load from wrk (C, one thread, keep-alive connections) instead of the Node client:
 * on a 2-core box the Node generator needs as much CPU as the CA it measures, so it runs out of
 * breath first. A Lua script posts real CSRs from a pool with dev tokens, rotating both.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeCsrPool } from './csr-pool.js';

const run = promisify(execFile);

export interface WrkResult {
  readonly generator: 'wrk';
  readonly clients: number;
  readonly certsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly ok: number;
  readonly totalOkWithWarmup: number;
  readonly failures: number;
  /** wrk's own report of the measured run, kept so its figures can be checked afterwards. */
  readonly wrkReport: string;
}

function luaString(text: string): string {
  return JSON.stringify(text);
}

function script(bodies: readonly string[], tokens: readonly string[]): string {
  return [
    `bodies = {${bodies.map(luaString).join(',')}}`,
    `tokens = {${tokens.map((t) => luaString(`Bearer ${t}`)).join(',')}}`,
    'counter = 0',
    'request = function()',
    '  counter = counter + 1',
    '  return wrk.format("POST", "/v1/certificates", {["Content-Type"]="application/json", ["Authorization"]=tokens[(counter % #tokens) + 1]}, bodies[(counter % #bodies) + 1])',
    'end',
    '',
  ].join('\n');
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : n;
}

function durationSeconds(value: string, unit: string): number {
  return toMs(value, unit) / 1000;
}

/**
 * Parses wrk's `--latency` report. The rate counts certificates: wrk's own Requests/sec counts
 * every answer, a 401 or 429 as well (outside audit), so it is the answers without the non-2xx
 * ones and the socket errors over the run's duration.
 */
export function parseWrk(output: string, clients: number): Omit<WrkResult, 'totalOkWithWarmup'> {
  const run = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(output);
  const total = Number(run?.[1] ?? NaN);
  const seconds = run ? durationSeconds(run[2] as string, run[3] as string) : NaN;
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return m ? Math.round(toMs(m[1] as string, m[2] as string) * 100) / 100 : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(total) || !(seconds > 0)) throw new Error(`cannot read wrk's output: ${output.slice(0, 300)}`);
  const ok = Math.max(0, total - errors);
  return { generator: 'wrk', clients, certsPerSecond: Math.round(ok / seconds), p50Ms: pct('50'), p99Ms: pct('99'), ok, failures: errors, wrkReport: output };
}

/** Runs wrk against the CA for `seconds` after a 1 s warm-up. */
export async function runWrk(options: { url: string; tokens: readonly string[]; clients: number; seconds: number; workDir: string }): Promise<WrkResult> {
  const luaPath = join(options.workDir, 'bench-post.lua');
  writeFileSync(luaPath, script(makeCsrPool(64).map((csr) => JSON.stringify({ csr })), options.tokens));
  const target = new URL(options.url);
  const url = `${target.protocol}//127.0.0.1:${target.port}`;
  const warm = await run('wrk', ['-t1', `-c${options.clients}`, '-d1s', '-s', luaPath, url], { maxBuffer: 1 << 20 });
  const warmOk = parseWrk(warm.stdout, options.clients).ok;
  const { stdout } = await run('wrk', ['-t1', `-c${options.clients}`, `-d${options.seconds}s`, '--latency', '-s', luaPath, url], { maxBuffer: 1 << 20 });
  const parsed = parseWrk(stdout, options.clients);
  return { ...parsed, totalOkWithWarmup: parsed.ok + warmOk };
}
