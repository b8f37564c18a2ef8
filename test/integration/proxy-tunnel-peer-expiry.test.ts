import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import http2 from 'node:http2';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { ManualClock } from '../../src/core/clock.js';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound } from '../../src/agent/proxy/index.js';
import { eventually } from '../helpers/poll.js';
import { forgeLeaf } from './proxy-forge.js';
import { CLIENT_ID, captureLogs, countingBackend, makePki, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/** A tunnel client session as another agent opens it: ALPN rampart-tunnel, our client SVID. */
function tunnelClient(port: number, keyPem: string, certPem: string): Promise<http2.ClientHttp2Session> {
  const socket = tls.connect({ host: '127.0.0.1', port, key: keyPem, cert: certPem, ca: pki.creds('client').bundlePem, ALPNProtocols: ['rampart-tunnel'], checkServerIdentity: () => undefined });
  const session = http2.connect('https://tunnel', { createConnection: () => socket });
  session.on('error', () => {});
  return new Promise((resolve, reject) => {
    session.once('connect', () => resolve(session));
    session.once('close', () => reject(new Error('tunnel session closed before it was set up')));
  });
}

/** What one CONNECT stream got: its status (if any), echoed text, reset code. */
function connectStream(session: http2.ClientHttp2Session, text: string): Promise<{ status: number | undefined; echo: string; rstCode: number | undefined; error: string | undefined }> {
  return new Promise((resolve) => {
    let status: number | undefined;
    let echo = '';
    let error: string | undefined;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request({ ':method': 'CONNECT', ':authority': 'backend:1' }, { endStream: false });
    } catch (err) {
      // The session already received GOAWAY: the client cannot open streams on it at all.
      resolve({ status: undefined, echo: '', rstCode: undefined, error: (err as NodeJS.ErrnoException).code });
      return;
    }
    stream.on('response', (h) => {
      status = Number(h[':status']);
      if (status === 200) stream.write(text);
    });
    stream.on('data', (d: Buffer) => {
      echo += d.toString();
      if (echo.length >= text.length) stream.close();
    });
    stream.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    stream.on('close', () => resolve({ status, echo, rstCode: stream.rstCode, error }));
  });
}

test('tunnel: a session refuses new streams once its peer certificate has expired', async () => {
  const logs = captureLogs();
  const backend = await countingBackend();
  const client = pki.creds('client');
  const clientNotAfter = Date.parse(new X509Certificate(client.certChainPem).validTo);
  // The inbound judges expiry on its clock; TLS itself judged the handshake on the real one.
  const clock = new ManualClock(Date.now());
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server', clientNotAfter + 86_400_000)), logger: logs.logger, clock });
  const session = await tunnelClient(inbound.address.port, client.keyPem, client.certChainPem);
  try {
    const before = await connectStream(session, 'before\n');
    assert.equal(before.status, 200);
    assert.equal(before.echo, 'before\n');
    assert.equal(backend.accepted(), 1);

    clock.set(clientNotAfter + 1_000);
    const afterExpiry = await connectStream(session, 'after\n');
    assert.notEqual(afterExpiry.status, 200, 'a stream opened after the peer certificate expired was answered 200');
    assert.equal(afterExpiry.echo, '');
    assert.equal(backend.accepted(), 1, 'the expired peer reached the backend');
    const denied = await logs.waitFor((l) => l['mode'] === 'tunnel' && l['result'] === 'denied');
    assert.equal(denied['peer'], CLIENT_ID);
    assert.match(String(denied['error']), /certificate expired/);
  } finally {
    session.destroy();
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('tunnel: at its peer certificate notAfter a session gets GOAWAY and closes', async () => {
  const logs = captureLogs();
  const backend = await countingBackend();
  const leaf = await forgeLeaf(pki, CLIENT_ID, Date.now() + 3_000);
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, timeouts: { tunnelPingMs: 3_600_000 } });
  const session = await tunnelClient(inbound.address.port, leaf.keyPem, leaf.certPem);
  const goaway = new Promise<void>((resolve) => {
    session.once('goaway', () => resolve());
    session.once('close', () => resolve());
  });
  try {
    const first = await connectStream(session, 'first\n');
    assert.equal(first.status, 200);
    assert.equal(first.echo, 'first\n');
    // Generous: the certificate expires three seconds after it was made.
    const deadline = new Promise<'no goaway'>((resolve) => setTimeout(() => resolve('no goaway'), 20_000).unref());
    assert.notEqual(await Promise.race([goaway, deadline]), 'no goaway', 'the session outlived its peer certificate');
    assert.ok(Date.now() >= leaf.notAfter - 1_000, 'GOAWAY came long before the peer certificate expired');
    const closed = await logs.waitFor((l) => l['direction'] === 'inbound' && l['msg'] === 'tunnel session closed');
    assert.equal(closed['peer'], CLIENT_ID);
    await eventually('the socket of the expired session to close', () => inbound.openSockets === 0, 10_000);
    assert.equal(backend.accepted(), 1);
  } finally {
    session.destroy();
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});
