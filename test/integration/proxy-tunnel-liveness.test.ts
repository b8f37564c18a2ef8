import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound, type ProxyTimeouts } from '../../src/agent/proxy/index.js';
import { CLIENT_ID, SERVER_ID, captureLogs, connectAndWaitClose, exchange, makePki, startEchoBackend, startFreezableForwarder, type LogCapture, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/** outbound -> forwarder (can black-hole its connections) -> inbound -> echo backend. */
async function chain(logs: LogCapture, timeouts: ProxyTimeouts) {
  const backend = await startEchoBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, timeouts });
  const forwarder = await startFreezableForwarder(inbound.address.port);
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: forwarder.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, timeouts });
  return {
    outbound,
    forwarder,
    async close() {
      await outbound.close({ drainMs: 0 });
      await inbound.close({ drainMs: 0 });
      await forwarder.close();
      await backend.close();
    },
  };
}

const sessionClosed = (direction: string) => (l: Record<string, unknown>) => l['direction'] === direction && l['mode'] === 'tunnel-session' && l['msg'] === 'tunnel session closed';

test('a tunnel session whose peer went silent is dropped when a new stream gets no answer', async () => {
  const logs = captureLogs();
  // No periodic PINGs in this test: only the stalled stream can reveal the dead peer.
  const c = await chain(logs, { connectMs: 300, tunnelPingMs: 3_600_000 });
  try {
    assert.equal((await exchange(c.outbound.address.port, 'one')).toString(), 'onedone:3');
    assert.equal(c.outbound.tunnelSessions, 1);
    c.forwarder.freeze();

    // This connection rides the dead session: it must be reset, not left hanging for the hour
    // of the idle timeout.
    const stalled = await connectAndWaitClose(c.outbound.address.port, 'two');
    assert.equal(stalled.data, '');
    const closed = await logs.waitFor(sessionClosed('outbound'));
    assert.equal(closed['result'], 'error');
    assert.match(String(closed['error']), /did not answer an HTTP\/2 PING within 300 ms/);
    assert.equal(c.outbound.tunnelSessions, 0);

    // The next connection gets a fresh session through the (still working) path.
    assert.equal((await exchange(c.outbound.address.port, 'three')).toString(), 'threedone:5');
    assert.equal(c.outbound.tunnelSessions, 1);
  } finally {
    await c.close();
  }
});

test('idle tunnel sessions are PINGed: live ones stay, silent ones are dropped on both sides', async () => {
  const logs = captureLogs();
  const c = await chain(logs, { connectMs: 300, tunnelPingMs: 50 });
  try {
    assert.equal((await exchange(c.outbound.address.port, 'one')).toString(), 'onedone:3');
    // Many PING rounds on a healthy path leave the session alone.
    await sleep(600);
    assert.equal(c.outbound.tunnelSessions, 1);
    assert.equal(logs.lines.some(sessionClosed('outbound')), false);
    assert.equal(logs.lines.some(sessionClosed('inbound')), false);

    // With no application traffic at all, a silent peer is noticed by each side's PINGs.
    c.forwarder.freeze();
    const outboundClosed = await logs.waitFor(sessionClosed('outbound'));
    assert.match(String(outboundClosed['error']), /did not answer an HTTP\/2 PING/);
    const inboundClosed = await logs.waitFor(sessionClosed('inbound'));
    assert.match(String(inboundClosed['error']), /did not answer an HTTP\/2 PING/);
    assert.equal(inboundClosed['peer'], CLIENT_ID);
    assert.equal(c.outbound.tunnelSessions, 0);

    assert.equal((await exchange(c.outbound.address.port, 'two')).toString(), 'twodone:3');
  } finally {
    await c.close();
  }
});

test('a tunnel PING interval that is not a positive number is refused with a coded error', async () => {
  const logs = captureLogs();
  await assert.rejects(
    startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: 1 }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, timeouts: { tunnelPingMs: 0 } }),
    { code: 'RAMPART_ERR_CONFIG_INVALID', message: /tunnelPingMs/ },
  );
});
