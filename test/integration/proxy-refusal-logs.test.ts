import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound } from '../../src/agent/proxy/index.js';
import { NO_CLIENT_CERTIFICATE } from '../../src/agent/proxy/inbound.js';
import { eventually } from '../helpers/poll.js';
import { CLIENT_ID, INTRUDER_ID, SERVER_ID, captureLogs, makePki, startEchoBackend, type LogCapture, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

async function inboundFor(logs: LogCapture, handshakeMs = 10_000) {
  const backend = await startEchoBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, timeouts: { handshakeMs } });
  return {
    port: inbound.address.port,
    inbound,
    async close() {
      await inbound.close({ drainMs: 0 });
      await backend.close();
    },
  };
}

/** A TLS client that waits for the connection to close, whatever happens. */
function tlsAttempt(options: tls.ConnectionOptions): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', checkServerIdentity: () => undefined, ...options });
    s.on('error', () => {});
    // Reading, as any client does, so the server's close is seen (a refused tunnel peer is closed
    // only after its first CONNECT is answered, or a few seconds).
    s.resume();
    s.on('close', () => resolve());
  });
}

const failedHandshake = (l: Record<string, unknown>) => l['result'] === 'tls-error';

test('a client that sends no certificate is logged as such, not as a broken chain (outside QA)', async () => {
  const logs = captureLogs();
  const p = await inboundFor(logs);
  try {
    await tlsAttempt({ port: p.port, ca: pki.creds('client').bundlePem });
    const line = await logs.waitFor(failedHandshake);
    assert.equal(line['error'], NO_CLIENT_CERTIFICATE);
    // A chain that is sent but fails still names OpenSSL's reason.
    const foreign = pki.creds('foreign');
    await tlsAttempt({ port: p.port, key: foreign.keyPem, cert: foreign.certChainPem, ca: pki.creds('client').bundlePem });
    const second = await eventually('the second refusal', () => logs.lines.filter(failedHandshake)[1]);
    assert.match(String(second['error']), /^client certificate refused: [A-Z_]+$/);
  } finally {
    await p.close();
  }
});

test('a handshake refused for a client certificate from another CA is logged with the remote address', async () => {
  const logs = captureLogs();
  const p = await inboundFor(logs);
  try {
    const foreign = pki.creds('foreign');
    await tlsAttempt({ port: p.port, key: foreign.keyPem, cert: foreign.certChainPem, ca: pki.creds('client').bundlePem });
    const line = await logs.waitFor(failedHandshake);
    assert.match(String(line['error']), /client certificate refused|certificate/);
    assert.equal(line['remote'], '127.0.0.1');
  } finally {
    await p.close();
  }
});

test('a client that hangs up during the handshake, and one that never speaks TLS, are logged with the remote address', async () => {
  const logs = captureLogs();
  const p = await inboundFor(logs, 300);
  try {
    const hangUp = net.connect({ host: '127.0.0.1', port: p.port });
    hangUp.on('error', () => {});
    await new Promise((r) => hangUp.once('connect', r));
    await eventually('the inbound to accept the connection', () => p.inbound.openSockets === 1, 10_000);
    hangUp.destroy();
    const reset = await logs.waitFor(failedHandshake);
    assert.match(String(reset['error']), /closed the connection during the TLS handshake/);
    assert.equal(reset['remote'], '127.0.0.1');

    const silent = net.connect({ host: '127.0.0.1', port: p.port });
    silent.on('error', () => {});
    await new Promise((r) => silent.once('close', r));
    const timedOut = await logs.waitFor((l) => failedHandshake(l) && l !== reset);
    assert.equal(timedOut['remote'], '127.0.0.1');
  } finally {
    await p.close();
  }
});

test('a tunnel (ALPN rampart-tunnel) connection from a SPIFFE ID not allowed is logged as a denied tunnel', async () => {
  const logs = captureLogs();
  const p = await inboundFor(logs);
  try {
    const intruder = pki.creds('intruder');
    await tlsAttempt({ port: p.port, key: intruder.keyPem, cert: intruder.certChainPem, ca: intruder.bundlePem, ALPNProtocols: ['rampart-tunnel'] });
    const denied = await logs.waitFor((l) => l['result'] === 'denied');
    assert.equal(denied['peer'], INTRUDER_ID);
    assert.equal(denied['mode'], 'tunnel');
  } finally {
    await p.close();
  }
});

test('an agent whose SPIFFE ID the inbound does not allow logs its tunnelled connection as refused, with the reason, not as a reset (outside QA)', async () => {
  const logs = captureLogs();
  const p = await inboundFor(logs);
  const callerLogs = captureLogs();
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: p.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('intruder')), logger: callerLogs.logger });
  try {
    const app = net.connect({ host: '127.0.0.1', port: outbound.address.port });
    app.on('error', () => {});
    app.write('hello');
    await new Promise<void>((resolve) => app.once('close', () => resolve()));
    const line = await callerLogs.waitFor((l) => l['direction'] === 'outbound' && l['result'] !== undefined && l['mode'] === 'tunnel');
    assert.equal(line['result'], 'refused');
    assert.match(String(line['error']), /the upstream answered the tunnel CONNECT with status 403: peer SPIFFE ID is not in the allow list/);
    const denied = await logs.waitFor((l) => l['result'] === 'denied');
    assert.equal(denied['peer'], INTRUDER_ID);
    assert.equal(logs.lines.filter((l) => l['result'] === 'denied').length, 1, 'the inbound logs the refusal once');
  } finally {
    await outbound.close({ drainMs: 0 });
    await p.close();
  }
});
