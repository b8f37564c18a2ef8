import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CaClient } from '../../src/client/ca-client.js';
import type { RotationStatus } from '../../src/runtime/rotation-status.js';
import { chainsToBundle } from '../../src/agent/chain-check.js';
import { readCredentials } from '../../src/agent/output-reader.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { OpenSsl, splitPemCertificates } from '../helpers/openssl.js';
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

test('a forced retire of the root under the agent\'s certificate makes it renew at once, not at its scheduled time', { timeout: 60_000 }, async () => {
  // Its own CA: this test rotates roots. A 1 h certificate is not due for renewal for 30 minutes.
  const rotating = await startTestCa({ 'auto-rotate': 'false' });
  const t = await startTestAgent(rotating, 'shop', 'retiree', { ttl: '1h' });
  try {
    const serialBefore = t.agent.manager.serial;
    await rotating.runtime.prepare();
    await rotating.runtime.activate(true);
    await eventually('the agent to hold the activated bundle', () => (t.agent.manager.bundleSequence === 3 ? true : undefined), 15_000);
    // The activation changes no root in the bundle, only its sequence: logged all the same
    // (outside QA: the agents' logs showed every rotation step but the activations).
    const activated = await t.logs.waitFor((l) => l['event'] === 'trust-bundle-updated' && l['to'] === 3);
    assert.equal(activated['rootsChanged'], false);
    assert.equal(t.agent.manager.serial, serialBefore, 'while the old root is still in the bundle the certificate is kept');
    await rotating.runtime.retire(true);
    const renewed = await t.logs.waitFor((l) => l['event'] === 'certificate-root-retired');
    assert.equal(renewed['serial'], serialBefore);
    await eventually('a certificate that chains to the new bundle', () => (t.agent.manager.serial !== serialBefore ? true : undefined), 15_000);
    const files = { chain: readFileSync(join(t.outDir, 'cert-chain.pem'), 'utf8'), roots: readFileSync(join(t.outDir, 'root-cert.pem'), 'utf8') };
    await eventually('the output files to agree', () => {
      files.chain = readFileSync(join(t.outDir, 'cert-chain.pem'), 'utf8');
      files.roots = readFileSync(join(t.outDir, 'root-cert.pem'), 'utf8');
      return count(files.roots) === 1 && chainsToBundle(files.chain, files.roots) ? true : undefined;
    }, 15_000);
    const ssl = await OpenSsl.create('rampart-retiree-');
    try {
      const [leafPem, ...rest] = splitPemCertificates(files.chain);
      const verified = await ssl.verify({ rootsPem: files.roots, leafPem: leafPem ?? '', untrustedPems: rest });
      assert.equal(verified.code, 0, verified.stderr);
    } finally {
      await ssl.close();
    }
  } finally {
    await t.close();
    await rotating.close();
  }
});

test('a bundle-only change writes key.pem and cert-chain.pem from memory: files damaged on disk are not carried forward', { timeout: 60_000 }, async () => {
  // Its own CA: this test prepares a root. A 1 h certificate: only the long-poll brings the change.
  const rotating = await startTestCa({ 'auto-rotate': 'false' });
  const t = await startTestAgent(rotating, 'shop', 'damaged', { ttl: '1h' });
  try {
    const held = t.agent.manager.current();
    assert.ok(held);
    const serialBefore = t.agent.manager.serial;
    const before = readlinkSync(join(t.outDir, '..data'));
    // A truncated key and a chain that is no file at all (a FIFO: a copy would wait on it for good).
    writeFileSync(join(t.outDir, before, 'key.pem'), held.keyPem.slice(0, 40));
    rmSync(join(t.outDir, before, 'cert-chain.pem'));
    execFileSync('mkfifo', [join(t.outDir, before, 'cert-chain.pem')]);
    await rotating.runtime.prepare();
    const files = await eventually('a new generation with the prepared root', async () => {
      const read = await readCredentials(t.outDir).catch(() => undefined);
      return read && read.generation !== before && count(read.rootCertPem) === 2 ? read : undefined;
    }, 15_000);
    assert.equal(t.agent.manager.serial, serialBefore, 'the bundle came by long-poll, not with a new certificate');
    // assert.ok rather than equal: a failed comparison must not print the key.
    assert.ok(files.keyPem === held.keyPem, 'key.pem is the key the agent holds, whole');
    assert.ok(files.certChainPem === held.certChainPem, 'cert-chain.pem is the chain the agent holds, whole');
    assert.ok(new X509Certificate(files.certChainPem).checkPrivateKey(createPrivateKey(files.keyPem)), 'key and certificate match');
  } finally {
    await t.close();
    await rotating.close();
  }
});
