/**
 * What the outbound records about a connection: who actually answered upstream (not merely
 * who was expected), and a refusal, not "ok", when the remote inbound turned the tunnel away.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { eventually } from '../helpers/poll.js';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound, type InboundProxy, type OutboundProxy } from '../../src/agent/proxy/index.js';
import { CLIENT_ID, INTRUDER_ID, SERVER_ID, captureLogs, connectAndWaitClose, exchange, makePki, startEchoBackend, type LogCapture, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

type Leaf = 'server' | 'client' | 'intruder';

/** Runs `fn` against outbound(as `client`) -> inbound(as `server`, allowing CLIENT_ID) -> echo backend. */
async function withPair(tunnel: 'auto' | 'off', server: Leaf, client: Leaf, fn: (outbound: OutboundProxy, inbound: InboundProxy, logs: LogCapture) => Promise<void>): Promise<void> {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds(server)), logger: logs.logger, tunnel });
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds(client)), logger: logs.logger, tunnel });
  try {
    await fn(outbound, inbound, logs);
  } finally {
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
}

const outboundConn = (l: Record<string, unknown>): boolean => l['direction'] === 'outbound' && (l['mode'] === 'mtls' || l['mode'] === 'tunnel');

for (const tunnel of ['off', 'auto'] as const) {
  test(`an upstream with the wrong SPIFFE ID is logged under the ID it presented (tunnel ${tunnel})`, async () => {
    await withPair(tunnel, 'intruder', 'client', async (outbound, _inbound, logs) => {
      const res = await connectAndWaitClose(outbound.address.port, 'secret');
      assert.equal(res.data, '');
      const line = await logs.waitFor(outboundConn);
      assert.equal(line['result'], 'upstream-id-mismatch');
      assert.equal(line['peer'], INTRUDER_ID, 'peer is who answered');
      assert.equal(line['expectedPeer'], SERVER_ID);
      // Product error codes are RAMPART_ERR_*.
      assert.match(String(line['error']), /^RAMPART_ERR_PEER_ID_MISMATCH: /);
    });
  });

  test(`a good upstream is logged with its own ID and the expected one (tunnel ${tunnel})`, async () => {
    await withPair(tunnel, 'server', 'client', async (outbound, _inbound, logs) => {
      assert.equal((await exchange(outbound.address.port, 'hi')).toString(), 'hidone:2');
      const line = await logs.waitFor(outboundConn);
      assert.equal(line['result'], 'ok');
      assert.equal(line['peer'], SERVER_ID);
      assert.equal(line['expectedPeer'], SERVER_ID);
      assert.ok(line['peerSerial']);
    });
  });
}

test('no certificate yet: the refusal names no peer, only the expected one', async () => {
  const logs = captureLogs();
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 1 }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(null), logger: logs.logger });
  try {
    await connectAndWaitClose(outbound.address.port, 'x');
    const line = await logs.waitFor(outboundConn);
    assert.equal(line['result'], 'no-credentials');
    assert.equal(line['peer'], undefined);
    assert.equal(line['expectedPeer'], SERVER_ID);
  } finally {
    await outbound.close({ drainMs: 0 });
  }
});

test('a tunnelled connection the inbound does not allow is logged as refused and reset, not "ok"', async () => {
  // The intruder's chain is valid, so the TLS session comes up; the inbound then answers its
  // CONNECT streams 403 with the reason, for its SPIFFE ID.
  await withPair('auto', 'server', 'intruder', async (outbound, _inbound, logs) => {
    // The application half-closes at once (request sent), then waits for the answer.
    const viaExchange = await exchange(outbound.address.port, 'hello').then(
      (b) => `answered ${JSON.stringify(b.toString())}`,
      (e: NodeJS.ErrnoException) => `error ${e.code ?? e.message}`,
    );
    // And one that keeps its side open.
    const viaWait = await connectAndWaitClose(outbound.address.port, 'hello');
    assert.equal(viaExchange, 'error ECONNRESET', 'the application sees a reset, not a clean empty close');
    assert.deepEqual(viaWait, { data: '', error: 'ECONNRESET' });
    await eventually('both connections to be logged', () => logs.lines.filter(outboundConn).length === 2);
    const lines = logs.lines.filter(outboundConn);
    for (const line of lines) {
      assert.equal(line['mode'], 'tunnel');
      assert.equal(line['result'], 'refused', JSON.stringify(line));
      assert.equal(line['bytesOut'], 0);
      assert.match(String(line['error']), /the upstream answered the tunnel CONNECT with status 403: peer SPIFFE ID is not in the allow list/);
    }
    assert.equal(logs.lines.filter((l) => l['direction'] === 'inbound' && l['result'] === 'denied').length, 2);
  });
});
