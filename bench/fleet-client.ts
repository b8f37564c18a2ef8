/**
 * A process of simulated agents for the fleet figure. Before the clock starts it mints one dev
 * token (own service account) and one fresh key + CSR per agent, then prints READY. On the
 * stdin line `GO` every agent requests its certificate at once over its own new connection, as
 * a freshly started pod would. 429/503 honour Retry-After plus up to 1 s of jitter; transport
 * errors back off exponentially with full jitter from 1 s (DESIGN section 7); any other answer
 * is a permanent failure, as is having no certificate at the deadline. After the clock stops every
 * certificate is checked (bench/issued-check.ts); one that does not check out is a permanent failure.
 * Usage: node --import tsx bench/fleet-client.ts --url U --ca-file F --state-dir D
 *        [--agents 5000] [--index 0] [--deadline 60]
 */
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { makeDerCsr } from './csr-pool.js';
import { benchSpiffeId, mintBenchTokens } from './dev-tokens.js';
import { postOverFreshTls, type FreshTlsTarget } from './fresh-tls-post.js';
import { issuedProblem, rootsFromPem } from './issued-check.js';
import { csrBody, trustContext } from './post-csr.js';
import { argNumber, argString, emitResult, note } from './result-line.js';

const agents = argNumber('agents', 5000);
const index = argNumber('index', 0);
const deadlineMs = argNumber('deadline', 60) * 1000;
const caUrl = new URL(argString('url', ''));
const rootPem = readFileSync(argString('ca-file', ''), 'utf8');
const target: FreshTlsTarget = {
  // localhost pinned to 127.0.0.1: no IPv6/DNS lookups per agent.
  host: caUrl.hostname === 'localhost' ? '127.0.0.1' : caUrl.hostname,
  port: Number(caUrl.port),
  servername: caUrl.hostname,
  secureContext: trustContext(rootPem),
  timeoutMs: 15_000, // the agent's CaClient default
};

const prepStarted = performance.now();
const tokens = await mintBenchTokens(argString('state-dir', ''), agents, `fleet-${index}`);
const csrs = Array.from({ length: agents }, () => makeDerCsr());
const bodies = csrs.map((c) => csrBody(c.csrPem));
/** Each agent's answer, checked after the clock stops. */
const issued: (string | undefined)[] = new Array(agents);
note(`fleet client ${index}: ${agents} tokens + keys + CSRs in ${Math.round(performance.now() - prepStarted)} ms`);

const counts = { attempts: 0, status429: 0, status503: 0, transportErrors: 0 };
const failureKinds: Record<string, number> = {};
let certified = 0;
let lastCertifiedAt = 0;
/** When each agent got its certificate, in ms after GO (for the spread, not just the last). */
const certifiedAfterMs: number[] = [];
let deadlineAt = 0;
let goAt = 0;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

async function agent(i: number): Promise<void> {
  let backoffs = 0;
  while (Date.now() < deadlineAt) {
    counts.attempts++;
    const r = await postOverFreshTls(target, tokens[i]!, bodies[i]!);
    if (r.status === 200) {
      issued[i] = r.body;
      certified++;
      lastCertifiedAt = Math.max(lastCertifiedAt, Date.now());
      certifiedAfterMs.push(Date.now() - goAt);
      return;
    }
    if (r.status === 429 || r.status === 503) {
      if (r.status === 429) counts.status429++;
      else counts.status503++;
      await sleep((r.retryAfter ?? 1) * 1000 + Math.random() * 1000);
    } else if (r.status === 0) {
      counts.transportErrors++;
      failureKinds[`transport:${r.error}`] = (failureKinds[`transport:${r.error}`] ?? 0) + 1;
      await sleep(Math.random() * Math.min(60_000, 1000 * 2 ** backoffs++));
    } else {
      const key = `${r.status}:${r.code ?? '?'}`;
      failureKinds[key] = (failureKinds[key] ?? 0) + 1;
      return;
    }
  }
  failureKinds['deadline'] = (failureKinds['deadline'] ?? 0) + 1;
}

process.stdout.write('READY\n');
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.startsWith('GO')) break;
}
lines.close();
goAt = Date.now();
const cpuAtGo = process.cpuUsage();
deadlineAt = goAt + deadlineMs;
await Promise.all(Array.from({ length: agents }, (_, i) => agent(i)));
const cpu = process.cpuUsage(cpuAtGo);
const cpuSeconds = Math.round((cpu.user + cpu.system) / 1e4) / 100;
// After the clock: a certificate that does not check out is a permanent failure.
const roots = rootsFromPem(rootPem);
let verified = 0;
issued.forEach((body, i) => {
  if (body === undefined) return;
  const problem = issuedProblem(body, roots, csrs[i]!.privateKey, benchSpiffeId(`fleet-${index}-${i}`));
  if (problem === null) {
    verified++;
    return;
  }
  const kind = `invalid certificate: ${problem}`;
  failureKinds[kind] = (failureKinds[kind] ?? 0) + 1;
});
const result = { index, agents, certified, verified, permanentFailures: agents - verified, goAt, lastCertifiedAt, cpuSeconds, ...counts, failureKinds };
note(`fleet client ${index}: ${JSON.stringify(result)}`);
// The per-agent times go only to the section (too long for the progress line above).
emitResult({ ...result, certifiedAfterMs });
