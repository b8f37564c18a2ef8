import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ManualClock } from '../../src/core/clock.js';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound } from '../../src/agent/proxy/index.js';
import { forgeLeaf } from './proxy-forge.js';
import { CLIENT_ID, captureLogs, countingBackend, makePki, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

interface Attempt {
  /** The handshake completed and the client called it a resumption. */
  readonly reused: boolean;
  /** What came back from the backend through the inbound. */
  readonly echo: string;
  /** TLS session state the server handed out (ticket), if any. */
  readonly session: Buffer | undefined;
}

/** One plain mTLS connection: write `text`, wait for its echo or the close, collect any ticket. */
function attempt(port: number, keyPem: string, certPem: string, version: tls.SecureVersion, text: string, session?: Buffer): Promise<Attempt> {
  return new Promise((resolve) => {
    let echo = '';
    let reused = false;
    let ticket: Buffer | undefined;
    const s = tls.connect({ host: '127.0.0.1', port, key: keyPem, cert: certPem, ca: pki.creds('client').bundlePem, checkServerIdentity: () => undefined, minVersion: version, maxVersion: version, ...(session === undefined ? {} : { session }) });
    s.on('secureConnect', () => {
      reused = s.isSessionReused();
      s.write(text);
    });
    s.on('session', (t: Buffer) => (ticket = t));
    s.on('data', (d: Buffer) => {
      echo += d.toString();
      if (echo.length >= text.length) s.end();
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ reused, echo, session: ticket }));
  });
}

for (const version of ['TLSv1.3', 'TLSv1.2'] as const) {
  test(`inbound (${version}): a TLS session from before the client certificate expired is not resumed after it`, async () => {
    const logs = captureLogs();
    const backend = await countingBackend();
    const leaf = await forgeLeaf(pki, CLIENT_ID, Date.now() + 3_000);
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger });
    try {
      const first = await attempt(inbound.address.port, leaf.keyPem, leaf.certPem, version, 'first\n');
      assert.equal(first.echo, 'first\n');
      // An inbound that hands out no ticket has nothing to resume: the second attempt is then a
      // full handshake, which must be refused too.
      await sleep(Math.max(0, leaf.notAfter - Date.now()) + 1_500);
      const second = await attempt(inbound.address.port, leaf.keyPem, leaf.certPem, version, 'second\n', first.session);
      assert.equal(second.reused, false, 'the inbound resumed a TLS session of an expired client certificate');
      assert.equal(second.echo, '');
      assert.equal(backend.accepted(), 1, 'the expired client reached the backend');
    } finally {
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });
}

test('inbound: a TLS session is not resumed after the bundle dropped the root its client chains to', async () => {
  const logs = captureLogs();
  const backend = await countingBackend();
  const client = pki.creds('client');
  const source = new StaticCredentialSource(pki.creds('server'));
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: source, logger: logs.logger });
  try {
    const first = await attempt(inbound.address.port, client.keyPem, client.certChainPem, 'TLSv1.3', 'first\n');
    assert.equal(first.echo, 'first\n');
    // The root was retired: only another trust domain's root is left in the bundle.
    source.update({ ...pki.creds('server'), bundlePem: pki.creds('foreign').bundlePem });
    const second = await attempt(inbound.address.port, client.keyPem, client.certChainPem, 'TLSv1.3', 'second\n', first.session);
    assert.equal(second.reused, false);
    assert.equal(second.echo, '');
    assert.equal(backend.accepted(), 1);
  } finally {
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('inbound: a connection whose client certificate has expired on the inbound clock is denied', async () => {
  const logs = captureLogs();
  const backend = await countingBackend();
  const client = pki.creds('client');
  const clientNotAfter = Date.parse(new X509Certificate(client.certChainPem).validTo);
  // TLS judges validity on the real clock and accepts the handshake; the inbound's own clock,
  // the one a resumed session is judged on, says the certificate is past its notAfter.
  const clock = new ManualClock(clientNotAfter + 1_000);
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server', clientNotAfter + 86_400_000)), logger: logs.logger, clock });
  try {
    const refused = await attempt(inbound.address.port, client.keyPem, client.certChainPem, 'TLSv1.3', 'hello\n');
    assert.equal(refused.echo, '');
    assert.equal(backend.accepted(), 0);
    const denied = await logs.waitFor((l) => l['result'] === 'denied');
    assert.equal(denied['peer'], CLIENT_ID);
    assert.match(String(denied['error']), /certificate expired/);
  } finally {
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});
