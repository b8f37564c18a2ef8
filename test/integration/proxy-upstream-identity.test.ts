/**
 * The outbound's identity check on a real mTLS handshake: it is handed the upstream's leaf alone
 * (node would build the whole chain as JS objects for it, about 400 µs per connection), the socket
 * answers in full afterwards, a resumed session (no check) reads as node reads it, and an upstream
 * with another SPIFFE ID never receives a byte the application wrote before the handshake ended.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import tls, { type PeerCertificate } from 'node:tls';
import { connectUpstream, PeerIdMismatchError, spiffeServerIdentityCheck, upstreamLeaf, whenSecure } from '../../src/agent/proxy/upstream-tls.js';
import { INTRUDER_ID, makePki, SERVER_ID, type Pki } from './proxy-support.js';

let pki: Pki;
let server: tls.Server;
let port: number;
let clientContext: tls.SecureContext;
/** Application bytes the upstream received, over all connections. */
let received = 0;
/** Connections the upstream saw end, handshaken or not. */
const ended: Array<() => void> = [];

function nextEnd(): Promise<void> {
  return new Promise((resolve) => ended.push(resolve));
}

function connectionEnded(): void {
  ended.shift()?.();
}

before(async () => {
  pki = makePki();
  const leaf = pki.leaves.server;
  server = tls.createServer({ key: readFileSync(leaf.keyPath), cert: readFileSync(leaf.certPath), ca: readFileSync(pki.caPath), requestCert: true, rejectUnauthorized: true }, (socket) => {
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.on('error', () => undefined);
    socket.on('close', connectionEnded);
  });
  server.on('tlsClientError', connectionEnded);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  const client = pki.leaves.client;
  clientContext = tls.createSecureContext({ key: readFileSync(client.keyPath), cert: readFileSync(client.certPath), ca: readFileSync(pki.caPath) });
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  pki.cleanup();
});

/**
 * Connects to the upstream through `connectUpstream`, hands the socket to `use`, then closes it and
 * waits until the upstream saw the connection end, whether `use` passed or threw.
 */
async function withUpstream<T>(check: (host: string, cert: PeerCertificate) => Error | undefined, extra: { session?: Buffer }, use: (socket: tls.TLSSocket) => Promise<T>): Promise<T> {
  const socket = connectUpstream({ host: '127.0.0.1', port }, clientContext, check, extra);
  const end = nextEnd();
  try {
    return await use(socket);
  } finally {
    socket.destroy();
    await end;
  }
}

/** SERVER_ID's identity check, recording each certificate it is handed. */
function recordingCheck(): { check: (host: string, cert: PeerCertificate) => Error | undefined; handed: PeerCertificate[] } {
  const handed: PeerCertificate[] = [];
  const expectServer = spiffeServerIdentityCheck(SERVER_ID);
  return {
    handed,
    check: (host, cert) => {
      handed.push(cert);
      return expectServer(host, cert);
    },
  };
}

test('the identity check is handed the upstream leaf alone, and the socket answers in full afterwards', async () => {
  const { check, handed } = recordingCheck();
  await withUpstream(check, {}, async (socket) => {
    // A read before the handshake finds nothing and must not use up the leaf-only read.
    assert.deepEqual(socket.getPeerCertificate(), {});
    await whenSecure(socket, 5000);
    assert.equal(handed.length, 1);
    assert.equal(handed[0]?.subjectaltname, `URI:${SERVER_ID}`);
    assert.equal('issuerCertificate' in (handed[0] as object), false, 'the check was handed the detailed chain');
    // The serial and validity the outbound logs come from the leaf the check read, not a new read.
    assert.equal(upstreamLeaf(socket), handed[0]);
    const detailed = socket.getPeerCertificate(true);
    assert.equal(detailed.subjectaltname, `URI:${SERVER_ID}`);
    assert.equal(detailed.issuerCertificate?.subject.CN, 'ca');
    assert.equal(socket.getPeerCertificate().serialNumber, pki.leaves.server.serial);
  });
});

test('an upstream with another SPIFFE ID is refused before anything the application wrote reaches it', async () => {
  const before = received;
  const refusal = await withUpstream(spiffeServerIdentityCheck(INTRUDER_ID), {}, (socket) => {
    // Written while the handshake is still running: it must be dropped, not sent after it.
    socket.write('secret for the intruder only');
    return whenSecure(socket, 5000).then(
      () => assert.fail('an upstream with the wrong SPIFFE ID was accepted'),
      (err: unknown) => err,
    );
  });
  assert.ok(refusal instanceof PeerIdMismatchError, String(refusal));
  assert.equal(refusal.peer, SERVER_ID);
  assert.equal(received, before);
});

test('a resumed session runs no identity check, and the upstream leaf is then what node reads', async () => {
  const { check, handed } = recordingCheck();
  const session = await withUpstream(check, {}, async (socket) => {
    const ticket = new Promise<Buffer>((resolve) => socket.once('session', resolve));
    await whenSecure(socket, 5000);
    return ticket;
  });
  await withUpstream(check, { session }, async (resumed) => {
    await whenSecure(resumed, 5000);
    assert.equal(resumed.isSessionReused(), true);
    assert.equal(handed.length, 1);
    // node keeps no peer chain on a client's resumed TLS 1.3 session, so this is what node reads.
    assert.deepEqual(upstreamLeaf(resumed), tls.TLSSocket.prototype.getPeerCertificate.call(resumed, false));
  });
});
