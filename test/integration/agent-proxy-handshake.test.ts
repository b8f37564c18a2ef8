/**
 * Inbound connections that never finish the TLS handshake must be closed when the handshake
 * timeout fires; otherwise every silent TCP client pins a file descriptor forever.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startOutbound, type InboundProxy } from '../../src/agent/proxy/index.js';
import { eventually } from '../helpers/poll.js';
import { SERVER_ID, captureLogs, exchange, makePki, startEchoInbound, type LogCapture, type Pki } from './proxy-support.js';

const HANDSHAKE_MS = 300;

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/** Resolves with when (ms after connect) the server ended or closed a client that never spoke TLS. */
function silentClient(port: number): { socket: net.Socket; closedAfter: Promise<number> } {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const started = Date.now();
  const closedAfter = new Promise<number>((resolve) => {
    socket.on('error', () => {
      // A reset is a close too; 'close' follows.
    });
    // 'end' is the server's FIN (clean close); 'close' covers an RST.
    socket.once('end', () => resolve(Date.now() - started));
    socket.once('close', () => resolve(Date.now() - started));
  });
  return { socket, closedAfter };
}

async function withInbound(tunnel: 'auto' | 'off', fn: (inbound: InboundProxy, logs: LogCapture) => Promise<void>, handshakeMs = HANDSHAKE_MS): Promise<void> {
  const logs = captureLogs();
  const { inbound, close } = await startEchoInbound(pki, logs.logger, { tunnel, timeouts: { handshakeMs } });
  try {
    await fn(inbound, logs);
  } finally {
    await close();
  }
}

for (const tunnel of ['auto', 'off'] as const) {
  test(`inbound closes TCP clients that send nothing once the handshake times out (tunnel ${tunnel})`, async () => {
    await withInbound(tunnel, async (inbound, logs) => {
      const clients = Array.from({ length: 20 }, () => silentClient(inbound.address.port));
      try {
        await eventually('the inbound to accept every silent client', () => inbound.openSockets === clients.length, 5_000, 10);
        // Each must be closed by the server soon after the handshake timeout, while the client
        // itself still holds its end open.
        const waits = await Promise.all(
          clients.map((c) => Promise.race([c.closedAfter, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), HANDSHAKE_MS + 3_000))])),
        );
        for (const ms of waits) {
          assert.ok(ms >= HANDSHAKE_MS - 50, `closed after ${ms} ms, before the handshake timeout`);
          assert.ok(Number.isFinite(ms), 'a silent client was never closed by the inbound');
        }
        // Server side: no socket is left behind, even though our ends were never closed.
        await eventually('the inbound to release every socket', () => inbound.openSockets === 0, 3_000, 10);
        const timeouts = logs.lines.filter((l) => l['result'] === 'tls-error' && String(l['error']).includes('ERR_TLS_HANDSHAKE_TIMEOUT'));
        assert.equal(timeouts.length, clients.length, 'each timeout is logged once');
      } finally {
        for (const c of clients) c.socket.destroy();
      }
    });
  });
}

test('inbound releases a client that closes before the handshake (no CLOSE-WAIT left behind)', async () => {
  await withInbound('auto', async (inbound) => {
    const clients = Array.from({ length: 10 }, () => silentClient(inbound.address.port));
    await eventually('the inbound to accept every client', () => inbound.openSockets === clients.length, 5_000, 10);
    // Half-close only: our FIN reaches the server, which must then close its side.
    for (const c of clients) c.socket.end();
    const waits = await Promise.all(clients.map((c) => Promise.race([c.closedAfter, new Promise<number>((r) => setTimeout(() => r(Number.POSITIVE_INFINITY), HANDSHAKE_MS + 3_000))])));
    assert.ok(waits.every(Number.isFinite), 'every half-closed client was closed by the inbound');
    await eventually('the inbound to release every socket', () => inbound.openSockets === 0, 3_000, 10);
    for (const c of clients) c.socket.destroy();
  });
});

test('a short handshake timeout does not disturb a client that completes the handshake', async () => {
  // The handshake timer must not fire on an established connection that is merely quiet.
  await withInbound('off', async (inbound) => {
    const logs = captureLogs();
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel: 'off' });
    try {
      const s = net.connect({ host: '127.0.0.1', port: outbound.address.port, allowHalfOpen: true });
      s.on('error', () => {});
      await new Promise<void>((r) => s.once('connect', () => r()));
      s.write('a');
      await new Promise((r) => setTimeout(r, HANDSHAKE_MS * 3));
      const reply = await new Promise<string>((resolve) => {
        let data = '';
        s.on('data', (d: Buffer) => (data += d.toString()));
        s.on('end', () => resolve(data));
        s.end('b');
      });
      assert.equal(reply, 'abdone:2');
      assert.equal((await exchange(outbound.address.port, 'x')).toString(), 'xdone:1');
      s.destroy();
    } finally {
      await outbound.close({ drainMs: 0 });
    }
  });
});

/** A TLS client with `leaf`'s certificate that trusts only `caPath`; resolves when it is closed. */
function tlsClient(port: number, leaf: 'client' | 'foreign', caPath: string): Promise<void> {
  return new Promise((resolve) => {
    const { certPath, keyPath } = pki.leaves[leaf];
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(caPath), cert: readFileSync(certPath), key: readFileSync(keyPath), checkServerIdentity: () => undefined });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

test('the inbound logs why a handshake failed: the refused client chain, or a client that refused ours, at once', async () => {
  // A handshake timeout far beyond the wait below: a client's hang-up must not wait for it.
  await withInbound(
    'auto',
    async (inbound, logs) => {
      const failed = (): Array<Record<string, unknown>> => logs.lines.filter((l) => l['result'] === 'tls-error');
      await tlsClient(inbound.address.port, 'foreign', pki.caPath);
      const refused = await eventually('the refused client chain to be logged', () => failed()[0], 10_000);
      assert.match(String(refused['error']), /^client certificate refused: [A-Z_]+$/);
      // This client trusts another root, so it hangs up in the middle of the handshake.
      await tlsClient(inbound.address.port, 'client', pki.foreignCaPath);
      const hungUp = await eventually('the hang-up to be logged', () => failed()[1], 10_000);
      assert.match(String(hungUp['error']), /closed the connection during the TLS handshake/);
      await eventually('the inbound to release every socket', () => inbound.openSockets === 0, 10_000, 10);
    },
    60_000,
  );
});

test('the inbound holds at most 256 unfinished handshakes: a newcomer in a burst is reset, a stalled one makes way for a real client, and the failures past 100 a minute are summed up in one log line (outside QA: 3,000 partial ClientHellos took an agent past 256 Mi, and wrote a line each)', async () => {
  await withInbound('off', async (inbound, logs) => {
    const partial: Array<{ socket: net.Socket; closed: boolean }> = [];
    for (let i = 0; i < 300; i++) {
      const entry = { socket: net.connect({ host: '127.0.0.1', port: inbound.address.port }), closed: false };
      entry.socket.on('error', () => {});
      entry.socket.on('close', () => (entry.closed = true));
      // A TLS record header promising a 512-byte ClientHello, and nothing more.
      entry.socket.on('connect', () => entry.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
      partial.push(entry);
    }
    // None has stalled yet (all are under a second old): the 44 newcomers past the bound go.
    await eventually('the burst past the bound reset', () => partial.filter((p) => p.closed).length === 44, 20_000);
    assert.deepEqual(partial.slice(0, 256).map((p) => p.closed), new Array<boolean>(256).fill(false), 'the first 256 are kept');
    const warned = logs.lines.find((l) => l['event'] === 'inbound-handshakes-dropped');
    assert.equal(warned?.['limit'], 256);
    // Once they have stalled (a second old), a real client takes the oldest one's place.
    await new Promise((r) => setTimeout(r, 1_200));
    const clientLogs = captureLogs();
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: clientLogs.logger, tunnel: 'off' });
    try {
      assert.equal((await exchange(outbound.address.port, 'hello')).toString(), 'hellodone:5');
      assert.ok(partial[0]?.closed, 'the oldest stalled handshake made way');
      assert.ok(inbound.openSockets <= 256, `open sockets ${inbound.openSockets}`);
    } finally {
      await outbound.close({ drainMs: 0 });
      for (const p of partial) p.socket.destroy();
    }
    // Each of the 300 failed its handshake; a hundred a minute are logged one by one, the rest
    // summed up in one line (when the minute ends, or here when the inbound closes).
    await eventually('every flood connection gone', () => inbound.openSockets === 0, 20_000);
    await inbound.close({ drainMs: 0 });
    assert.equal(logs.lines.filter((l) => l['result'] === 'tls-error').length, 100);
    const summary = logs.lines.find((l) => l['event'] === 'handshake-failures-summarized');
    assert.ok(Number(summary?.['suppressed']) >= 190, JSON.stringify(summary));
  }, 60_000);
});
