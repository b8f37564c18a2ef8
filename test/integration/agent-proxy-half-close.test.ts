/**
 * An application that half-closes (shutdown SHUT_WR) right after connecting, before the
 * outbound's upstream TLS connection or tunnel stream is ready, must still have that end
 * delivered: a backend that reads to EOF before answering would otherwise wait forever.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound } from '../../src/agent/proxy/index.js';
import { CLIENT_ID, SERVER_ID, captureLogs, makePki, startEchoBackend, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/**
 * Connects and, the moment TCP is up, sends `payload` (possibly nothing) and half-closes; resolves
 * with everything received until the peer ends, or with a marker if that takes over `ms`.
 */
function shutdownAtOnce(port: number, payload: string, ms = 4_000): Promise<string> {
  return new Promise((resolve) => {
    let data = '';
    const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => s.end(payload));
    const timer = setTimeout(() => {
      s.destroy();
      resolve(`timed out after ${ms} ms with ${JSON.stringify(data)}`);
    }, ms);
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', (e: NodeJS.ErrnoException) => (data += `<${e.code ?? e.message}>`));
    s.on('end', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(data);
    });
  });
}

for (const tunnel of ['off', 'auto'] as const) {
  test(`a half-close with no data sent before the upstream is ready reaches the backend (tunnel ${tunnel})`, async () => {
    const backend = await startEchoBackend();
    const logs = captureLogs();
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel });
    try {
      // Fresh outbounds, so in tunnel mode every first connection waits for the pool to open a
      // session and in plain mode every one races its own handshake.
      for (let round = 0; round < 3; round++) {
        const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel });
        try {
          // Several at once on the cold outbound: all of them wait for the same first session.
          const cold = await Promise.all([shutdownAtOnce(outbound.address.port, ''), shutdownAtOnce(outbound.address.port, ''), shutdownAtOnce(outbound.address.port, 'hi')]);
          assert.deepEqual(cold, ['done:0', 'done:0', 'hidone:2'], `round ${round}`);
          // And once more once the upstream is warm (pooled session, or resumable nothing).
          assert.equal(await shutdownAtOnce(outbound.address.port, ''), 'done:0');
          assert.equal(outbound.tunnelSessions, tunnel === 'auto' ? 1 : 0);
        } finally {
          await outbound.close({ drainMs: 0 });
        }
      }
      const outboundLines = logs.lines.filter((l) => l['direction'] === 'outbound' && l['mode'] !== 'tunnel-session');
      assert.equal(outboundLines.length, 12);
      for (const l of outboundLines) assert.equal(l['result'], 'ok', JSON.stringify(l));
    } finally {
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });
}
