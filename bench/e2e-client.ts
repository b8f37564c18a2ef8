/**
 * Load generator for the e2e HTTPS figure: N keep-alive HTTPS clients (one node:https Agent)
 * POST real CSRs from a pre-generated pool with dev tokens for T seconds after a short warm-up.
 * Usage: node --import tsx bench/e2e-client.ts --url U --ca-file F --tokens-file F
 *        [--clients 64] [--seconds 10] [--warmup 1] [--csrs 256]
 */
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { makeCsrPool } from './csr-pool.js';
import { csrBody, loopbackUrl, postCsr, trustContext, type PostTarget } from './post-csr.js';
import { argNumber, argString, emitResult, note } from './result-line.js';
import { quantile, round } from './stats.js';

const clients = argNumber('clients', 64);
const seconds = argNumber('seconds', 10);
const warmupSeconds = argNumber('warmup', 1);
const tokens = JSON.parse(readFileSync(argString('tokens-file', ''), 'utf8')) as string[];
const bodies = makeCsrPool(argNumber('csrs', 256)).map(csrBody);
const agent = new Agent({ keepAlive: true, maxSockets: clients, maxFreeSockets: clients });
const target: PostTarget = { url: loopbackUrl(argString('url', '')), secureContext: trustContext(readFileSync(argString('ca-file', ''), 'utf8')), agent, timeoutMs: 10_000 };

const latencies: number[] = [];
const failures: Record<string, number> = {};
let ok = 0;
let totalOk = 0;
let measuring = false;
let stop = false;
let next = 0;

async function client(): Promise<void> {
  while (!stop) {
    const i = next++;
    const r = await postCsr(target, tokens[i % tokens.length]!, bodies[i % bodies.length]!);
    if (r.status === 200) totalOk++;
    if (!measuring) continue;
    if (r.status === 200) {
      ok++;
      latencies.push(r.ms);
    } else {
      const key = r.status === 0 ? `error:${r.error}` : `${r.status}:${r.code ?? '?'}`;
      failures[key] = (failures[key] ?? 0) + 1;
    }
  }
}

const loops = Array.from({ length: clients }, () => client());
await new Promise((r) => setTimeout(r, warmupSeconds * 1000));
measuring = true;
const started = performance.now();
await new Promise((r) => setTimeout(r, seconds * 1000));
measuring = false;
const elapsed = (performance.now() - started) / 1000;
stop = true;
await Promise.all(loops);
agent.destroy();
latencies.sort((a, b) => a - b);
const result = {
  clients,
  seconds: round(elapsed, 2),
  certsPerSecond: Math.round(ok / elapsed),
  p50Ms: round(quantile(latencies, 0.5), 2),
  p99Ms: round(quantile(latencies, 0.99), 2),
  ok,
  totalOkWithWarmup: totalOk,
  failures: Object.values(failures).reduce((a, b) => a + b, 0),
  failureKinds: failures,
};
note(`e2e client: ${JSON.stringify(result)}`);
emitResult(result);
