/**
 * Fleet start: N simulated agents in P client processes start at once against a fresh CA
 * process. Reports seconds until every agent holds a certificate, the CA's peak RSS (VmHWM)
 * and permanent failures.
 * Then, with the CA stopped, the TLS floor under that figure (bench/tls-floor.ts): the CPU a bare
 * node:tls server with the CA's TLS settings and the agents' own client spend per new connection.
 *
 * The simulated agents share the machine's cores with the CA, so their own CPU bounds the
 * figure. `--client auto` (the default) runs them in the compiled client bench/fleet-go when Go
 * is installed (same protocol and behaviour as bench/fleet-client.ts, at a fraction of node:tls's
 * CPU per connection), else in Node; `--client node` or `--client go` forces one.
 * `--max-in-flight N` starts the CA with that limit, so it answers 429 with Retry-After to what is
 * beyond it: the shedding run (the full fleet sheds at the TLS layer instead, README "Benchmarks").
 * Usage: node --import tsx bench/section-fleet.ts [--agents 10000] [--processes 2] [--deadline 60] [--workers 1]
 *        [--floor-connections 2000 (0: none)] [--client auto|go|node] [--max-in-flight N]
 *        [--warm-up-requests shipped|N (default shipped: the value manifests/base/deployment.yaml gives the CA)]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openGcWindow } from './ca-gc.js';
import { REPO_ROOT, startCaProcess, warmUpRequestsArg } from './ca-process.js';
import { benchSpiffeId, mintBenchTokens } from './dev-tokens.js';
import { buildGoProgram, type GoBinary } from './go-build.js';
import { argNumber, argString, emitResult, note } from './result-line.js';
import { spawnProgram, spawnScript, type SpawnedScript } from './spawn-section.js';
import { measureTlsFloor } from './tls-floor.js';

const agents = argNumber('agents', 10_000);
const processes = argNumber('processes', 2);
const deadline = argNumber('deadline', 60);
const workers = argNumber('workers', 1);
const floorConnections = argNumber('floor-connections', 2000);
const clientChoice = argString('client', 'auto');
const maxInFlight = argString('max-in-flight', '');
// A fresh CA as the manifests deploy it warms its issue path before it listens (docs/configuration.md).
const warmUpRequests = warmUpRequestsArg(argString('warm-up-requests', 'shipped'));
if (!['auto', 'go', 'node'].includes(clientChoice)) throw new Error(`--client must be auto, go or node, not ${clientChoice}`);

let goClient: GoBinary | undefined;
if (clientChoice !== 'node') {
  const built = buildGoProgram(join(REPO_ROOT, 'bench/fleet-go'), 'fleet-go');
  if (typeof built !== 'string') goClient = built;
  else if (clientChoice === 'go') throw new Error(`--client go: ${built}`);
  else note(`fleet: ${built}; the simulated agents run in Node`);
}
const client = goClient === undefined ? 'node' : 'go';
const tokenDir = mkdtempSync(join(tmpdir(), 'rampart-fleet-tokens-'));
process.once('exit', () => {
  goClient?.dispose();
  rmSync(tokenDir, { recursive: true, force: true });
});

interface ClientResult {
  agents: number;
  certified: number;
  /** Certificates that chain to the root, certify the agent's key and name its SPIFFE ID. */
  verified: number;
  permanentFailures: number;
  goAt: number;
  lastCertifiedAt: number;
  cpuSeconds: number;
  attempts: number;
  status429: number;
  status503: number;
  transportErrors: number;
  failureKinds: Record<string, number>;
  certifiedAfterMs: number[];
}

const ca = await startCaProcess({ ...(workers === 1 ? {} : { workers }), extraArgs: [...(maxInFlight === '' ? [] : ['--max-in-flight', maxInFlight]), '--warm-up-requests', String(warmUpRequests)] });
let fleet: Record<string, unknown>;
try {
  const per = Math.ceil(agents / processes);
  const spawnClient = async (i: number): Promise<SpawnedScript<ClientResult>> => {
    const count = Math.min(per, agents - i * per);
    const common = ['--url', ca.apiUrl, '--ca-file', join(ca.stateDir, 'root-cert.pem'), '--agents', String(count), '--index', String(i), '--deadline', String(deadline)];
    const timeoutMs = (deadline + 300) * 1000;
    if (goClient === undefined) return spawnScript<ClientResult>('fleet-client.ts', [...common, '--state-dir', ca.stateDir], timeoutMs);
    // Minted here with the same service accounts the Node client would mint for itself.
    const tokensFile = join(tokenDir, `tokens-${i}.txt`);
    writeFileSync(tokensFile, (await mintBenchTokens(ca.stateDir, count, `fleet-${i}`)).join('\n'), { mode: 0o600 });
    return spawnProgram<ClientResult>(goClient.path, [...common, '--tokens-file', tokensFile, '--spiffe-prefix', benchSpiffeId(`fleet-${i}-`)], 'bench/fleet-go', timeoutMs);
  };
  const clients = await Promise.all(Array.from({ length: processes }, (_, i) => spawnClient(i)));
  await Promise.all(clients.map((c) => new Promise<void>((res) => c.onLine((l) => l === 'READY' && res()))));
  const rssBeforeMb = ca.peakRssMb();
  const closeGcWindow = await openGcWindow(ca.monitoringUrl);
  note(`fleet: ${agents} agents in ${processes} ${client} processes ready; CA pid ${ca.pid} (${rssBeforeMb} MB); GO`);
  const goAt = Date.now();
  const cpuBefore = ca.cpuSeconds();
  for (const c of clients) c.send('GO');
  const results = await Promise.all(clients.map((c) => c.result));
  const certified = results.reduce((a, r) => a + r.certified, 0);
  const verified = results.reduce((a, r) => a + r.verified, 0);
  const last = Math.max(...results.map((r) => r.lastCertifiedAt));
  const sum = (k: 'attempts' | 'status429' | 'status503' | 'transportErrors'): number => results.reduce((a, r) => a + r[k], 0);
  const failureKinds: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.failureKinds)) failureKinds[k] = (failureKinds[k] ?? 0) + v;
  const caCpuSeconds = Math.round((ca.cpuSeconds() - cpuBefore) * 100) / 100;
  const caGc = await closeGcWindow();
  // Relative to this process's GO; the clients' own GO differs by the stdin hop (a few ms).
  const spread = results.flatMap((r) => r.certifiedAfterMs.map((ms) => ms + (r.goAt - goAt))).sort((a, b) => a - b);
  const secondsAt = (q: number): number | null => (spread.length === 0 ? null : Math.round((spread[Math.min(spread.length - 1, Math.ceil(q * spread.length) - 1)] ?? 0) / 100) / 10);
  fleet = {
    agents,
    clientProcesses: processes,
    client,
    caWorkers: workers,
    caWarmUpRequests: warmUpRequests,
    ...(maxInFlight === '' ? {} : { caMaxInFlight: Number(maxInFlight) }),
    certified,
    certificatesVerified: verified,
    secondsToAllCertified: certified === agents ? Math.round((last - goAt) / 100) / 10 : null,
    secondsToCertified: { p50: secondsAt(0.5), p90: secondsAt(0.9), p99: secondsAt(0.99) },
    caPeakRssMb: ca.peakRssMb(),
    caRssBeforeStartMb: rssBeforeMb,
    caCpuSeconds,
    caCpuMsPerAgent: Math.round((100_000 * caCpuSeconds) / Math.max(1, certified)) / 100,
    caGc,
    permanentFailures: agents - verified,
    // The simulated agents share the machine's cores with the CA: their CPU bounds the figure too.
    clientCpuSeconds: Math.round(results.reduce((a, r) => a + r.cpuSeconds, 0) * 100) / 100,
    attempts: sum('attempts'),
    status429: sum('status429'),
    status503: sum('status503'),
    transportErrors: sum('transportErrors'),
    failureKinds,
  };
} finally {
  await ca.stop();
}
if (floorConnections > 0) {
  const tlsFloor = await measureTlsFloor({ connections: floorConnections, concurrency: 32, agents, ...(goClient === undefined ? {} : { goClient: goClient.path }) });
  note(`fleet TLS floor: ${JSON.stringify(tlsFloor)}`);
  fleet = { ...fleet, tlsFloor };
}
emitResult(fleet);
