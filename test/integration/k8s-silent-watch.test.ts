/**
 * Watches whose stream goes silent without closing, as when a NAT entry or a load balancer's flow
 * is dropped: no events, no FIN or RST, and not even the end `timeoutSeconds` asked for (the
 * API test server's `silenceWatches`). Before this, a replica's state watch stayed silent for
 * good and the replica stale with it, signing under a root the others had retired; the leader's
 * publisher stopped serving new namespaces (outside review F1, F2).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { KubernetesStateStore, type KubernetesStateStoreOptions } from '../../src/store/kubernetes-store.js';
import { RootCertPublisher } from '../../src/k8s/root-cert-publisher.js';
import type { CaState, StoredState } from '../../src/core/ports.js';

let api: KubeApiServer;
let core: k8s.CoreV1Api;
const closers: Array<() => unknown> = [];

before(async () => {
  api = await startKubeApiServer();
  core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
});
after(async () => {
  for (const close of closers) await close();
  await api.close();
});

interface Logged {
  readonly level: number;
  readonly msg: string;
}

function capturingLogger(): { logger: pino.Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Logged) });
  return { logger, lines };
}

function store(namespace: string, extra: Partial<KubernetesStateStoreOptions> = {}): KubernetesStateStore {
  const kc = api.kubeConfig();
  const s = new KubernetesStateStore({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, namespace, watchRetryMs: 50, ...extra });
  closers.push(() => s.close());
  return s;
}

function state(updatedAt: number): CaState {
  return { schemaVersion: 1, trustDomain: 'cluster.local', sequence: 0, nextGeneration: 1, roots: [], updatedAt };
}

function secretWatches(namespace: string): number {
  return api.requests.filter((r) => r.verb === 'watch' && r.resource === 'secrets' && r.namespace === namespace).length;
}

/** A watcher store `a` (seeing writes only through its watch) and a writer `b`, the watch open. */
async function watcherAndWriter(namespace: string, options: Partial<KubernetesStateStoreOptions>) {
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  const { logger, lines } = capturingLogger();
  const a = store(namespace, { ...options, logger });
  const b = store(namespace);
  const first = await b.save(state(1), null);
  await a.load();
  const seen: Array<StoredState | null> = [];
  a.watch((s) => void seen.push(s));
  await waitFor('the watch is open', () => secretWatches(namespace) === 1);
  // The watch's first write arrives as an event while the stream still speaks.
  const second = await b.save(state(2), first);
  await waitFor('the second write through the watch', () => seen.some((s) => s?.revision === second));
  return { a, b, seen, lines, revision: second };
}

test('a state watch that goes silent is caught by the periodic read of the Secret, and the missed write delivered', async () => {
  // A long watch life, so that only the state check can notice.
  const { b, seen, lines, revision } = await watcherAndWriter('silent-check', { watchTimeoutMs: 600_000, stateCheckIntervalMs: 300 });
  assert.equal(api.silenceWatches() >= 1, true, 'a watch stream to silence');
  const missed = await b.save(state(3), revision);
  await waitFor('the missed write delivered', () => seen.some((s) => s?.revision === missed), 15_000);
  assert.deepEqual(seen.at(-1), { state: state(3), revision: missed });
  const warned = lines.filter((l) => l.level === 40 && /missed a change/.test(l.msg));
  assert.equal(warned.length, 1, JSON.stringify(lines));
  // The re-list delivered the write; the new watch starts after it.
  await waitFor('a new watch in place of the silent one', () => secretWatches('silent-check') === 2);

  // The new watch works: a later write arrives by it, with no second warning.
  const later = await b.save(state(4), missed);
  await waitFor('a later write through the new watch', () => seen.some((s) => s?.revision === later), 15_000);
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'no further warnings');
});

test('a quiet but healthy state watch is left alone by the check, through its own writes as well', async () => {
  const { a, seen, lines, revision } = await watcherAndWriter('quiet-check', { watchTimeoutMs: 600_000, stateCheckIntervalMs: 100 });
  // This replica's own write: its event may come after a check read the new revision.
  const own = await a.save(state(5), revision);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(lines.filter((l) => l.level >= 40).length, 0, JSON.stringify(lines));
  assert.equal(secretWatches('quiet-check'), 1, 'one watch all along');
  assert.equal(seen.some((s) => s?.revision === own), false, 'its own write is not news to it');
  const reads = api.requests.filter((r) => r.verb === 'get' && r.resource === 'secrets' && r.namespace === 'quiet-check').length;
  assert.ok(reads >= 5, `the check read the Secret (${reads} reads)`);
});

test('with the check off, a silent state watch is ended at its deadline past timeoutSeconds and re-listed', async () => {
  const { b, seen, lines, revision } = await watcherAndWriter('silent-deadline', { watchTimeoutMs: 1000, stateCheckIntervalMs: 0 });
  const watch = api.requests.find((r) => r.verb === 'watch' && r.namespace === 'silent-deadline');
  assert.equal(watch?.query['timeoutSeconds'], '1', 'the watch asks the server to end it');
  // Ended by the server once a second, the watch was renewed without a warning.
  await new Promise((r) => setTimeout(r, 2500));
  assert.ok(secretWatches('silent-deadline') >= 2, 'renewed after the server ended it');
  assert.equal(lines.filter((l) => l.level >= 40).length, 0, JSON.stringify(lines));

  assert.equal(api.silenceWatches() >= 1, true);
  const missed = await b.save(state(3), revision);
  await waitFor('the missed write delivered after the deadline', () => seen.some((s) => s?.revision === missed), 15_000);
  assert.ok(lines.some((l) => l.level === 40 && /outlived its timeout/.test(l.msg)), JSON.stringify(lines));
});

test('the publisher\'s silent watches end at their deadline: a namespace created meanwhile gets its root-cert ConfigMap', async () => {
  const { logger, lines } = capturingLogger();
  const kc = api.kubeConfig();
  const publisher = new RootCertPublisher({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, logger, retryMs: 50, watchTimeoutMs: 1000 });
  closers.push(() => publisher.stop());
  const pem = '-----BEGIN CERTIFICATE-----\nMQ==\n-----END CERTIFICATE-----\n';
  publisher.setBundle(pem);
  publisher.start();
  const bundleIn = async (namespace: string): Promise<string | undefined> =>
    (await core.listNamespacedConfigMap({ namespace, fieldSelector: 'metadata.name=rampart-root-cert' })).items[0]?.data?.['root-cert.pem'];
  await waitFor('published in default', async () => (await bundleIn('default')) === pem);
  await waitFor('both watches open', () => api.requests.filter((r) => r.verb === 'watch' && (r.resource === 'namespaces' || r.resource === 'configmaps')).length >= 2);

  assert.equal(api.silenceWatches() >= 2, true, 'the namespace and ConfigMap watches silenced');
  await core.createNamespace({ body: { metadata: { name: 'born-during-silence' } } });
  await core.deleteNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default' });
  await waitFor('ConfigMap in the namespace born during the silence', async () => (await bundleIn('born-during-silence')) === pem, 15_000);
  await waitFor('ConfigMap deleted during the silence put back', async () => (await bundleIn('default')) === pem, 15_000);
  const overdue = lines.filter((l) => l.level === 40 && /outlived its timeout/.test(l.msg));
  assert.ok(overdue.length >= 2, JSON.stringify(lines));
});

test('a watch request the API server never answers is given up after the call timeout and tried again', async () => {
  // The outside QA's case: a new connection into a black hole hung the watch's opening for good,
  // before any deadline was armed, and the state check waited for an open watch that never came.
  const { b, seen, lines, revision } = await watcherAndWriter('hung-open', { watchTimeoutMs: 1000, stateCheckIntervalMs: 0, callTimeoutMs: 500 });
  const stall = api.stall({ verb: 'watch', resource: 'secrets', namespace: 'hung-open' });
  let missed: string;
  try {
    // Its watch ends within a second; the next one is opened into the stall.
    await waitFor('a watch opening held unanswered', () => stall.held >= 1, 10_000);
    missed = await b.save(state(3), revision);
    await waitFor('given up and opened again, into the stall again', () => stall.held >= 3, 10_000);
  } finally {
    stall.release();
  }
  await waitFor('the write made meanwhile delivered', () => seen.some((s) => s?.revision === missed), 15_000);
  const dropped = lines.filter((l) => l.level === 40 && /CA state watch dropped/.test(l.msg));
  assert.equal(dropped.length, 1, `one warning for the outage: ${JSON.stringify(lines)}`);
  assert.match(JSON.stringify(dropped[0]), /no response from the API server/);
  assert.ok(lines.some((l) => l.msg === 'CA state watch re-established'), JSON.stringify(lines));
});
