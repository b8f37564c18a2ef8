/**
 * The bench reads the CA's GC pauses from its /metrics: the parser must sum prom-client's own
 * exposition of the histogram over GC kinds, and the window must count long pauses from the
 * buckets, whatever the order of labels.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { gcWindow, parseGcReading } from '../../bench/ca-gc.js';
// @ts-expect-error -- plain ESM JavaScript without types; the bench runs it as is.
import { buildRows } from '../../bench/report.mjs';

function registryWith(observations: Array<[string, number]>): Registry {
  const registry = new Registry();
  // The name and buckets prom-client's collectDefaultMetrics uses, with the CA's prefix.
  const gc = new Histogram({ name: 'rampart_ca_nodejs_gc_duration_seconds', help: 'gc', labelNames: ['kind'], buckets: [0.001, 0.01, 0.1, 1, 2, 5], registers: [registry] });
  for (const [kind, seconds] of observations) gc.observe({ kind }, seconds);
  // A metric whose name starts the same way must not be counted.
  new Histogram({ name: 'rampart_ca_nodejs_gc_duration_seconds_other', help: 'x', registers: [registry] }).observe(9);
  return registry;
}

test('parseGcReading sums every GC kind; gcWindow counts the pauses over 10 ms and 100 ms between two readings', async () => {
  const before = parseGcReading(await registryWith([['minor', 0.0005], ['major', 0.02]]).metrics());
  assert.deepEqual(before, { seconds: 0.0205, pauses: 2, upTo10ms: 1, upTo100ms: 2 });
  const after = parseGcReading(await registryWith([['minor', 0.0005], ['major', 0.02], ['minor', 0.004], ['major', 0.25], ['incremental', 0.05], ['weakcb', 0.0002]]).metrics());
  assert.equal(after.pauses, 6);
  assert.deepEqual(gcWindow(before, after), { pauseSeconds: 0.304, pauses: 4, over10ms: 2, over100ms: 1 });
  assert.deepEqual(parseGcReading('# nothing here\n'), { seconds: 0, pauses: 0, upTo10ms: 0, upTo100ms: 0 });
});

test('bench table: the e2e and fleet rows show the CA GC window when the run read it', () => {
  const caGc = { pauseSeconds: 0.512, pauses: 150, over10ms: 4, over100ms: 0 };
  const e2e = { generator: 'wrk', clients: 64, certsPerSecond: 3000, p50Ms: 20, p99Ms: 45, failures: 0, caProcesses: 3, caCpuMsPerCert: 0.6, caGc };
  const fleet = { agents: 10000, secondsToAllCertified: 14, permanentFailures: 0, caPeakRssMb: 400, caCpuMsPerAgent: 2, caCpuSeconds: 20, certified: 10000, status429: 0, status503: 0, transportErrors: 0, caGc };
  const rows = buildRows({ issuance: { goX509TwoWorkers: 7000, e2eHttps: e2e }, fleet }) as Array<{ figure: string; value: unknown }>;
  assert.equal(rows.find((r) => r.figure.startsWith('issuance.e2eHttps CA GC pauses'))?.value, '0.51 / 150 / 4 / 0');
  assert.equal(rows.find((r) => r.figure.startsWith('fleet CA GC pauses'))?.value, '0.51 / 150 / 4 / 0');
  const without = buildRows({ issuance: { goX509TwoWorkers: 7000, e2eHttps: { ...e2e, caGc: null } }, fleet: { ...fleet, caGc: null } }) as Array<{ figure: string }>;
  assert.equal(without.some((r) => r.figure.includes('GC pauses')), false);
});
