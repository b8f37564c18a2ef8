/**
 * Propagation gating over real HTTPS: agents report the bundle sequence they hold on
 * POST /v1/certificates and on GET /v1/trust-bundle (with their SVID); activation waits until
 * every recently seen agent holds the prepared root and one refresh interval has passed. The
 * CA's clock is a ManualClock started at the real time, so "one interval passed" is a step of
 * the test rather than a sleep; each phase change is checked in the log and the metrics.
 */
import { X509Certificate } from 'node:crypto';
import { strict as assert } from 'node:assert';
import { after, before, test } from 'node:test';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { ManualClock } from '../../src/core/clock.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { adminCall, metricValue, pemFingerprints } from './rotation-support.js';

interface Agent {
  readonly id: string;
  readonly token: string;
  certChainPem: string;
  keyPem: string;
}

let ca: TestCa;
let clock: ManualClock;
let adminToken: string;
const agents: Agent[] = [];

before(async () => {
  clock = new ManualClock(Date.now());
  ca = await startTestCa({ 'bundle-refresh-interval': '1s' }, { clock });
  adminToken = await ca.token('rampart-system', 'rampart-admin');
  for (const [i, sa] of ['web', 'web', 'db'].entries()) {
    agents.push({ id: `pod-${i}`, token: await ca.token('shop', sa), certChainPem: '', keyPem: '' });
  }
});

after(async () => {
  await ca?.close();
});

/** The agent fetches a certificate, reporting the sequence it holds. */
async function renew(agent: Agent, held: number): Promise<number> {
  const { keyPem, csrPem } = createKeyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, {
    ca: ca.rootCertPem(),
    token: agent.token,
    body: { csr: csrPem },
    headers: { 'rampart-bundle-sequence': String(held), 'rampart-agent-id': agent.id },
  });
  assert.equal(res.status, 200, res.text);
  agent.certChainPem = (res.body.certChain as string[]).join('');
  agent.keyPem = keyPem;
  return res.body.bundleSequence as number;
}

/** The agent polls the bundle with its SVID as client certificate, reporting what it holds. */
async function pollBundle(agent: Agent, held: number): Promise<number> {
  const res = await httpsJson(`${ca.apiUrl}/v1/trust-bundle?format=json`, {
    ca: ca.rootCertPem(),
    cert: agent.certChainPem,
    key: agent.keyPem,
    headers: { 'rampart-bundle-sequence': String(held), 'rampart-agent-id': agent.id },
  });
  assert.equal(res.status, 200, res.text);
  return res.body.sequence as number;
}

async function status(): Promise<any> {
  const res = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'status');
  assert.equal(res.status, 200, res.text);
  return res.body;
}

async function metrics(): Promise<string> {
  const res = await httpsJson(`${ca.monitoringUrl}/metrics`, { headers: { accept: 'text/plain' } });
  assert.equal(res.status, 200);
  return res.text;
}

function logged(event: string): Array<Record<string, unknown>> {
  return ca.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l['event'] === event);
}

test('activation waits for every agent to hold the prepared root and one refresh interval; --force skips it', async () => {
  for (const agent of agents) assert.equal(await renew(agent, 1), 1);
  const firstRoot = (await status()).roots[0];

  const prepared = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'prepare');
  assert.equal(prepared.status, 200, prepared.text);
  assert.equal(prepared.body.sequence, 2);
  const newRoot = prepared.body.roots.find((r: { phase: string }) => r.phase === 'prepared');
  assert.equal(newRoot.propagation.agentsSeen, 3);
  assert.equal(newRoot.propagation.agentsUpToDate, 0);
  assert.equal(newRoot.propagation.propagated, false);
  assert.equal(logged('rotation-prepare').length, 1);
  assert.deepEqual(pemFingerprints(ca.rootCertPem()), [firstRoot.fingerprint, newRoot.fingerprint], 'root-cert.pem holds both roots');
  let m = await metrics();
  assert.equal(metricValue(m, 'rampart_ca_trust_bundle_sequence'), 2);
  assert.equal(metricValue(m, 'rampart_ca_bundle_propagation_ratio'), 0);
  assert.equal(metricValue(m, 'rampart_ca_root_expiry_timestamp_seconds', `{fingerprint="${newRoot.fingerprint}"}`), Date.parse(newRoot.notAfter) / 1000);
  assert.equal(metricValue(m, 'rampart_ca_root_expiry_timestamp_seconds', `{fingerprint="${firstRoot.fingerprint}"}`), Date.parse(firstRoot.notAfter) / 1000);

  let refused = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate');
  assert.equal(refused.status, 409, refused.text);
  assert.equal(refused.body.error.code, 'RAMPART_ERR_ROTATION_NOT_ALLOWED');
  assert.match(refused.body.error.message, /may not have reached every agent yet: 0 of 3 agents seen recently hold bundle sequence 2/);

  // Two agents pick it up: one through a renewal, one through its bundle poll with its SVID.
  assert.equal(await renew(agents[0]!, 1), 2);
  await renew(agents[0]!, 2);
  assert.equal(await pollBundle(agents[1]!, 2), 2);
  const partial = (await status()).roots.find((r: { phase: string }) => r.phase === 'prepared').propagation;
  assert.deepEqual([partial.agentsUpToDate, partial.agentsSeen, partial.propagated], [2, 3, false]);
  refused = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate');
  assert.equal(refused.status, 409);
  assert.match(refused.body.error.message, /2 of 3 agents/);

  // All three hold it, but less than one refresh interval has passed since it was published.
  assert.equal(await pollBundle(agents[2]!, 2), 2);
  refused = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate');
  assert.equal(refused.status, 409);
  assert.match(refused.body.error.message, /has reached every agent seen so far: 3 of 3 agents seen recently hold bundle sequence 2, but agents that poll slowly may not have asked yet: it was published at \S+Z and they get one refresh interval, until \S+Z; retry then, or use --force/);

  clock.advance(1_000);
  await ca.runtime.tick();
  m = await metrics();
  assert.equal(metricValue(m, 'rampart_ca_bundle_propagation_ratio'), 1);
  const ready = (await status()).roots.find((r: { phase: string }) => r.phase === 'prepared').propagation;
  assert.equal(ready.propagated, true, ready.reason);

  const activated = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate');
  assert.equal(activated.status, 200, activated.text);
  assert.deepEqual(activated.body.roots.map((r: { phase: string }) => r.phase), ['retiring', 'active']);
  assert.equal(activated.body.sequence, 3);
  const activateLog = logged('rotation-activate');
  assert.equal(activateLog.length, 1);
  assert.equal(activateLog[0]!['sequence'], 3);
  m = await metrics();
  assert.equal(metricValue(m, 'rampart_ca_trust_bundle_sequence'), 3);
  assert.equal(metricValue(m, 'rampart_ca_bundle_propagation_ratio'), 0, 'nobody holds sequence 3 yet');

  // New leaves, and the CA's own serving certificate, chain to the new root now.
  const newRootCert = new X509Certificate(newRoot.pem);
  await renew(agents[0]!, 3);
  const newLeafChain = agents[0]!.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  assert.ok(new X509Certificate(newLeafChain[1]!).verify(newRootCert.publicKey), 'issued under the new root');
  const servingChain = ca.servingCertificate().certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)!;
  assert.ok(new X509Certificate(servingChain[1]!).verify(newRootCert.publicKey), 'serving certificate moved to the new root');

  // The next rotation, forced: no waiting for agents.
  const again = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'prepare');
  assert.equal(again.status, 200, again.text);
  assert.equal((await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate')).status, 409);
  const forced = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate', true);
  assert.equal(forced.status, 200, forced.text);
  assert.deepEqual(forced.body.roots.map((r: { phase: string }) => r.phase), ['retiring', 'retiring', 'active']);

  // Prepare the next root while two old ones are still retiring, then retire those: the bundle
  // moves past the sequence the prepared root was added at. A restarted CA must still let it
  // activate once every agent holds it and one interval has passed.
  const next = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'prepare');
  assert.equal(next.status, 200, next.text);
  const retired = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'retire', true);
  assert.equal(retired.status, 200, retired.text);
  assert.deepEqual(retired.body.roots.map((r: { phase: string }) => r.phase), ['active', 'prepared']);
  assert.equal(retired.body.sequence, next.body.sequence + 1);
  assert.equal(logged('rotation-retire').length, 1);
  m = await metrics();
  assert.equal(metricValue(m, 'rampart_ca_trust_bundle_sequence'), retired.body.sequence);
  const expiryLines = m.split('\n').filter((l) => l.startsWith('rampart_ca_root_expiry_timestamp_seconds{'));
  assert.equal(expiryLines.length, 2, 'retired roots leave the expiry metric');
  for (const r of retired.body.roots) assert.ok(expiryLines.some((l) => l.includes(r.fingerprint)));
  assert.deepEqual(pemFingerprints(ca.rootCertPem()), retired.body.roots.map((r: { fingerprint: string }) => r.fingerprint));

  await ca.close({ keepState: true });
  ca = await startTestCa({ 'bundle-refresh-interval': '1s' }, { clock, stateDir: ca.stateDir });
  for (const agent of agents) await renew(agent, retired.body.sequence);
  assert.equal((await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate')).status, 409, 'one interval has not passed since the restart');
  clock.advance(1_000);
  const afterRestart = await adminCall(ca.apiUrl, ca.rootCertPem(), adminToken, 'activate');
  assert.equal(afterRestart.status, 200, afterRestart.text);
  assert.deepEqual(afterRestart.body.roots.map((r: { phase: string }) => r.phase), ['retiring', 'active']);
});
