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

/** Parses wrk's `--latency` report. */
export function parseWrk(output: string, clients: number): Omit<WrkResult, 'totalOkWithWarmup'> {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? NaN);
  const total = Number(/(\d+) requests in/.exec(output)?.[1] ?? NaN);
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(output);
    return m ? Math.round(toMs(m[1] as string, m[2] as string) * 100) / 100 : NaN;
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(output)?.[1] ?? 0);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(rps) || !Number.isFinite(total)) throw new Error(`cannot read wrk's output: ${output.slice(0, 300)}`);
  return { generator: 'wrk', clients, certsPerSecond: Math.round(rps), p50Ms: pct('50'), p99Ms: pct('99'), ok: total - errors, failures: errors };
}

/** Runs wrk against the CA for `seconds` after a 1 s warm-up. */
export async function runWrk(options: { url: string; tokens: readonly string[]; clients: number; seconds: number; workDir: string }): Promise<WrkResult> {
  const luaPath = join(options.workDir, 'bench-post.lua');
  writeFileSync(luaPath, script(makeCsrPool(64).map((csr) => JSON.stringify({ csr })), options.tokens));
  const target = new URL(options.url);
  const url = `${target.protocol}//127.0.0.1:${target.port}`;
  const warm = await run('wrk', ['-t1', `-c${options.clients}`, '-d1s', '-s', luaPath, url], { maxBuffer: 1 << 20 });
  const warmTotal = Number(/(\d+) requests in/.exec(warm.stdout)?.[1] ?? 0);
  const { stdout } = await run('wrk', ['-t1', `-c${options.clients}`, `-d${options.seconds}s`, '--latency', '-s', luaPath, url], { maxBuffer: 1 << 20 });
  const parsed = parseWrk(stdout, options.clients);
  return { ...parsed, totalOkWithWarmup: parsed.ok + warmTotal };
}
