/**
 * e2e HTTPS issuance: a fresh CA process (default workers, then --workers 2 if asked), and a
 * separate load-generator process with keep-alive clients, dev tokens and real CSRs.
 * Usage: node --import tsx bench/section-e2e.ts [--seconds 10] [--clients 64] [--workers 1,2] [--warm-up-requests shipped|N]
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { openGcWindow } from './ca-gc.js';
import { startCaProcess, warmUpRequestsArg } from './ca-process.js';
import { benchSpiffeId, mintBenchTokens, writeJson } from './dev-tokens.js';
import { argNumber, argString, emitResult, note } from './result-line.js';
import { spawnScript } from './spawn-section.js';
import { runWrk } from './e2e-wrk.js';
import { makeDerCsr } from './csr-pool.js';
import { issuedProblem, rootsFromPem } from './issued-check.js';
import { csrBody, loopbackUrl, postCsr, trustContext } from './post-csr.js';
import { Agent } from 'node:https';
import { spawnSync } from 'node:child_process';

const seconds = argNumber('seconds', 10);
const clients = argNumber('clients', 64);
const workerCounts = argString('workers', '1,2').split(',').map(Number);
// The CA as the manifests deploy it warms its issue path before it listens (docs/configuration.md).
const warmUpRequests = warmUpRequestsArg(argString('warm-up-requests', 'shipped'));
// wrk when installed: the Node generator needs as much CPU as the CA it measures on 2 cores.
const hasWrk = spawnSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' }).status === 0;
const generator = argString('generator', hasWrk ? 'wrk' : 'node');

interface E2eResult {
  clients: number;
  certsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  ok: number;
  totalOkWithWarmup: number;
  failures: number;
}

function childCount(pid: number): number {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).length;
  } catch {
    return 0;
  }
}

/**
 * wrk counts 2xx answers and reads no body, so after the load the same CA, tokens and identities
 * issue a sample of certificates over a keep-alive connection, each checked as an agent relies on
 * it (chain, own key, SPIFFE ID; outside audit of the bench). Returns how many checked out.
 */
async function checkSample(caUrl: string, rootPem: string, tokens: readonly string[], count: number): Promise<{ checked: number; verified: number; problems: Record<string, number> }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const target = { url: loopbackUrl(caUrl), secureContext: trustContext(rootPem), agent, timeoutMs: 15_000 };
  const roots = rootsFromPem(rootPem);
  const problems: Record<string, number> = {};
  let verified = 0;
  try {
    for (let k = 0; k < count; k++) {
      const csr = makeDerCsr();
      const r = await postCsr(target, tokens[k % tokens.length]!, csrBody(csr.csrPem));
      const problem = r.status !== 200 || r.body === undefined ? `status ${r.status}` : issuedProblem(r.body, roots, csr.privateKey, benchSpiffeId(`load-${k % tokens.length}`));
      if (problem === null) verified++;
      else problems[problem] = (problems[problem] ?? 0) + 1;
    }
  } finally {
    agent.destroy();
  }
  return { checked: count, verified, problems };
}

async function runOnce(workers: number): Promise<Record<string, unknown>> {
  const ca = await startCaProcess({ ...(workers === 1 ? {} : { workers }), extraArgs: ['--warm-up-requests', String(warmUpRequests)] });
  try {
    // Give cluster workers (if any) a moment to come up before counting them.
    await new Promise((r) => setTimeout(r, 1000));
    const processes = 1 + childCount(ca.pid);
    const tokensFile = writeJson(join(ca.stateDir, 'bench-tokens.json'), await mintBenchTokens(ca.stateDir, 8));
    note(`e2e: CA pid ${ca.pid} at ${ca.apiUrl} (--workers ${workers}, ${processes} process(es)); ${clients} ${generator} clients for ${seconds}s`);
    const closeGcWindow = await openGcWindow(ca.monitoringUrl);
    const cpuBefore = ca.cpuSeconds();
    const r: E2eResult =
      generator === 'wrk'
        ? await runWrk({ url: ca.apiUrl, tokens: JSON.parse(readFileSync(tokensFile, 'utf8')) as string[], clients, seconds, workDir: ca.stateDir })
        : await spawnScript<E2eResult>('e2e-client.ts', ['--url', ca.apiUrl, '--ca-file', join(ca.stateDir, 'root-cert.pem'), '--tokens-file', tokensFile, '--clients', String(clients), '--seconds', String(seconds)], (seconds + 120) * 1000).result;
    // CA CPU per certificate is the figure that survives a shared, busy machine.
    const caCpuMsPerCert = Math.round((100_000 * (ca.cpuSeconds() - cpuBefore)) / Math.max(1, r.totalOkWithWarmup)) / 100;
    const caGc = await closeGcWindow();
    const sample = await checkSample(ca.apiUrl, readFileSync(join(ca.stateDir, 'root-cert.pem'), 'utf8'), JSON.parse(readFileSync(tokensFile, 'utf8')) as string[], 64);
    return { generator, ...r, workers, caProcesses: processes, caPeakRssMb: ca.peakRssMb(), caCpuMsPerCert, caGc, sampleCertificates: sample };
  } finally {
    await ca.stop();
  }
}

const runs: Record<string, unknown>[] = [];
for (const w of workerCounts) {
  try {
    runs.push(await runOnce(w));
  } catch (e) {
    note(`e2e --workers ${w} failed: ${(e as Error).message}`);
    runs.push({ workers: w, error: (e as Error).message.slice(0, 500) });
  }
}
emitResult(runs);
