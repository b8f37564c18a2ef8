import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CaClient } from '../../src/client/ca-client.js';
import type { RotationStatus } from '../../src/runtime/ca-runtime.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { eventually, metricValue, monitoring, startTestAgent } from './agent-support.js';

let ca: TestCa;
before(async () => {
  ca = await startTestCa();
});
after(async () => {
  await ca.close();
});

const count = (pem: string): number => (pem.match(/-----BEGIN CERTIFICATE-----/g) ?? []).length;

test('bundle change: a prepared root reaches root-cert.pem by long-poll and the CA sees the agent hold it', async () => {
  // A 1 h certificate: no renewal happens during the test, so only the long-poll can bring the root.
  const t = await startTestAgent(ca, 'shop', 'watcher', { ttl: '1h' });
  const admin = new CaClient({ url: ca.apiUrl, caBundle: () => ca.rootCertPem() });
  try {
    const rootFile = join(t.outDir, 'root-cert.pem');
    assert.equal(count(readFileSync(rootFile, 'utf8')), 1);
    const sequenceBefore = t.agent.manager.bundleSequence;
    const serialBefore = t.agent.manager.serial;
    const token = await ca.token('rampart-system', 'rampart-admin');
    await admin.adminStep('prepare', false, token);

    const updated = await eventually('root-cert.pem to gain the prepared root', () => {
      const pem = readFileSync(rootFile, 'utf8');
      return count(pem) === 2 ? pem : undefined;
    }, 15_000);
    assert.equal(updated.trim(), ca.rootCertPem().trim());
    assert.ok(t.agent.manager.bundleSequence > sequenceBefore);
    assert.equal(t.agent.manager.serial, serialBefore, 'the bundle came by long-poll, not with a new certificate');
    assert.equal(count(t.agent.manager.current()?.bundlePem ?? ''), 2, 'the proxy gets the new bundle too');
    await t.logs.waitFor((l) => l['event'] === 'trust-bundle-updated');

    const status = await eventually('the CA to see the agent hold the new sequence', async () => {
      const s = (await admin.adminStatus(token)) as RotationStatus;
      const prepared = s.roots.find((r) => r.phase === 'prepared');
      return prepared?.propagation && prepared.propagation.agentsUpToDate >= 1 ? s : undefined;
    }, 15_000);
    assert.equal(status.sequence, t.agent.manager.bundleSequence);
    const metrics = (await monitoring(t.agent, '/metrics')).body;
    assert.equal(metricValue(metrics, 'rampart_agent_trust_bundle_sequence'), status.sequence);
  } finally {
    admin.close();
    await t.close();
  }
});
