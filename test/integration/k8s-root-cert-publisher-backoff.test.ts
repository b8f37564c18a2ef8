/**
 * The root-cert publisher while the API server fails its ConfigMap calls. It used to retry every
 * failed write at a fixed pace (1 s in production) and warn on every attempt, for every namespace,
 * for as long as the failure lasted. It now backs off like the watches (watch-backoff.ts): the
 * delay doubles to a ceiling, one warning per outage, the recovery logged once, and a bundle set
 * during the backoff is the one written once the API server answers again.
 *
 * The API test server answers the publisher's reads with 503 (a struggling API server; its
 * watches stay up). Counts of attempts over a fixed window, not speed, tell the two pacings apart.
 * Such an answer also ends a round of writes: the other namespaces wait for the retry.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { recordWatch, waitFor } from '../helpers/kube-api-server/testing.js';
import { RootCertPublisher } from '../../src/k8s/root-cert-publisher.js';

// Scaled down from production's 1 s doubling to 30 s.
const FIRST_MS = 100;
const MAX_MS = 1000;
const OUTAGE_MS = 4000;
const CA_USER = 'system:serviceaccount:rampart-system:rampart-ca';
const NAMESPACES = ['shop', 'bank', 'blog'];
const pem = (n: number): string => `-----BEGIN CERTIFICATE-----\n${Buffer.from(`bundle ${n}`).toString('base64')}\n-----END CERTIFICATE-----\n`;

type Line = { level: number; msg: string; event?: string; retryInMs?: number; failedAttempts?: number };
const WARN = 40;
const INFO = 30;
const DEBUG = 20;

let api: KubeApiServer;
let core: k8s.CoreV1Api;
before(async () => {
  api = await startKubeApiServer();
  core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
  for (const name of NAMESPACES) await core.createNamespace({ body: { metadata: { name } } });
  api.addToken('publisher-token', CA_USER);
});
after(async () => {
  await api.close();
});

/** The bundle in each namespace's ConfigMap, read with a list: the fault only hits reads by name. */
async function bundles(): Promise<Map<string, string | undefined>> {
  const list = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=rampart-root-cert' });
  return new Map(list.items.map((cm) => [cm.metadata?.namespace ?? '', cm.data?.['root-cert.pem']]));
}

async function everywhere(bundle: string): Promise<boolean> {
  const found = await bundles();
  return NAMESPACES.every((ns) => found.get(ns) === bundle);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('failed writes back off, warn once per outage, log the recovery, and write the newest bundle', { timeout: 60_000 }, async () => {
  const lines: Line[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  const kc = api.kubeConfig('publisher-token');
  const publisher = new RootCertPublisher({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, logger, retryMs: FIRST_MS, retryMaxMs: MAX_MS });
  const seen = await recordWatch(api.kubeConfig(), '/api/v1/configmaps', { fieldSelector: 'metadata.name=rampart-root-cert' });
  const failures = (): Line[] => lines.filter((l) => l.event === 'root-cert-publish-failed');
  try {
    publisher.setBundle(pem(1));
    publisher.start();
    await waitFor('the first bundle everywhere', () => everywhere(pem(1)));

    const from = api.requests.length;
    api.injectFault({ verb: 'get', resource: 'configmaps', status: 503, count: 1_000_000 });
    publisher.setBundle(pem(2));
    await sleep(OUTAGE_MS / 2);
    // A newer bundle arrives while the publisher backs off: it must be the one written afterwards.
    publisher.setBundle(pem(3));
    await sleep(OUTAGE_MS / 2);
    const attempts = api.requests.slice(from).filter((r) => r.user === CA_USER && r.resource === 'configmaps' && r.verb === 'get');
    api.clearFaults();

    // At a fixed 100 ms each namespace is read about 30 times in 4 s (22 in 3 s measured on a busy
    // machine); doubling to 1 s, with jitter taking up to half off, leaves at most 12 rounds.
    for (const ns of NAMESPACES) {
      const n = attempts.filter((r) => r.namespace === ns).length;
      assert.ok(n <= 13, `${ns}: ${n} reads in a ${OUTAGE_MS} ms outage`);
    }
    const failed = failures();
    assert.ok(failed.length >= 3 && failed.length <= 13, `${failed.length} failed rounds logged`);
    // A 503 ends the round: the other namespaces wait for the retry instead of failing alike (one
    // more read may be in flight as the attempts are counted).
    assert.ok(attempts.length <= failed.length + 1, `${attempts.length} reads in ${failed.length} rounds`);
    assert.equal(failed.filter((l) => l.level >= WARN).length, 1, 'one warning per outage');
    assert.ok(failed.slice(1).every((l) => l.level === DEBUG), 'repeats are at debug');
    const delays = failed.map((l) => l.retryInMs ?? 0);
    assert.ok(delays.every((d) => d >= FIRST_MS / 2 && d <= MAX_MS), `delays within bounds: ${delays.join(', ')}`);
    assert.ok((delays.at(-1) ?? 0) >= MAX_MS / 2, `delays grew to the ceiling: ${delays.join(', ')}`);

    await waitFor('the newest bundle everywhere once the API server answers', () => everywhere(pem(3)), 2 * MAX_MS + 3000);
    await waitFor('the recovery is logged', () => lines.some((l) => l.event === 'root-cert-publish-recovered'));
    const recovered = lines.filter((l) => l.event === 'root-cert-publish-recovered');
    assert.equal(recovered.length, 1);
    assert.equal(recovered[0]?.level, INFO);
    assert.equal(recovered[0]?.failedAttempts, failed.length);
    const written = seen.events.map((e) => (e.object as { data?: Record<string, string> }).data?.['root-cert.pem']);
    assert.equal(written.includes(pem(2)), false, 'the bundle replaced during the outage was never written');

    // A second outage is a new one: warned again, its retries starting from the first delay.
    const before = failures().length;
    api.injectFault({ verb: 'get', resource: 'configmaps', status: 503, count: 1_000_000 });
    publisher.setBundle(pem(4));
    await waitFor('the second outage is noticed', () => failures().length > before);
    api.clearFaults();
    const first = failures()[before];
    assert.equal(first?.level, WARN, 'the second outage is warned about');
    assert.ok((first?.retryInMs ?? Infinity) <= FIRST_MS, `the backoff started over (${first?.retryInMs} ms)`);
    await waitFor('the bundle after the second outage everywhere', () => everywhere(pem(4)), 2 * MAX_MS + 3000);
  } finally {
    api.clearFaults();
    seen.stop();
    publisher.stop();
  }
});

test('a namespace whose writes keep failing holds no other namespace back', { timeout: 60_000 }, async () => {
  const kc = api.kubeConfig('publisher-token');
  const publisher = new RootCertPublisher({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, retryMs: FIRST_MS, retryMaxMs: MAX_MS });
  const stuck = 'bank';
  try {
    // The namespace read first (lists are in name order) fails every time, with a 500 that ends
    // the round: were it tried first again in every round, no other namespace would be written.
    const from = api.requests.length;
    api.injectFault({ verb: 'get', resource: 'configmaps', namespace: stuck, status: 500, count: 1_000_000 });
    publisher.setBundle(pem(5));
    publisher.start();
    const rest = NAMESPACES.filter((ns) => ns !== stuck);
    await waitFor('the other namespaces written', async () => {
      const found = await bundles();
      return rest.every((ns) => found.get(ns) === pem(5));
    }, 2 * MAX_MS + 3000);
    const reads = api.requests.slice(from).filter((r) => r.user === CA_USER && r.resource === 'configmaps' && r.verb === 'get');
    assert.equal(reads[0]?.namespace, stuck, 'the failing namespace was first in the queue');
    assert.notEqual((await bundles()).get(stuck), pem(5));
    api.clearFaults();
    await waitFor('the failing namespace written once it answers', () => everywhere(pem(5)), 2 * MAX_MS + 3000);
  } finally {
    api.clearFaults();
    publisher.stop();
  }
});
