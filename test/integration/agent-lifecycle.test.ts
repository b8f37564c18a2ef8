import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { chmodSync, closeSync, constants, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readCredentials } from '../../src/agent/output-reader.js';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { eventually, metricValue, monitoring, startTestAgent } from './agent-support.js';

let ca: TestCa;
before(async () => {
  ca = await startTestCa({ 'min-ttl': '2s', 'default-ttl': '4s' });
});
after(async () => {
  await ca.close();
});

const leafOf = (chainPem: string): X509Certificate => new X509Certificate(chainPem);

test('output dir: three files, key 0600 matching the cert, root-cert.pem is the bundle, openssl verifies the chain', async () => {
  const t = await startTestAgent(ca, 'shop', 'cart', { ttl: '1h' });
  try {
    const files = await readCredentials(t.outDir);
    assert.equal(statSync(join(t.outDir, 'key.pem')).mode & 0o777, 0o600);
    const leaf = leafOf(files.certChainPem);
    assert.ok(leaf.checkPrivateKey(createPrivateKey(files.keyPem)), 'key.pem belongs to cert-chain.pem');
    assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/cart');
    assert.equal(files.rootCertPem.trim(), ca.rootCertPem().trim());
    const blocks = files.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
    assert.ok(blocks.length >= 2, 'leaf plus intermediate');
    const scratch = mkdtempSync(join(tmpdir(), 'rampart-verify-'));
    try {
      writeFileSync(join(scratch, 'leaf.pem'), blocks[0] as string);
      writeFileSync(join(scratch, 'inter.pem'), blocks.slice(1).join(''));
      const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(t.outDir, 'root-cert.pem'), '-untrusted', join(scratch, 'inter.pem'), join(scratch, 'leaf.pem')], { encoding: 'utf8' });
      assert.match(out, /leaf\.pem: OK/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    const ready = await monitoring(t.agent, '/readyz');
    assert.equal(ready.status, 200);
    const metrics = (await monitoring(t.agent, '/metrics')).body;
    assert.equal(metricValue(metrics, 'rampart_agent_certificate_expiry_timestamp_seconds'), Date.parse(leaf.validTo) / 1000);
    assert.ok(metricValue(metrics, 'rampart_agent_renewals_total', 'result="ok"') >= 1);
    // DESIGN section 10 names it for every agent, one that proxies nothing included.
    assert.match(metrics, /^# TYPE rampart_agent_connections_total counter$/m);
    assert.ok(!t.logs.lines.some((l) => JSON.stringify(l).includes('PRIVATE KEY')), 'no key material in logs');
    assert.ok(!t.logs.lines.some((l) => JSON.stringify(l).includes(readFileSync(t.tokenFile, 'utf8').trim())), 'no token in logs');
  } finally {
    await t.close();
  }
});

test('renewal with short TTLs: the serial changes several times and every file generation is consistent', async () => {
  const t = await startTestAgent(ca, 'shop', 'renewer', { ttl: '3s' });
  try {
    const serials = new Set<string>();
    let mismatches = 0;
    await eventually('four distinct certificates', async () => {
      const files = await readCredentials(t.outDir);
      const leaf = leafOf(files.certChainPem);
      // Counted, not asserted here: eventually() would swallow the failure and poll again.
      if (!leaf.checkPrivateKey(createPrivateKey(files.keyPem))) mismatches++;
      serials.add(leaf.serialNumber);
      return serials.size >= 4;
    }, 60_000);
    assert.equal(mismatches, 0, 'never a key from one generation with a cert from another');
    assert.equal((await monitoring(t.agent, '/readyz')).status, 200);
    // The counter moves just after the files are swapped in, so the fourth file generation can
    // be seen a moment before the fourth count.
    await eventually('four successful renewals counted', async () => metricValue((await monitoring(t.agent, '/metrics')).body, 'rampart_agent_renewals_total', 'result="ok"') >= 4, 5_000);
  } finally {
    await t.close();
  }
});

test('a --ttl the CA clamps is said once, with what was asked and what was granted (outside QA: --ttl 2d gave 24h without a word)', async () => {
  const t = await startTestAgent(ca, 'shop', 'long-lived', { ttl: '2d' });
  try {
    // Said just before the certificate is announced, so it is in by then.
    await t.logs.waitFor((l) => l['event'] === 'certificate-obtained');
    const clamped = t.logs.lines.find((l) => l['event'] === 'ttl-clamped');
    assert.ok(clamped !== undefined, 'a ttl-clamped warning');
    assert.equal(clamped['ttlRequested'], '2d');
    assert.equal(clamped['ttlGranted'], '1d', 'the CA\'s default --max-ttl of 24h');
    assert.equal(clamped['level'], 40, 'a warning');
  } finally {
    await t.close();
  }
  const asked = await startTestAgent(ca, 'shop', 'as-asked', { ttl: '1h' });
  try {
    await asked.logs.waitFor((l) => l['event'] === 'certificate-obtained');
    assert.ok(!asked.logs.lines.some((l) => l['event'] === 'ttl-clamped'), 'granted as asked: nothing to say');
  } finally {
    await asked.close();
  }
});

test('an --out-dir other users can write is warned of at start, one with the sticky bit or 0755 is not (outside QA)', async () => {
  const base = mkdtempSync(join(tmpdir(), 'rampart-outdir-mode-'));
  try {
    const cases = [['open', 0o777, true], ['sticky', 0o1777, false], ['private', 0o755, false]] as const;
    for (const [name, mode, warned] of cases) {
      const outDir = join(base, name);
      mkdirSync(outDir);
      chmodSync(outDir, mode);
      const t = await startTestAgent(ca, 'shop', `mode-${name}`, { 'out-dir': outDir });
      try {
        const line = t.logs.lines.find((l) => l['event'] === 'out-dir-writable-by-others');
        assert.equal(line !== undefined, warned, name);
        if (warned) assert.equal(line?.['mode'], '0777');
      } finally {
        await t.close();
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test('/readyz says not ready as soon as the agent starts to drain, while its listeners refuse new connections (outside QA)', async () => {
  const t = await startTestAgent(ca, 'shop', 'draining', { inbound: ['127.0.0.1:0=127.0.0.1:9'], allow: ['spiffe://cluster.local/ns/shop/*'] });
  // A connection still open (this one never starts TLS) keeps the drain going.
  const held = net.connect({ host: '127.0.0.1', port: t.agent.inbound[0]!.address.port });
  held.on('error', () => {});
  await once(held, 'connect');
  try {
    assert.equal((await monitoring(t.agent, '/readyz')).status, 200);
    const stopped = t.agent.stop({ drainMs: 60_000 });
    const during = await monitoring(t.agent, '/readyz');
    assert.equal(during.status, 503);
    assert.match(during.body, /shutting down: draining open connections, refusing new ones/);
    held.destroy();
    await stopped;
  } finally {
    held.destroy();
    await t.close();
  }
});

test('token file is re-read on every request: another identity in it gives the next certificate that ID', async () => {
  const t = await startTestAgent(ca, 'shop', 'first', { ttl: '3s' });
  try {
    assert.equal(t.agent.manager.current()?.spiffeId, 'spiffe://cluster.local/ns/shop/sa/first');
    await t.setIdentity('billing', 'second');
    await eventually('a certificate for the new identity', async () => leafOf((await readCredentials(t.outDir)).certChainPem).subjectAltName === 'URI:spiffe://cluster.local/ns/billing/sa/second');
    assert.equal(t.agent.manager.current()?.spiffeId, 'spiffe://cluster.local/ns/billing/sa/second');
    await t.logs.waitFor((l) => l['event'] === 'identity-changed');
  } finally {
    await t.close();
  }
});

test('an unreadable token file (a directory, a FIFO) is logged clearly and retried until it is readable again', { timeout: 120_000 }, async () => {
  const t = await startTestAgent(ca, 'shop', 'flaky', { ttl: '3s' });
  try {
    const before = t.agent.manager.serial;
    // A directory where the file should be: unreadable even for root (EISDIR), like a broken mount.
    const saved = readFileSync(t.tokenFile, 'utf8');
    rmSync(t.tokenFile);
    mkdirSync(t.tokenFile);
    const line = await t.logs.waitFor((l) => l['event'] === 'renewal-failed' && l['code'] === 'RAMPART_ERR_TOKEN_FILE');
    assert.match(String(line['error']), /token file .*token is a directory, not a regular file; check --token-file/);
    await t.logs.waitFor((l) => l['event'] === 'renewal-failed' && l['code'] === 'RAMPART_ERR_TOKEN_FILE' && Number(l['failures']) >= 2);
    assert.equal(t.agent.manager.serial, before, 'no new certificate without a token');
    rmSync(t.tokenFile, { recursive: true });
    // A FIFO: the read used to wait for a writer forever, so renewals stopped without a word.
    execFileSync('mkfifo', [t.tokenFile]);
    try {
      const fifo = await t.logs.waitFor((l) => l['event'] === 'renewal-failed' && l['code'] === 'RAMPART_ERR_TOKEN_FILE' && /is a FIFO/.test(String(l['error'])));
      assert.match(String(fifo['error']), /token file .*token is a FIFO, not a regular file; check --token-file/);
    } finally {
      // Opening the write end releases a read that did block (the old behaviour), so a failure here
      // fails this test rather than hanging the process.
      closeSync(openSync(t.tokenFile, constants.O_RDWR | constants.O_NONBLOCK));
      rmSync(t.tokenFile);
    }
    writeFileSync(t.tokenFile, saved);
    await eventually('a renewal after the token is readable again', () => t.agent.manager.serial !== before);
    const metrics = (await monitoring(t.agent, '/metrics')).body;
    assert.ok(metricValue(metrics, 'rampart_agent_renewals_total', 'result="RAMPART_ERR_TOKEN_FILE"') >= 2);
  } finally {
    await t.close();
  }
});
