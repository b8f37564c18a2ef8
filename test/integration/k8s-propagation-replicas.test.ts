/**
 * Propagation across CA replicas (DESIGN section 4 with section 9's replicas): an agent whose
 * requests reach replica A holds back an `activate` asked of replica B until it reports the new
 * bundle, because the replicas share their agent sightings through ConfigMaps.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { httpsJson } from '../helpers/https.js';
import { CA_NAMESPACE, call, startCaCluster, type CaCluster, type Replica } from '../helpers/k8s-ca.js';

let cluster: CaCluster;
let a: Replica;
let b: Replica;
let bundlePem: string;
const csrPem = createKeyAndCsr().csrPem;
const REFRESH = ['--bundle-refresh-interval', '4s', '--auto-rotate', 'false'];
const POD_UID_A = '6f1c2a9e-0000-4000-8000-00000000000a';

before(async () => {
  cluster = await startCaCluster();
  a = await cluster.spawnReplica('rampart-ca-a', REFRESH, { POD_UID: POD_UID_A });
  b = await cluster.spawnReplica('rampart-ca-b', REFRESH);
  bundlePem = await a.bootstrapBundlePem();
});

after(async () => {
  await cluster?.close();
});

/** An agent's certificate request to `replica`, reporting that it holds bundle `sequence`. */
async function report(replica: Replica, token: string, sequence: number): Promise<void> {
  const res = await httpsJson(`${replica.apiUrl}/v1/certificates`, {
    ca: bundlePem,
    token,
    body: { csr: csrPem },
    headers: { 'rampart-bundle-sequence': String(sequence), 'rampart-agent-id': 'web-pod-1' },
  });
  assert.equal(res.status, 200, res.text);
}

test('activate on replica B is refused while an agent that only talks to replica A holds the old bundle, and allowed once it reports the new one', async () => {
  const admin = await cluster.token(CA_NAMESPACE, 'rampart-admin');
  const agent = await cluster.token('shop', 'web');
  const start = (await call(`${a.apiUrl}/v1/trust-bundle`, { ca: bundlePem })).body.sequence as number;
  await report(a, agent, start);

  const prepared = await call(`${b.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: admin, body: {} });
  assert.equal(prepared.status, 200, prepared.text);
  const target = prepared.body.sequence as number;
  assert.ok(target > start);

  // The agent keeps polling A with the old sequence, so it stays "seen recently" there.
  let holding = start;
  const keepReporting = setInterval(() => void report(a, agent, holding).catch(() => undefined), 1_000);
  try {
    // Past one refresh interval since publication, so only the agent can hold the step back.
    await new Promise((r) => setTimeout(r, 6_000));
    const refused = await call(`${b.apiUrl}/v1/admin/roots/activate`, { ca: bundlePem, token: admin, body: {} });
    assert.equal(refused.status, 409, `B must count the agent A saw: ${refused.text}`);
    assert.equal(refused.body.error.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
    assert.match(refused.body.error.message, new RegExp(`0 of 1 agents seen recently by 2 CA replicas hold bundle sequence ${target}`));

    const cms = await cluster.admin.core.listNamespacedConfigMap({ namespace: CA_NAMESPACE, labelSelector: 'rampart.dev/ca-agent-sightings' });
    assert.deepEqual(cms.items.map((c) => c.metadata?.name).sort(), ['rampart-ca-agents-rampart-ca-a', 'rampart-ca-agents-rampart-ca-b']);
    // Owned by the replica's Pod when POD_UID is given, so Kubernetes removes it with the Pod.
    const owners = new Map(cms.items.map((c) => [c.metadata?.name, c.metadata?.ownerReferences ?? []]));
    assert.deepEqual(owners.get('rampart-ca-agents-rampart-ca-a')?.map((o) => ({ apiVersion: o.apiVersion, kind: o.kind, name: o.name, uid: o.uid, blockOwnerDeletion: o.blockOwnerDeletion })), [{ apiVersion: 'v1', kind: 'Pod', name: 'rampart-ca-a', uid: POD_UID_A, blockOwnerDeletion: undefined }]);
    assert.deepEqual(owners.get('rampart-ca-agents-rampart-ca-b'), []);

    holding = target;
    await report(a, agent, target);
    await waitFor('B sees the agent caught up', async () => {
      const status = await call(`${b.apiUrl}/v1/admin/status`, { ca: bundlePem, token: admin });
      const root = (status.body.roots as Array<{ phase: string; propagation?: { propagated: boolean } }>).find((r) => r.phase === 'prepared');
      return root?.propagation?.propagated === true;
    }, 30_000);
    const allowed = await call(`${b.apiUrl}/v1/admin/roots/activate`, { ca: bundlePem, token: admin, body: {} });
    assert.equal(allowed.status, 200, allowed.text);
  } finally {
    clearInterval(keepReporting);
  }
});

test('a sightings ConfigMap with content that does not decode is ignored, and activate still works', async () => {
  const core = cluster.admin.core;
  await core.createNamespacedConfigMap({ namespace: CA_NAMESPACE, body: { metadata: { name: 'rampart-ca-agents-junk', labels: { 'rampart.dev/ca-agent-sightings': 'true' } }, data: { 'sightings.json': '{not json' } } });
  const admin = await cluster.token(CA_NAMESPACE, 'rampart-admin');
  // The first case activated a new root: the serving certificate moved under it.
  bundlePem = await a.bootstrapBundlePem();
  const prepared = await call(`${a.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: admin, body: {} });
  assert.equal(prepared.status, 200, prepared.text);
  await waitFor('activate allowed with no agent behind', async () => (await call(`${a.apiUrl}/v1/admin/roots/activate`, { ca: bundlePem, token: admin, body: {} })).status === 200, 30_000);
  assert.ok(a.alive() && b.alive());
});
