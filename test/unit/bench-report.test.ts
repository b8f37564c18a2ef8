import assert from 'node:assert/strict';
import { test } from 'node:test';
// @ts-expect-error -- plain ESM JavaScript without types; the bench runs it as is.
import { buildRows } from '../../bench/report.mjs';

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
  const proxy = (keepaliveRps: number, keepaliveP99Ms: number, newConnRps: number, newConnP99Ms: number, rssMb: number | null = null) => ({ keepaliveRps, keepaliveP99Ms, newConnRps, newConnP99Ms, rssMb });
  const rows = buildRows({
    issuance: { nativeLimitPerCore: 6000, nativeFreshKeyPerCore: 4200, inProcessPerCore: 4900, peculiarNaivePerCore: 240, goX509PerCore: 5000 },
    proxy: { haproxy: proxy(15000, 2.0, 600, 40), rampart: proxy(16000, 2.5, 1300, 20, 58) },
  }) as Row[];
  // 4900 >= 0.8 x 6000 but < Go's 5000.
  assert.equal(row(rows, 'issuance.inProcessPerCore').met, false);
  assert.equal(row(rows, 'issuance.inProcess / peculiarNaive').value, 20.4);
  assert.equal(row(rows, 'issuance.inProcess / peculiarNaive').met, true);
  assert.equal(row(rows, 'proxy.rampart keep-alive rps vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart new-conn rps vs haproxy').value, 2.17);
  assert.equal(row(rows, 'proxy.rampart new-conn rps vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart keep-alive p99 vs haproxy').met, false);
  assert.equal(row(rows, 'proxy.rampart new-conn p99 vs haproxy').met, true);
  assert.equal(row(rows, 'proxy.rampart rssMb after the run').met, true);

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
});
