import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { RootCertPublisher } from '../../src/k8s/root-cert-publisher.js';

let api: KubeApiServer;
let core: k8s.CoreV1Api;
let publisher: RootCertPublisher;
const logLines: string[] = [];
const logger = pino({ level: 'error' }, { write: (line: string) => void logLines.push(line) });
const CA_USER = 'system:serviceaccount:rampart-system:rampart-ca';
const PEM_1 = '-----BEGIN CERTIFICATE-----\nMQ==\n-----END CERTIFICATE-----\n';
const PEM_2 = '-----BEGIN CERTIFICATE-----\nMg==\n-----END CERTIFICATE-----\n';

before(async () => {
  api = await startKubeApiServer();
  core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
  // The publisher runs as its own user so the request log shows exactly what it calls.
  api.addToken('publisher-token', CA_USER);
  const kc = api.kubeConfig('publisher-token');
  publisher = new RootCertPublisher({ core: kc.makeApiClient(k8s.CoreV1Api), kubeConfig: kc, logger, retryMs: 50 });
});
after(async () => {
  publisher.stop();
  await api.close();
});

async function bundleIn(namespace: string): Promise<string | undefined> {
  try {
    return (await core.readNamespacedConfigMap({ name: 'rampart-root-cert', namespace })).data?.['root-cert.pem'];
  } catch {
    return undefined;
  }
}

async function everywhere(pem: string): Promise<boolean> {
  const namespaces = (await core.listNamespace()).items.filter((n) => n.status?.phase === 'Active').map((n) => n.metadata?.name ?? '');
  const found = await Promise.all(namespaces.map(bundleIn));
  return found.every((f) => f === pem);
}

test('publishes into existing and new namespaces, follows bundle changes, repairs deletes and edits', async () => {
  publisher.setBundle(PEM_1);
  publisher.start();
  await waitFor('ConfigMap in every existing namespace', () => everywhere(PEM_1));

  await core.createNamespace({ body: { metadata: { name: 'newcomer' } } });
  await waitFor('ConfigMap in the new namespace', async () => (await bundleIn('newcomer')) === PEM_1);

  publisher.setBundle(PEM_2);
  await waitFor('updated everywhere', () => everywhere(PEM_2));

  await core.deleteNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'newcomer' });
  await waitFor('recreated after delete', async () => (await bundleIn('newcomer')) === PEM_2);

  const cm = await core.readNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default' });
  await core.replaceNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default', body: { ...cm, data: { 'root-cert.pem': 'tampered' } } });
  await waitFor('hand edit reverted', async () => (await bundleIn('default')) === PEM_2);

  // The bundle moved into binaryData by hand: the API server refuses the key in both, so it goes.
  const moved = await core.readNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default' });
  await core.replaceNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default', body: { ...moved, data: { note: 'hand edit' }, binaryData: { 'root-cert.pem': 'eA==', extra: 'eQ==' } } });
  await waitFor('binaryData copy replaced', async () => (await bundleIn('default')) === PEM_2);
  const repaired = await core.readNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'default' });
  assert.deepEqual(repaired.binaryData, { extra: 'eQ==' });
  assert.equal(repaired.data?.['note'], 'hand edit');

  // Steady state: no further writes once everything matches.
  await publisher.whenIdle();
  const writes = () => api.requests.filter((r) => r.resource === 'configmaps' && ['create', 'update'].includes(r.verb)).length;
  const settled = writes();
  publisher.setBundle(PEM_2);
  await publisher.whenIdle();
  assert.equal(writes(), settled);

  await core.deleteNamespace({ name: 'newcomer' });
  await publisher.whenIdle();
  assert.equal(await bundleIn('newcomer'), undefined);
  assert.ok(!api.requests.some((r) => r.namespace === 'newcomer' && r.verb === 'create' && r.status >= 400 && r.status !== 404 && r.status !== 403));
});

test('keeps reconciling across an API server outage', async () => {
  await api.goDown();
  await api.comeBack();
  await core.createNamespace({ body: { metadata: { name: 'after-outage' } } });
  await waitFor('ConfigMap in a namespace created after the outage', async () => (await bundleIn('after-outage')) === PEM_2, 8000);
});

test('an immutable ConfigMap is reported once, not rewritten over and over; deleted, it is recreated with the current bundle', async () => {
  await core.createNamespace({ body: { metadata: { name: 'frozen' } } });
  await waitFor('ConfigMap in frozen', async () => (await bundleIn('frozen')) === PEM_2);
  const cm = await core.readNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'frozen' });
  const marked = api.requests.length;
  await core.replaceNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'frozen', body: { ...cm, immutable: true, data: { 'root-cert.pem': PEM_1 } } });
  await waitFor('the immutable ConfigMap is reported', async () => logLines.some((l) => l.includes('"event":"root-cert-configmap-immutable"') && l.includes('"namespace":"frozen"')));
  // With a 50 ms retry, a publisher that kept trying would have sent many refused updates by now.
  await new Promise((r) => setTimeout(r, 1_000));
  const refused = api.requests.slice(marked).filter((r) => r.user === CA_USER && r.namespace === 'frozen' && r.verb === 'update');
  assert.deepEqual(refused.map((r) => r.status), [], 'no update sent to an immutable ConfigMap');
  assert.equal(logLines.filter((l) => l.includes('root-cert-configmap-immutable')).length, 1, 'reported once');
  assert.match(logLines.find((l) => l.includes('root-cert-configmap-immutable')) ?? '', /kubectl -n frozen delete configmap rampart-root-cert/);

  await core.deleteNamespacedConfigMap({ name: 'rampart-root-cert', namespace: 'frozen' });
  await waitFor('recreated with the current bundle', async () => (await bundleIn('frozen')) === PEM_2);
});

test('the API test server refuses to change an immutable ConfigMap, as a real one does (422)', async () => {
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'sealed' }, immutable: true, data: { a: '1' } } });
  const cm = await core.readNamespacedConfigMap({ name: 'sealed', namespace: 'default' });
  for (const body of [{ ...cm, data: { a: '2' } }, { ...cm, immutable: false }]) {
    await assert.rejects(core.replaceNamespacedConfigMap({ name: 'sealed', namespace: 'default', body }), (err: unknown) => (err as { code?: number }).code === 422);
  }
  await core.replaceNamespacedConfigMap({ name: 'sealed', namespace: 'default', body: { ...cm, metadata: { ...cm.metadata, labels: { touched: 'yes' } } } });
});

test('RBAC actually needed, derived from the request log', () => {
  const used = new Set(api.requests.filter((r) => r.user === CA_USER).map((r) => `${r.resource}:${r.verb}`));
  assert.deepEqual([...used].sort(), ['configmaps:create', 'configmaps:get', 'configmaps:list', 'configmaps:update', 'configmaps:watch', 'namespaces:list', 'namespaces:watch']);
});
