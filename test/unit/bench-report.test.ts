import assert from 'node:assert/strict';
import { test } from 'node:test';
// @ts-expect-error -- plain ESM JavaScript without types; the bench runs it as is.
import { buildRows } from '../../bench/report.mjs';
import { shippedWarmUpRequests } from '../../bench/ca-process.js';
import { MAX_WARM_UP_REQUESTS } from '../../src/config/ca-config.js';

interface Row {
  figure: string;
  value: unknown;
  target: string;
  met: boolean | null;
}

const row = (rows: Row[], prefix: string): Row => {
  const found = rows.find((r) => r.figure.startsWith(prefix));
  assert.ok(found, `no row ${prefix}`);
  return found;
};

test('bench table: issuance and agent-proxy targets are judged from the same run', () => {
  const proxy = (keepaliveRps: number, keepaliveP99Ms: number, newConnRps: number, newConnP99Ms: number, rssMb: number | null = null, rssMiB: number | null = null) => ({ keepaliveRps, keepaliveP99Ms, newConnRps, newConnP99Ms, rssMb, rssMiB });
  const rows = buildRows({
    issuance: { nativeLimitPerCore: 6000, nativeFreshKeyPerCore: 4200, inProcessPerCore: 4900, peculiarNaivePerCore: 240, goX509PerCore: 5000, perRoundRatios: { inProcessOverGo: 0.97, inProcessOverNative: 0.81, inProcessOverNaive: 20.1 } },
    proxy: { haproxy: proxy(15000, 2.0, 600, 40), rampart: proxy(16000, 2.5, 1300, 20, 59.5, 56.7), rampartPlainTls: proxy(12000, 3.0, 300, 60, 61, 58.2) },
  }) as Row[];
  // 4900 >= 0.8 x 6000 but < Go's 5000.
  assert.equal(row(rows, 'issuance.inProcessPerCore').met, false);
  assert.equal(row(rows, 'issuance.inProcess / peculiarNaive').value, 20.4);
  assert.equal(row(rows, 'issuance.inProcess / peculiarNaive').met, true);
  assert.equal(row(rows, 'proxy.rampart (h2 tunnel) keep-alive rps vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart (h2 tunnel) new-conn rps vs haproxy').value, 2.17);
  assert.equal(row(rows, 'proxy.rampart (h2 tunnel) new-conn rps vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart (h2 tunnel) keep-alive p99 vs haproxy').met, false);
  assert.equal(row(rows, 'proxy.rampart (h2 tunnel) new-conn p99 vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart rssMb after the run').met, true);
  // The per-connection mode is shown, not judged; the judged rows name the tunnel.
  assert.equal(row(rows, 'proxy.rampartPlainTls (mTLS per connection)').value, '0.8 / 0.5');
  assert.equal(row(rows, 'proxy.rampartPlainTls (mTLS per connection)').met, null);
  assert.equal(row(rows, 'issuance per-round ratios').value, '0.97 / 0.81 / 20.1');
  assert.equal(row(rows, 'proxy wrk socket errors and non-2xx').met, true);
  assert.equal(rows.find((r) => r.figure.startsWith('proxy keep-alive run: both cores busy')), undefined);
  const watched = buildRows({ proxy: { haproxy: { ...proxy(15000, 2.0, 600, 40), machineBusyPct: { keepalive: 91.5, newConn: 88 } }, rampart: { ...proxy(13000, 2.5, 1300, 20), machineBusyPct: { keepalive: 75.2, newConn: 97 } } } }) as Row[];
  assert.equal(row(watched, 'proxy keep-alive run: both cores busy, rampart / haproxy').value, '75.2 / 91.5');
  assert.equal(row(watched, 'proxy keep-alive run: both cores busy, rampart / haproxy').met, null);
  assert.equal(watched.find((r) => r.figure.startsWith('proxy keep-alive run: CPU per request')), undefined);
  const sched = (cpu: number, wait: number) => ({ keepalive: { cpuUsPerRequest: cpu, runQueueWaitPct: wait }, newConn: null });
  const scheduled = buildRows({ proxy: { haproxy: { ...proxy(15000, 2.0, 600, 40), proxySched: sched(35.3, 24.1) }, rampart: { ...proxy(13000, 2.5, 1300, 20), proxySched: sched(38.9, 21) } } }) as Row[];
  assert.equal(row(scheduled, 'proxy keep-alive run: CPU per request, both proxies, all threads, rampart / haproxy').value, '38.9 / 35.3');
  assert.equal(row(scheduled, 'proxy keep-alive run: time runnable but queued for a core, rampart / haproxy').value, '21 / 24.1');
  const erring = buildRows({ proxy: { haproxy: proxy(15000, 2.0, 600, 40), rampart: { ...proxy(16000, 2.5, 1300, 20), wrkErrors: { keepalive: 0, newConn: 3 } } } }) as Row[];
  assert.equal(row(erring, 'proxy wrk socket errors and non-2xx').value, '3 / 0');
  assert.equal(row(erring, 'proxy wrk socket errors and non-2xx').met, false);
  // 60 MB is 10^6 bytes each: 58.5 MiB (61.3 MB) is over it (outside audit: the bench read MiB as MB).
  const heavy = buildRows({ proxy: { haproxy: proxy(15000, 2.0, 600, 40), rampart: proxy(16000, 2.5, 1300, 20, 61.3, 58.5) } }) as Row[];
  assert.equal(row(heavy, 'proxy.rampart rssMb after the run').met, false);
  assert.match(row(heavy, 'proxy.rampart rssMb after the run').target, /58\.5 MiB/);
  // The peak during the run is shown beside the reading after it, never judged; absent when a side lacks it.
  assert.equal(heavy.find((r) => r.figure.startsWith('proxy peak RSS during the run')), undefined);
  const peaked = buildRows({ proxy: { haproxy: { ...proxy(15000, 2.0, 600, 40, 21.5, 20.5), peakRssMb: 22.1 }, rampart: { ...proxy(16000, 2.5, 1300, 20, 59.1, 56.4), peakRssMb: 64.8 } } }) as Row[];
  assert.equal(row(peaked, 'proxy peak RSS during the run (VmHWM), rampart / haproxy').value, '64.8 / 22.1');
  assert.equal(row(peaked, 'proxy peak RSS during the run (VmHWM), rampart / haproxy').met, null);

  const faster = buildRows({ issuance: { nativeLimitPerCore: 6000, inProcessPerCore: 5100, peculiarNaivePerCore: 300, goX509PerCore: 5000 } }) as Row[];
  assert.equal(row(faster, 'issuance.inProcessPerCore').met, true);
  assert.equal(row(faster, 'issuance.inProcess / peculiarNaive').met, false);
});

test('bench table: the fleet rows show the TLS floor beside the figure it bounds', () => {
  const tlsFloor = { connections: 2000, concurrency: 32, serverCpuMsPerConnection: 0.9, clientCpuMsPerConnection: 1.8, secondsForAgents: 13.5, agents: 10000, cores: 2, client: 'go' };
  const fleet = { agents: 10000, client: 'go', caWorkers: 2, secondsToAllCertified: 29.1, permanentFailures: 0, caPeakRssMb: 339, caCpuMsPerAgent: 2.46, caCpuSeconds: 24.6, clientCpuSeconds: 29.9, certified: 10000, status429: 0, status503: 0, transportErrors: 5129 };
  const rows = buildRows({ fleet: { ...fleet, tlsFloor } }) as Row[];
  assert.equal(row(rows, 'fleet.secondsToAllCertified').met, false);
  assert.equal(row(rows, 'fleet TLS floor CPU ms/connection').value, '0.9 / 1.8');
  assert.equal(row(rows, 'fleet TLS floor: handshakes of 10000 agents on 2 cores').value, 13.5);
  // Which simulated-agent client ran decides both CPU figures, so the table names it.
  assert.match(row(rows, 'fleet TLS floor CPU ms/connection').target, /go client/);
  assert.match(row(rows, 'fleet simulated agents CPU ms/agent').target, /^info: go client, CA --workers 2$/);
  const without = buildRows({ fleet }) as Row[];
  assert.equal(without.some((r) => r.figure.startsWith('fleet TLS floor')), false);
  // A CA that warmed up before the fleet says so beside its CPU, with the value it shipped with.
  assert.equal(row(rows, 'fleet CA CPU ms/agent').target, 'info: 24.6 CPU s in total');
  const warmed = buildRows({ fleet: { ...fleet, caWarmUpRequests: 1000 } }) as Row[];
  assert.equal(row(warmed, 'fleet CA CPU ms/agent').target, 'info: 24.6 CPU s in total; CA --warm-up-requests 1000, as shipped');
});

test('bench: the fleet warms its CA up as the shipped Deployment does', () => {
  const shipped = shippedWarmUpRequests();
  assert.ok(Number.isSafeInteger(shipped) && shipped > 0, `manifests/base/deployment.yaml ships --warm-up-requests ${shipped}`);
  assert.ok(shipped <= MAX_WARM_UP_REQUESTS);
});

test('bench table: the shedding run is judged on 429s answered and every agent certified', () => {
  const run = { agents: 2000, caMaxInFlight: 4, status429: 362, certificatesVerified: 2000, permanentFailures: 0, secondsToAllCertified: 4.9 };
  const rows = buildRows({ fleetShedding: run }) as Row[];
  assert.equal(row(rows, 'fleetShedding (2000 agents, CA --max-in-flight 4 per process): 429').met, true);
  assert.equal(row(rows, 'fleetShedding (2000 agents, CA --max-in-flight 4 per process): certificates').met, true);
  // No 429 means nothing was shown to shed, and a lost agent fails it whatever the 429s.
  const none = buildRows({ fleetShedding: { ...run, status429: 0 } }) as Row[];
  assert.equal(row(none, 'fleetShedding (2000 agents, CA --max-in-flight 4 per process): 429').met, false);
  const lost = buildRows({ fleetShedding: { ...run, certificatesVerified: 1999, permanentFailures: 1 } }) as Row[];
  assert.equal(row(lost, 'fleetShedding (2000 agents, CA --max-in-flight 4 per process): certificates').met, false);
});

test('bench table: a reduced run (--quick) shows the fleet and TokenReview figures without a verdict', () => {
  const fleet = (agents: number) => ({ agents, client: 'go', caWorkers: 2, secondsToAllCertified: 4.2, permanentFailures: 0, caPeakRssMb: 200, caCpuMsPerAgent: 2, caCpuSeconds: 1, clientCpuSeconds: 1, certified: agents, status429: 0, status503: 0, transportErrors: 0 });
  const review = (identities: number) => ({ issuances: identities * 10, identities, issued: identities * 10, failed: 0, tokenReviewCalls: identities, apiCallsPer1000Issuances: 100, seconds: 0.5 });
  const quick = buildRows({ fleet: fleet(500), tokenReview: review(30) }) as Row[];
  assert.equal(row(quick, 'fleet.secondsToAllCertified').met, null);
  assert.match(row(quick, 'fleet.secondsToAllCertified').target, /for 10000 agents/);
  assert.equal(row(quick, 'tokenReview.apiCallsPer1000Issuances').met, null);
  assert.match(row(quick, 'tokenReview.apiCallsPer1000Issuances').target, /30 identities/);
  const full = buildRows({ fleet: fleet(10_000), tokenReview: review(100) }) as Row[];
  assert.equal(row(full, 'fleet.secondsToAllCertified').met, true);
  assert.equal(row(full, 'tokenReview.apiCallsPer1000Issuances').met, true);
});
