/**
 * A shutdown waits for every relay to finish, not only for the accepted sockets to close: the
 * client's connection can be gone while the backend's is still closing, and the relay's
 * 'connection closed' line must come before the caller's own last line.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound } from '../../src/agent/proxy/index.js';
import { captureLogs, CLIENT_ID, makePki, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/** A backend that answers, ends its side at once, and closes only 300 ms after the proxy's end. */
async function slowClosingBackend(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
    s.end('answer');
    s.resume();
    s.once('end', () => setTimeout(() => s.destroy(), 300));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

test('inbound close() resolves only after a relay whose backend is still closing has finished and logged', async () => {
  const logs = captureLogs();
  const backend = await slowClosingBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel: 'off' });
  try {
    const client = pki.creds('client');
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: inbound.address.port, key: client.keyPem, cert: client.certChainPem, ca: client.bundlePem, checkServerIdentity: () => undefined }, () => socket.end('question'));
      let got = '';
      socket.on('data', (d: Buffer) => (got += d.toString()));
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
    });
    assert.equal(answer, 'answer');
    // The client is gone; the backend holds its side for another 300 ms.
    await inbound.close({ drainMs: 5_000 });
    const closed = logs.lines.find((l) => l['direction'] === 'inbound' && l['msg'] === 'connection closed');
    assert.ok(closed !== undefined, 'close() resolved before the relay finished and logged its connection');
    assert.equal(closed['result'], 'ok');
  } finally {
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});
