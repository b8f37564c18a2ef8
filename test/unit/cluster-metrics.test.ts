import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { ClusterMetrics, monotonicMetricsJson, type MetricsJson } from '../../src/observability/cluster-metrics.js';

/** A worker's registry with the shapes the CA uses: a labelled counter, a histogram, a gauge. */
function workerRegistry(): { registry: Registry; issued: Counter<'result'>; latency: Histogram; inFlight: Gauge } {
  const registry = new Registry();
  return {
    registry,
    issued: new Counter({ name: 'rampart_ca_certificates_issued_total', help: 'h', labelNames: ['result'], registers: [registry] }),
    latency: new Histogram({ name: 'rampart_ca_sign_seconds', help: 'h', buckets: [0.001, 0.01], registers: [registry] }),
    inFlight: new Gauge({ name: 'rampart_ca_in_flight', help: 'h', registers: [registry] }),
  };
}

const sample = (text: string, series: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  assert.ok(line, `no ${series} in\n${text}`);
  return Number(line.slice(series.length + 1));
};

const report = (r: Registry): Promise<MetricsJson> => r.getMetricsAsJSON();

test('cluster metrics: an exited worker keeps its counts, and no counter ever goes down', async () => {
  const primary = new Registry();
  const a = workerRegistry();
  const b = workerRegistry();
  a.issued.inc({ result: 'ok' }, 5);
  b.issued.inc({ result: 'ok' }, 7);
  b.issued.inc({ result: 'refused' }, 1);
  a.latency.observe(0.005);
  b.latency.observe(0.0005);
  a.inFlight.set(3);
  b.inFlight.set(2);
  const merged = new ClusterMetrics();
  const reportsAB = [await report(a.registry), await report(b.registry)];
  merged.observe(1, reportsAB[0]!);
  merged.observe(2, reportsAB[1]!);
  let text = await merged.exposition(await report(primary), reportsAB);
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="ok"}'), 12);
  assert.equal(sample(text, 'rampart_ca_sign_seconds_count'), 2);
  assert.equal(sample(text, 'rampart_ca_in_flight'), 5);

  // Worker 1 issues 2 more that it never reports, then exits; a replacement (3) starts at zero.
  a.issued.inc({ result: 'ok' }, 2);
  merged.retire(1);
  const c = workerRegistry();
  c.issued.inc({ result: 'ok' }, 1);
  b.issued.inc({ result: 'ok' }, 1);
  text = await merged.exposition(await report(primary), [await report(b.registry), await report(c.registry)]);
  // 5 (retired, last report) + 8 + 1: nothing lost that was reported, nothing counted twice.
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="ok"}'), 14);
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="refused"}'), 1);
  assert.equal(sample(text, 'rampart_ca_sign_seconds_count'), 2);
  assert.equal(sample(text, 'rampart_ca_sign_seconds_bucket{le="0.001"}'), 1);
  // Gauges are the live workers' only: the exited worker's 3 in flight are gone with it.
  assert.equal(sample(text, 'rampart_ca_in_flight'), 2);

  // A worker that exits before it ever reported leaves nothing to keep; its absence from a
  // scrape must not pull a counter below what was already exposed.
  merged.retire(99);
  text = await merged.exposition(await report(primary), [await report(c.registry)]);
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="ok"}'), 14, 'worker 2 missed this scrape: held, not dropped');
  text = await merged.exposition(await report(primary), [await report(b.registry), await report(c.registry)]);
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="ok"}'), 14);
  b.issued.inc({ result: 'ok' }, 3);
  text = await merged.exposition(await report(primary), [await report(b.registry), await report(c.registry)]);
  assert.equal(sample(text, 'rampart_ca_certificates_issued_total{result="ok"}'), 17);
});

test('the between-scrapes refresh takes counters and histograms only, and runs no gauge collector', async () => {
  const { registry, issued, latency } = workerRegistry();
  let gaugeCollections = 0;
  new Gauge({ name: 'rampart_ca_open_fds', help: 'h', registers: [registry], collect() { gaugeCollections++; } });
  issued.inc({ result: 'ok' }, 3);
  latency.observe(0.002);
  const taken = await monotonicMetricsJson(registry);
  assert.deepEqual(taken.map((m) => m.name).sort(), ['rampart_ca_certificates_issued_total', 'rampart_ca_sign_seconds']);
  assert.equal(gaugeCollections, 0);
  const counter = taken.find((m) => m.name === 'rampart_ca_certificates_issued_total');
  assert.deepEqual(counter?.values.map((v) => [v.labels, v.value]), [[{ result: 'ok' }, 3]]);
  // What a full report says of the same two, so a kept refresh folds in as a scrape's would.
  const full = (await registry.getMetricsAsJSON()).filter((m) => m.name !== 'rampart_ca_open_fds' && m.name !== 'rampart_ca_in_flight');
  assert.deepEqual(taken.sort((a, b) => a.name.localeCompare(b.name)), full.sort((a, b) => a.name.localeCompare(b.name)));
});
