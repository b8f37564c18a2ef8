import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { apiFailure, recordWatch, waitFor } from '../helpers/kube-api-server/testing.js';

const execFileAsync = promisify(execFile);

let api: KubeApiServer;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;

before(async () => {
  api = await startKubeApiServer();
  kc = api.kubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
});
after(async () => {
  await api.close();
});

async function rejection(p: Promise<unknown>) {
  try {
    await p;
  } catch (e) {
    return apiFailure(e);
  }
  assert.fail('expected the API call to fail');
}

test('create, conflict on stale resourceVersion, AlreadyExists and NotFound Status objects', async () => {
  await core.createNamespace({ body: { metadata: { name: 'crud' } } });
  const created = await core.createNamespacedConfigMap({ namespace: 'crud', body: { metadata: { name: 'cfg' }, data: { a: '1' } } });
  const rv1 = Number(created.metadata?.resourceVersion);
  const updated = await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'crud', body: { ...created, data: { a: '2' } } });
  assert.ok(Number(updated.metadata?.resourceVersion) > rv1, 'resourceVersion grows on every write');
  assert.equal(updated.metadata?.uid, created.metadata?.uid);

  const stale = await rejection(core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'crud', body: { ...created, data: { a: '3' } } }));
  assert.equal(stale.code, 409);
  assert.equal(stale.status.reason, 'Conflict');
  assert.match(stale.status.message ?? '', /the object has been modified/);

  const dup = await rejection(core.createNamespacedConfigMap({ namespace: 'crud', body: { metadata: { name: 'cfg' } } }));
  assert.equal(dup.code, 409);
  assert.equal(dup.status.reason, 'AlreadyExists');

  const missing = await rejection(core.readNamespacedConfigMap({ name: 'nope', namespace: 'crud' }));
  assert.equal(missing.code, 404);
  assert.equal(missing.status.reason, 'NotFound');
  assert.equal(missing.status.message, 'configmaps "nope" not found');

  // A no-op replace keeps the resourceVersion, as etcd-backed storage does.
  const same = await core.replaceNamespacedConfigMap({ name: 'cfg', namespace: 'crud', body: updated });
  assert.equal(same.metadata?.resourceVersion, updated.metadata?.resourceVersion);
  assert.equal((await core.readNamespacedConfigMap({ name: 'cfg', namespace: 'crud' })).data?.['a'], '2');
});

test('secrets: stringData folds into base64 data; bad base64 and bad names are refused', async () => {
  await core.createNamespace({ body: { metadata: { name: 'sec' } } });
  const s = await core.createNamespacedSecret({ namespace: 'sec', body: { metadata: { name: 's' }, stringData: { k: 'hello' } } });
  assert.equal(s.data?.['k'], Buffer.from('hello').toString('base64'));
  assert.equal(s.type, 'Opaque');
  assert.equal((await rejection(core.createNamespacedSecret({ namespace: 'sec', body: { metadata: { name: 't' }, data: { k: 'not base64!' } } }))).code, 400);
  const bad = await rejection(core.createNamespacedSecret({ namespace: 'sec', body: { metadata: { name: 'Bad_Name' } } }));
  assert.equal(bad.code, 422);
  assert.equal(bad.status.reason, 'Invalid');
});

test('configmaps: binaryData must be base64, and a key may not be in both data and binaryData', async () => {
  await core.createNamespace({ body: { metadata: { name: 'cms' } } });
  assert.equal((await rejection(core.createNamespacedConfigMap({ namespace: 'cms', body: { metadata: { name: 'a' }, binaryData: { k: '!!' } } }))).code, 400);
  const dup = await rejection(core.createNamespacedConfigMap({ namespace: 'cms', body: { metadata: { name: 'b' }, data: { k: 'x' }, binaryData: { k: 'eA==' } } }));
  assert.equal(dup.code, 422);
  assert.match(dup.status.message ?? '', /duplicate of key present in data/);
  await core.createNamespacedConfigMap({ namespace: 'cms', body: { metadata: { name: 'c' }, data: { k: 'x' }, binaryData: { other: 'eA==' } } });
});

test('watch streams ADDED, MODIFIED and DELETED for namespaces and configmaps (namespaced, cluster-wide, by name)', async () => {
  const nsWatch = await recordWatch(kc, '/api/v1/namespaces', { resourceVersion: String((await core.listNamespace()).metadata?.resourceVersion) });
  const allCm = await recordWatch(kc, '/api/v1/configmaps');
  await core.createNamespace({ body: { metadata: { name: 'watched' } } });
  const one = await recordWatch(kc, '/api/v1/namespaces/watched/configmaps', { fieldSelector: 'metadata.name=target' });
  try {
    const t = await core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'target' }, data: { v: '1' } } });
    await core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'other' } } });
    await core.replaceNamespacedConfigMap({ name: 'target', namespace: 'watched', body: { ...t, data: { v: '2' } } });
    await core.deleteNamespacedConfigMap({ name: 'target', namespace: 'watched' });
    await waitFor('DELETED on the by-name watch', () => one.events.some((e) => e.type === 'DELETED'));
    assert.deepEqual(one.events.map((e) => `${e.type} ${e.name}`), ['ADDED target', 'MODIFIED target', 'DELETED target']);
    const rvs = one.events.map((e) => Number(e.resourceVersion));
    assert.deepEqual([...rvs].sort((a, b) => a - b), rvs, 'events arrive in resourceVersion order');

    await waitFor('cluster-wide events', () => allCm.events.filter((e) => e.namespace === 'watched').length === 4);
    assert.deepEqual(allCm.events.filter((e) => e.namespace === 'watched').map((e) => `${e.type} ${e.name}`), ['ADDED target', 'ADDED other', 'MODIFIED target', 'DELETED target']);

    // Deleting the namespace: Terminating, then its objects and itself go away.
    await core.deleteNamespace({ name: 'watched' });
    await waitFor('namespace DELETED', () => nsWatch.events.some((e) => e.type === 'DELETED' && e.name === 'watched'));
    assert.deepEqual(nsWatch.events.filter((e) => e.name === 'watched').map((e) => e.type), ['ADDED', 'MODIFIED', 'DELETED']);
    await waitFor('configmap removed with its namespace', () => allCm.events.some((e) => e.type === 'DELETED' && e.name === 'other'));
    const gone = await rejection(core.createNamespacedConfigMap({ namespace: 'watched', body: { metadata: { name: 'late' } } }));
    assert.equal(gone.code, 404);
    assert.equal(gone.status.message, 'namespaces "watched" not found');
  } finally {
    nsWatch.stop();
    allCm.stop();
    one.stop();
  }
});

test('watch resumes from a resourceVersion, and a compacted one yields a 410 Expired ERROR event', async () => {
  const small = await startKubeApiServer({ historyLimit: 3 });
  try {
    const c = small.kubeConfig().makeApiClient(k8s.CoreV1Api);
    const first = await c.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'c0' } } });
    await c.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'c1' } } });
    const resumed = await recordWatch(small.kubeConfig(), '/api/v1/namespaces/default/configmaps', { resourceVersion: String(first.metadata?.resourceVersion) });
    await waitFor('replayed event', () => resumed.events.length === 1);
    assert.equal(resumed.events[0]?.name, 'c1');
    resumed.stop();
    for (const n of ['c2', 'c3', 'c4']) await c.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: n } } });
    const expired = await recordWatch(small.kubeConfig(), '/api/v1/namespaces/default/configmaps', { resourceVersion: String(first.metadata?.resourceVersion) });
    await waitFor('stream end', () => expired.ended);
    assert.equal(expired.events[0]?.type, 'ERROR');
    assert.equal((expired.events[0]?.object as { code?: number }).code, 410);
  } finally {
    await small.close();
  }
});

test('TokenReview accepts valid service-account tokens and rejects the rest', async () => {
  const auth = kc.makeApiClient(k8s.AuthenticationV1Api);
  const review = async (token: string, audiences = ['rampart-ca']) => (await auth.createTokenReview({ body: { spec: { token, audiences } } })).status;
  const good = await api.mintServiceAccountToken({ namespace: 'shop', serviceAccount: 'web', audiences: ['rampart-ca'], podName: 'web-1', podUid: 'uid-1' });
  const ok = await review(good);
  assert.equal(ok?.authenticated, true);
  assert.equal(ok?.user?.username, 'system:serviceaccount:shop:web');
  assert.deepEqual(ok?.audiences, ['rampart-ca']);
  assert.deepEqual(ok?.user?.extra?.['authentication.kubernetes.io/pod-name'], ['web-1']);
  assert.deepEqual(ok?.user?.extra?.['authentication.kubernetes.io/pod-uid'], ['uid-1']);
  assert.ok(ok?.user?.groups?.includes('system:serviceaccounts:shop'));

  const before = api.tokenReviews.rejected;
  const wrongAud = await review(good, ['other']);
  assert.notEqual(wrongAud?.authenticated, true);
  assert.match(wrongAud?.error ?? '', /audiences/);
  const expired = await review(await api.mintServiceAccountToken({ namespace: 'shop', serviceAccount: 'web', audiences: ['rampart-ca'], expiresInSeconds: -5 }));
  assert.notEqual(expired?.authenticated, true);
  assert.match(expired?.error ?? '', /expired/);
  const [h, p] = good.split('.');
  assert.notEqual((await review(`${h}.${p}.${Buffer.from('forged').toString('base64url')}`))?.authenticated, true);
  assert.notEqual((await review('garbage'))?.authenticated, true);
  assert.equal(api.tokenReviews.rejected - before, 4);

  // Empty audiences means the API server's own audience, which a rampart-ca token lacks.
  assert.notEqual((await review(good, []))?.authenticated, true);
  api.revokePod('uid-1');
  assert.notEqual((await review(good))?.authenticated, true, 'tokens bound to a deleted pod stop validating');
});

test('TokenReview checks the ServiceAccount object: a deleted or re-created account invalidates its tokens', async () => {
  const auth = kc.makeApiClient(k8s.AuthenticationV1Api);
  const review = async (token: string) => (await auth.createTokenReview({ body: { spec: { token, audiences: ['rampart-ca'] } } })).status;
  await core.createNamespace({ body: { metadata: { name: 'sa-life' } } });
  const token = await api.mintServiceAccountToken({ namespace: 'sa-life', serviceAccount: 'api', audiences: ['rampart-ca'] });
  // Minting made the ServiceAccount object, and the token carries its uid.
  const account = await core.readNamespacedServiceAccount({ name: 'api', namespace: 'sa-life' });
  const ok = await review(token);
  assert.equal(ok?.authenticated, true);
  assert.equal(ok?.user?.uid, account.metadata?.uid);
  await core.deleteNamespacedServiceAccount({ name: 'api', namespace: 'sa-life' });
  const gone = await review(token);
  assert.notEqual(gone?.authenticated, true);
  assert.match(gone?.error ?? '', /serviceaccounts "api" not found/);
  await core.createNamespacedServiceAccount({ namespace: 'sa-life', body: { metadata: { name: 'api' } } });
  const recreated = await review(token);
  assert.notEqual(recreated?.authenticated, true, 'a token of the old object does not pass for the new one');
  assert.match(recreated?.error ?? '', /does not match claim/);
  assert.equal((await review(await api.mintServiceAccountToken({ namespace: 'sa-life', serviceAccount: 'api', audiences: ['rampart-ca'] })))?.authenticated, true);
});

test('Lease times must be MicroTime with six fractional digits, like a real API server', async () => {
  const coord = kc.makeApiClient(k8s.CoordinationV1Api);
  const bad = await rejection(coord.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'a', renewTime: new Date() as unknown as k8s.V1MicroTime } } }));
  assert.equal(bad.code, 400);
  const lease = await coord.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'l' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 2, renewTime: '2026-01-01T00:00:00.123000Z' as unknown as k8s.V1MicroTime } } });
  assert.equal(lease.spec?.holderIdentity, 'a');
  const stale = await rejection(coord.replaceNamespacedLease({ name: 'l', namespace: 'default', body: { ...lease, metadata: { ...lease.metadata, resourceVersion: '1' } } }));
  assert.equal(stale.code, 409);
});

test('requests are logged with verb and resource; unknown tokens get 401', async () => {
  api.clearRequestLog();
  await core.listNamespacedSecret({ namespace: 'default' });
  const anon = new k8s.KubeConfig();
  anon.loadFromOptions(api.kubeConfigOptions('not-a-token'));
  assert.equal((await rejection(anon.makeApiClient(k8s.CoreV1Api).listNamespace())).code, 401);
  assert.deepEqual(api.requests.map((r) => [r.verb, r.resource, r.namespace, r.user, r.status]), [
    ['list', 'secrets', 'default', 'kubernetes-admin', 200],
    ['list', 'namespaces', undefined, 'system:anonymous', 401],
  ]);
});

test('goDown drops connections and refuses new ones; comeBack serves the same state on the same port', async () => {
  await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'survivor' } } });
  const w = await recordWatch(kc, '/api/v1/namespaces/default/configmaps', { resourceVersion: (await core.listNamespacedConfigMap({ namespace: 'default' })).metadata?.resourceVersion ?? '' });
  await api.goDown();
  await waitFor('watch ended by outage', () => w.ended);
  await assert.rejects(core.listNamespace());
  await api.comeBack();
  const got = await core.readNamespacedConfigMap({ name: 'survivor', namespace: 'default' });
  assert.equal(got.metadata?.name, 'survivor');
});

test('kubectl works against it: discovery, create, get with a field selector, merge patch, delete', async (t) => {
  if (spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status !== 0) {
    t.skip('kubectl is not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'rampart-kubectl-'));
  try {
    const kubeconfig = await api.writeKubeconfig(join(dir, 'kubeconfig'));
    // Asynchronous: the API server answers from this very process.
    const kubectl = async (...args: string[]): Promise<string> => {
      try {
        return (await execFileAsync('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8', env: { ...process.env, HOME: dir } })).stdout;
      } catch (e) {
        assert.fail(`kubectl ${args.join(' ')}: ${(e as { stderr?: string }).stderr ?? String(e)}`);
      }
    };
    assert.match(await kubectl('api-resources', '--no-headers'), /^leases\s.*coordination\.k8s\.io\/v1\s+true\s+Lease$/m);
    await kubectl('create', 'namespace', 'kubectl-ns');
    await kubectl('-n', 'kubectl-ns', 'create', 'configmap', 'rampart-root-cert', '--from-literal=root-cert.pem=x');
    assert.match(await kubectl('get', 'configmaps', '-A', '--field-selector', 'metadata.name=rampart-root-cert', '-o', 'name'), /^configmap\/rampart-root-cert$/m);
    await kubectl('-n', 'kubectl-ns', 'patch', 'configmap', 'rampart-root-cert', '--type', 'merge', '-p', '{"data":{"extra":"y"}}');
    assert.equal(await kubectl('-n', 'kubectl-ns', 'get', 'configmap', 'rampart-root-cert', '-o', 'jsonpath={.data.extra}'), 'y');
    await kubectl('-n', 'kubectl-ns', 'delete', 'configmap', 'rampart-root-cert');
    assert.equal(await kubectl('-n', 'kubectl-ns', 'get', 'configmaps', '-o', 'name'), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
