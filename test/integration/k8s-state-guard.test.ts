/**
 * The bundle sequence never goes back while CA replicas run (DESIGN section 4). When Secret
 * rampart-ca is deleted, loses its state key, is emptied or hand-broken, or is overwritten with an older state while two
 * `rampart ca --store kubernetes` processes run, a replica writes the newest state back; a
 * replica restarted afterwards signs under the same roots instead of creating a new one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { decodeState } from '../../src/store/state-codec.js';
import { waitFor } from '../helpers/kube-api-server/testing.js';
import { CA_NAMESPACE, STATE_SECRET, call, issue, startCaCluster, type CaCluster, type Replica } from '../helpers/k8s-ca.js';

let cluster: CaCluster;
let a: Replica;
let b: Replica;
let bundlePem: string;

function fingerprints(pem: string): string[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p).fingerprint256).sort();
}

/** The sequence in the Secret, or undefined while it is missing or has no state. */
async function storedSequence(): Promise<number | undefined> {
  try {
    return (await cluster.secretState()).sequence;
  } catch {
    return undefined;
  }
}

const restoredLines = (): number => cluster.replicas.flatMap((r) => r.logs).filter((l) => l.event === 'state-restored').length;

before(async () => {
  cluster = await startCaCluster();
  [a, b] = await Promise.all([cluster.spawnReplica('rampart-ca-a'), cluster.spawnReplica('rampart-ca-b')]);
  bundlePem = await a.bootstrapBundlePem();
});

after(async () => {
  await cluster?.close();
});

test('a deleted, emptied or rolled-back state Secret is written back by a running replica, and a restarted replica keeps the roots', { timeout: 120_000 }, async () => {
  const core = cluster.admin.core;
  const backup = await core.readNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
  const adminToken = await cluster.token(CA_NAMESPACE, 'rampart-admin');
  const prepared = await call(`${a.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: adminToken, body: {} });
  assert.equal(prepared.status, 200, prepared.text);
  const sequence = (await cluster.secretState()).sequence;
  assert.ok(sequence > decodeState(Buffer.from(backup.data?.['state.json'] ?? '', 'base64').toString('utf8')).sequence, 'the backup is older');
  const roots = (await cluster.secretState()).roots.map((r) => r.fingerprint).sort();
  await waitFor('both replicas serve the new sequence', async () => {
    const seqs = await Promise.all([a, b].map(async (r) => (await call(`${r.apiUrl}/v1/trust-bundle?format=json`, { ca: bundlePem })).body?.sequence));
    return seqs.every((s) => s === sequence);
  });

  // 1. The Secret is deleted.
  await core.deleteNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
  await waitFor('the state is back after a deletion', async () => (await storedSequence()) === sequence, 10_000);
  assert.deepEqual((await cluster.secretState()).roots.map((r) => r.fingerprint).sort(), roots);

  // 2. The Secret loses its state key.
  const current = await core.readNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
  await core.replaceNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE, body: { ...current, data: {} } });
  await waitFor('the state is back after its key was removed', async () => (await storedSequence()) === sequence, 10_000);

  // 2b. Its state key is emptied, then holds JSON that is no CA state (a bad `kubectl edit`).
  for (const content of ['', '{}']) {
    const held = await core.readNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
    await core.replaceNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE, body: { ...held, data: { 'state.json': Buffer.from(content).toString('base64') } } });
    await waitFor(`the state is back after it was set to ${JSON.stringify(content)}`, async () => (await storedSequence()) === sequence, 10_000);
  }

  // 3. An older state (the backup from before `prepare`) is put back.
  const now = await core.readNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE });
  await core.replaceNamespacedSecret({ name: STATE_SECRET, namespace: CA_NAMESPACE, body: { ...now, data: backup.data ?? {} } });
  await waitFor('the newer state is back after a rollback', async () => (await storedSequence()) === sequence, 10_000);
  assert.deepEqual((await cluster.secretState()).roots.map((r) => r.fingerprint).sort(), roots);
  // The Secret is visible a moment before the replica that wrote it logs the write-back.
  await waitFor('each write-back is logged', async () => restoredLines() >= 5, 10_000);

  // A replica restarted now loads the same roots and signs under them.
  await b.stop(5_000);
  const b2 = await cluster.spawnReplica('rampart-ca-b');
  const bundle = await call(`${b2.apiUrl}/v1/trust-bundle?format=pem`, { ca: bundlePem });
  assert.equal(bundle.status, 200);
  assert.deepEqual(fingerprints(bundle.text), fingerprints(await (await call(`${a.apiUrl}/v1/trust-bundle?format=pem`, { ca: bundlePem })).text));
  const issued = await issue(b2.apiUrl, { ca: bundlePem }, await cluster.token('shop', 'web'), createKeyAndCsr().csrPem);
  assert.equal(issued.status, 200, issued.text);
  assert.equal(issued.body.bundleSequence, sequence);
  assert.equal(b2.logs.filter((l) => l.event === 'root-created').length, 0, 'the restarted replica created no root');
});
