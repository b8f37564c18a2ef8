/**
 * Fleet start: N simulated agents in P client processes start at once against a fresh CA
 * process. Reports seconds until every agent holds a certificate, the CA's peak RSS (VmHWM)
 * and permanent failures.
 * Then, with the CA stopped, the TLS floor under that figure (bench/tls-floor.ts): the CPU a bare
 * node:tls server with the CA's TLS settings and the agents' own client spend per new connection.
 * Usage: node --import tsx bench/section-fleet.ts [--agents 10000] [--processes 2] [--deadline 60] [--workers 1]
 *        [--floor-connections 2000]
 */
import { join } from 'node:path';
import { startCaProcess } from './ca-process.js';
import { argNumber, emitResult, note } from './result-line.js';
import { spawnScript } from './spawn-section.js';
import { measureTlsFloor } from './tls-floor.js';

const agents = argNumber('agents', 10_000);
const processes = argNumber('processes', 2);
const deadline = argNumber('deadline', 60);
const workers = argNumber('workers', 1);
const floorConnections = argNumber('floor-connections', 2000);

interface ClientResult {
  agents: number;
  certified: number;
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

const ca = await startCaProcess(workers === 1 ? {} : { workers });
let fleet: Record<string, unknown>;
try {
  const per = Math.ceil(agents / processes);
  const clients = Array.from({ length: processes }, (_, i) =>
    spawnScript<ClientResult>(
      'fleet-client.ts',
      ['--url', ca.apiUrl, '--ca-file', join(ca.stateDir, 'root-cert.pem'), '--state-dir', ca.stateDir, '--agents', String(Math.min(per, agents - i * per)), '--index', String(i), '--deadline', String(deadline)],
      (deadline + 300) * 1000,
    ),
  );
  await Promise.all(clients.map((c) => new Promise<void>((res) => c.onLine((l) => l === 'READY' && res()))));
  const rssBeforeMb = ca.peakRssMb();
  note(`fleet: ${agents} agents in ${processes} processes ready; CA pid ${ca.pid} (${rssBeforeMb} MB); GO`);
  const goAt = Date.now();
  const cpuBefore = ca.cpuSeconds();
  for (const c of clients) c.send('GO');
  const results = await Promise.all(clients.map((c) => c.result));
  const certified = results.reduce((a, r) => a + r.certified, 0);
  const last = Math.max(...results.map((r) => r.lastCertifiedAt));
  const sum = (k: 'attempts' | 'status429' | 'status503' | 'transportErrors'): number => results.reduce((a, r) => a + r[k], 0);
  const failureKinds: Record<string, number> = {};
  for (const r of results) for (const [k, v] of Object.entries(r.failureKinds)) failureKinds[k] = (failureKinds[k] ?? 0) + v;
  const caCpuSeconds = Math.round((ca.cpuSeconds() - cpuBefore) * 100) / 100;
  // Relative to this process's GO; the clients' own GO differs by the stdin hop (a few ms).
  const spread = results.flatMap((r) => r.certifiedAfterMs.map((ms) => ms + (r.goAt - goAt))).sort((a, b) => a - b);
  const secondsAt = (q: number): number | null => (spread.length === 0 ? null : Math.round((spread[Math.min(spread.length - 1, Math.ceil(q * spread.length) - 1)] ?? 0) / 100) / 10);
  fleet = {
    agents,
    clientProcesses: processes,
    caWorkers: workers,
    certified,
    secondsToAllCertified: certified === agents ? Math.round((last - goAt) / 100) / 10 : null,
    secondsToCertified: { p50: secondsAt(0.5), p90: secondsAt(0.9), p99: secondsAt(0.99) },
    caPeakRssMb: ca.peakRssMb(),
    caRssBeforeStartMb: rssBeforeMb,
    caCpuSeconds,
    caCpuMsPerAgent: Math.round((100_000 * caCpuSeconds) / Math.max(1, certified)) / 100,
    permanentFailures: agents - certified,
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
const tlsFloor = await measureTlsFloor({ connections: floorConnections, concurrency: 32, agents });
note(`fleet TLS floor: ${JSON.stringify(tlsFloor)}`);
emitResult({ ...fleet, tlsFloor });
