/**
 * Two `rampart ca --store kubernetes` processes whose watches go silent without closing, as
 * behind a NAT or load balancer that dropped the flows (the API test server's
 * `silenceWatches`). The outside review's repro of F1 and F2, with real processes: a replica that
 * never heard of a root another replica prepared, and a leader that stopped serving new
 * namespaces. `--state-check-interval` and `--watch-timeout` are shortened so the test waits
 * seconds, not minutes.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { CA_NAMESPACE, call, startCaCluster, type CaCluster, type Replica } from '../helpers/k8s-ca.js';

let cluster: CaCluster;
let a: Replica;
let b: Replica;
let bundlePem: string;
/** Where the request log stood when the first test silenced the watches. */
let silencedAt = 0;
const FLAGS = ['--state-check-interval', '1s', '--watch-timeout', '3s'];

before(async () => {
  cluster = await startCaCluster();
  a = await cluster.spawnReplica('rampart-ca-a', FLAGS);
  b = await cluster.spawnReplica('rampart-ca-b', FLAGS);
  bundlePem = await a.bootstrapBundlePem();
});

after(async () => {
  await cluster?.close();
});

const warnings = (r: Replica, pattern: RegExp): number => r.logs.filter((l) => l['level'] === 'warn' && pattern.test(String(l.msg))).length;

test('a root prepared on one replica reaches the other although the other\'s watch went silent', async () => {
  await waitFor('both replicas watch the state Secret', () => cluster.api.requests.filter((r) => r.verb === 'watch' && r.resource === 'secrets').length >= 2, 15_000);
  const before = await cluster.secretState();
  silencedAt = cluster.api.requests.length;
  assert.ok(cluster.api.silenceWatches() >= 2, 'watch streams to silence');

  const admin = await cluster.token(CA_NAMESPACE, 'rampart-admin');
  const prepared = await call(`${a.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: admin, body: {} });
  assert.equal(prepared.status, 200, prepared.text);
  const after = await cluster.secretState();
  assert.equal(after.sequence, before.sequence + 1);
  await waitFor('replica B serves the bundle with the prepared root', async () => (await call(`${b.apiUrl}/v1/trust-bundle`, { ca: bundlePem })).body.sequence === after.sequence, 20_000);
  assert.ok(warnings(b, /missed a change|outlived its timeout/) >= 1, `B says its watch failed it: ${JSON.stringify(b.logs.slice(-15))}`);
});

test('the leader, its watches silenced, still publishes the root-cert ConfigMap into a namespace created meanwhile', async () => {
  const pem = (await call(`${a.apiUrl}/v1/trust-bundle?format=pem`, { ca: bundlePem })).text;
  await waitFor('the ConfigMap in default follows the bundle', async () => (await cluster.rootCertIn('default')) === pem, 20_000);
  // The leader's watches silenced by the test before must have been replaced first.
  const since = silencedAt;
  const reopened = (resource: string): boolean => cluster.api.requests.slice(since).some((r) => r.verb === 'watch' && r.resource === resource);
  await waitFor('the leader watches namespaces and ConfigMaps anew', () => reopened('namespaces') && reopened('configmaps'), 20_000);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(cluster.api.silenceWatches() >= 2, 'watch streams to silence');
  await cluster.admin.core.createNamespace({ body: { metadata: { name: 'born-silent' } } });
  await waitFor('ConfigMap in the namespace created during the silence', async () => (await cluster.rootCertIn('born-silent')) === pem, 20_000);
  const publisherWarnings = [a, b].flatMap((r) => r.logs).filter((l) => l['component'] === 'root-cert-publisher' && l['level'] === 'warn' && /outlived its timeout/.test(String(l.msg)));
  assert.ok(publisherWarnings.length >= 1, 'the leader says its watches failed it');
});
