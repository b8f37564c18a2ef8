/**
 * What `rampart ca --store kubernetes` says when it is up: the `ca-started` line and the banner
 * carry the bundle sequence and active root of the state in Secret rampart-ca, as a file-store CA
 * reports its own (they were read from the file store, so a replica said sequence 0 and no root).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { CA_NAMESPACE, call, startCaCluster, STATE_SECRET, type CaCluster, type Replica } from '../helpers/k8s-ca.js';
import { eventually } from '../helpers/poll.js';

let cluster: CaCluster | undefined;

/** The banner follows the ca-started line, on stderr. */
function banner(replica: Replica): Promise<string> {
  return eventually(`${replica.name}'s banner`, () => (replica.stderr().includes('  trust bundle:') ? replica.stderr() : undefined), 10_000);
}

after(async () => {
  await cluster?.close();
});

test('a Kubernetes-store replica logs ca-started with the Secret state\'s bundle sequence and active root, and prints a banner that names them', { timeout: 240_000 }, async () => {
  cluster = await startCaCluster();
  const a = await cluster.spawnReplica('rampart-ca-a');
  const first = await cluster.secretState();
  const startedLine = (logs: typeof a.logs) => logs.find((l) => l.event === 'ca-started');
  assert.equal(startedLine(a.logs)?.['bundleSequence'], first.sequence);
  assert.equal(startedLine(a.logs)?.['rootFingerprint'], first.roots[0]?.fingerprint);
  const bannerA = await banner(a);
  assert.match(bannerA, new RegExp(`^Rampart CA listening on ${a.apiUrl.replace(/\./g, '\\.')} `, 'm'));
  assert.match(bannerA, new RegExp(`^  root: +${first.roots[0]?.fingerprint}  \\(state in Secret ${CA_NAMESPACE}/${STATE_SECRET}\\)$`, 'm'));
  assert.match(bannerA, /^ {2}trust bundle: ConfigMap rampart-root-cert \(key root-cert\.pem\) in every namespace/m);

  // A prepared root raises the sequence but does not sign: a replica started now names the active one.
  const bundlePem = await a.bootstrapBundlePem();
  const prepared = await call(`${a.apiUrl}/v1/admin/roots/prepare`, { ca: bundlePem, token: await cluster.token(CA_NAMESPACE, 'rampart-admin'), body: {} });
  assert.equal(prepared.status, 200, prepared.text);
  const b = await cluster.spawnReplica('rampart-ca-b');
  const now = await cluster.secretState();
  assert.equal(now.sequence, first.sequence + 1);
  const active = now.roots.find((r) => r.phase === 'active');
  assert.equal(active?.fingerprint, first.roots[0]?.fingerprint);
  assert.equal(startedLine(b.logs)?.['bundleSequence'], now.sequence);
  assert.equal(startedLine(b.logs)?.['rootFingerprint'], active?.fingerprint);
  assert.match(await banner(b), new RegExp(`^  root: +${active?.fingerprint}  `, 'm'));
});
