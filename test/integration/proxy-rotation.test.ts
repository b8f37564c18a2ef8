import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound, startOutbound } from '../../src/agent/proxy/index.js';
import { CLIENT_ID, SERVER_ID, captureLogs, connectAndWaitClose, exchange, makePki, startEchoBackend, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

const norm = (serial: unknown): string => String(serial).toUpperCase().replace(/^0+/, '');

/** A line-oriented client on an open connection: send, then await the echo. */
function lineClient(socket: net.Socket): (text: string) => Promise<string> {
  let buf = '';
  let waiting: ((s: string) => void) | null = null;
  socket.on('data', (d: Buffer) => {
    buf += d.toString();
    if (waiting !== null && buf.includes('\n')) {
      const w = waiting;
      waiting = null;
      const line = buf.slice(0, buf.indexOf('\n'));
      buf = buf.slice(buf.indexOf('\n') + 1);
      w(line);
    }
  });
  return (text) =>
    new Promise((resolve) => {
      waiting = resolve;
      socket.write(`${text}\n`);
    });
}

/** The serial of the server certificate openssl s_client is shown on a new connection. */
async function serialSeenByOpenssl(port: number): Promise<string> {
  const out = await new Promise<string>((resolve) => {
    const p = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', pki.caPath, '-cert', pki.leaves.client.certPath, '-key', pki.leaves.client.keyPath, '-verify_return_error'], { stdio: ['pipe', 'pipe', 'ignore'], timeout: 20_000 });
    let text = '';
    p.stdout.on('data', (d: Buffer) => (text += d.toString()));
    p.on('close', () => resolve(text));
    p.stdin.end();
  });
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(out);
  assert.ok(pem, out);
  return new X509Certificate(pem[0]).serialNumber;
}

test('inbound: new credentials apply to new connections, open ones keep flowing', async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const source = new StaticCredentialSource(pki.creds('server'));
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: source, logger: logs.logger });
  const c = pki.creds('client');
  const open = tls.connect({ host: '127.0.0.1', port: inbound.address.port, key: c.keyPem, cert: c.certChainPem, ca: c.bundlePem, checkServerIdentity: () => undefined });
  try {
    await new Promise<void>((r) => open.once('secureConnect', () => r()));
    const send = lineClient(open);
    assert.equal(await send('before'), 'before');
    assert.equal(norm(open.getPeerCertificate().serialNumber), norm(pki.leaves.server.serial));
    assert.equal(norm(await serialSeenByOpenssl(inbound.address.port)), norm(pki.leaves.server.serial));

    source.update(pki.creds('server2'));

    assert.equal(await send('after'), 'after');
    assert.equal(norm(await serialSeenByOpenssl(inbound.address.port)), norm(pki.leaves.server2.serial));
  } finally {
    open.destroy();
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('outbound tunnel: new credentials go to a new session, the old session drains', async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger });
  const source = new StaticCredentialSource(pki.creds('client'));
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: source, logger: logs.logger });
  const open = net.connect({ host: '127.0.0.1', port: outbound.address.port });
  try {
    const send = lineClient(open);
    assert.equal(await send('first'), 'first');
    source.update(pki.creds('client2'));
    assert.equal(await send('still-open'), 'still-open');

    assert.equal((await exchange(outbound.address.port, 'new')).toString(), 'newdone:3');
    const fresh = await logs.waitFor((l) => l['direction'] === 'inbound' && l['mode'] === 'tunnel' && l['bytesIn'] === 3);
    assert.equal(norm(fresh['peerSerial']), norm(pki.leaves.client2.serial));
    assert.equal(outbound.tunnelSessions, 2);

    // Ending the last stream of the old generation closes its session.
    open.end();
    const closed = await logs.waitFor((l) => l['mode'] === 'tunnel-session' && l['direction'] === 'inbound');
    assert.equal(norm(closed['peerSerial']), norm(pki.leaves.client.serial));
    assert.equal(closed['result'], 'ok');
  } finally {
    open.destroy();
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

test('no or expired credentials: both sides refuse new connections and say why', async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  const inSource = new StaticCredentialSource(null);
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: inSource, logger: logs.logger });
  const outSource = new StaticCredentialSource(pki.creds('client', Date.now() - 1000));
  const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: outSource, logger: logs.logger });
  try {
    assert.equal((await connectAndWaitClose(outbound.address.port, 'x')).data, '');
    await logs.waitFor((l) => l['msg'] === 'outbound certificate expired; refusing connections');
    await logs.waitFor((l) => l['direction'] === 'outbound' && l['result'] === 'no-credentials');

    outSource.update(pki.creds('client'));
    assert.equal((await connectAndWaitClose(outbound.address.port, 'x')).data, '');
    await logs.waitFor((l) => l['msg'] === 'inbound has no certificate yet; refusing connections');
    await logs.waitFor((l) => l['direction'] === 'inbound' && l['result'] === 'no-credentials');

    inSource.update(pki.creds('server', Date.now() - 1000));
    assert.equal((await connectAndWaitClose(outbound.address.port, 'x')).data, '');
    await logs.waitFor((l) => l['msg'] === 'inbound certificate expired; refusing connections');

    inSource.update(pki.creds('server'));
    assert.equal((await exchange(outbound.address.port, 'ok')).toString(), 'okdone:2');
  } finally {
    await outbound.close({ drainMs: 0 });
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});

for (const tunnel of ['auto', 'off'] as const) {
  test(`close() stops accepting and lets open connections finish (tunnel ${tunnel})`, async () => {
    const logs = captureLogs();
    const backend = await startEchoBackend();
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel });
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel });
    const open = net.connect({ host: '127.0.0.1', port: outbound.address.port, allowHalfOpen: true });
    try {
      const send = lineClient(open);
      assert.equal(await send('one'), 'one');
      let inboundClosed = false;
      const closing = inbound.close({ drainMs: 60_000 }).then(() => (inboundClosed = true));

      const refused = await new Promise<string>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port: inbound.address.port, rejectUnauthorized: false });
        s.on('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
        s.on('secureConnect', () => resolve('connected'));
      });
      assert.equal(refused, 'ECONNREFUSED');

      assert.equal(await send('two'), 'two');
      assert.equal(inboundClosed, false);
      const ended = new Promise<string>((resolve) => {
        let rest = '';
        open.on('data', (d: Buffer) => (rest += d.toString()));
        open.on('end', () => resolve(rest));
      });
      open.end();
      assert.equal(await ended, 'done:8');
      await closing;
      assert.equal(inbound.activeConnections, 0);

    } finally {
      open.destroy();
      await outbound.close({ drainMs: 0 });
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });

  test(`close() cuts connections still open when the drain period ends (tunnel ${tunnel})`, async () => {
    const logs = captureLogs();
    const backend = await startEchoBackend();
    const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, tunnel });
    const outbound = await startOutbound({ listen: { host: '127.0.0.1', port: 0 }, upstream: { host: '127.0.0.1', port: inbound.address.port }, expectedId: SERVER_ID, credentials: new StaticCredentialSource(pki.creds('client')), logger: logs.logger, tunnel });
    const straggler = net.connect({ host: '127.0.0.1', port: outbound.address.port });
    straggler.on('error', () => {});
    try {
      assert.equal(await lineClient(straggler)('x'), 'x');
      const gone = new Promise<void>((r) => straggler.once('close', () => r()));
      await inbound.close({ drainMs: 1 });
      await gone;
      assert.equal(inbound.activeConnections, 0);
      const line = await logs.waitFor((l) => l['direction'] === 'inbound' && l['bytesIn'] === 2);
      assert.equal(line['result'], 'shutdown');
    } finally {
      straggler.destroy();
      await outbound.close({ drainMs: 0 });
      await inbound.close({ drainMs: 0 });
      await backend.close();
    }
  });
}

/** A CONNECT stream on a raw HTTP/2 tunnel session: its status, and a line echo once it is 200. */
function connectStream(session: http2.ClientHttp2Session): Promise<{ status: number; send: (text: string) => Promise<string>; stream: http2.ClientHttp2Stream }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'CONNECT', ':authority': 'backend:1' }, { endStream: false });
    stream.on('error', reject);
    stream.once('response', (headers) => {
      let buf = '';
      const waiting: ((s: string) => void)[] = [];
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        while (buf.includes('\n') && waiting.length > 0) {
          const line = buf.slice(0, buf.indexOf('\n'));
          buf = buf.slice(buf.indexOf('\n') + 1);
          (waiting.shift() as (s: string) => void)(line);
        }
      });
      resolve({
        status: Number(headers[':status']),
        stream,
        send: (text) =>
          new Promise((r) => {
            waiting.push(r);
            stream.write(`${text}\n`);
          }),
      });
    });
  });
}

test('inbound tunnel: a session whose peer chain loses its root from the bundle (forced retire) takes no new streams; open ones finish (outside QA HIGH-2)', { timeout: 30_000 }, async () => {
  const logs = captureLogs();
  const backend = await startEchoBackend();
  let backendConnections = 0;
  backend.server.on('connection', () => backendConnections++);
  const caPem = readFileSync(pki.caPath, 'utf8');
  const otherRootPem = readFileSync(pki.foreignCaPath, 'utf8');
  const serverCreds = pki.creds('server');
  const source = new StaticCredentialSource(serverCreds);
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: backend.port }, allow: [CLIENT_ID], credentials: source, logger: logs.logger });
  // A tunnel client built on node's own http2 and tls, not on Rampart's outbound, so the test
  // sees exactly what the inbound answers.
  const c = pki.creds('client');
  const session = http2.connect(`https://127.0.0.1:${inbound.address.port}`, {
    createConnection: () => tls.connect({ host: '127.0.0.1', port: inbound.address.port, ALPNProtocols: ['rampart-tunnel'], key: c.keyPem, cert: c.certChainPem, ca: c.bundlePem, checkServerIdentity: () => undefined }),
  });
  session.on('error', () => {});
  let goaway = false;
  session.on('goaway', () => (goaway = true));
  try {
    const first = await connectStream(session);
    assert.equal(first.status, 200);
    assert.equal(await first.send('one'), 'one');

    // A second root joins: the peer's root is still there, nothing changes.
    source.update({ ...serverCreds, bundlePem: caPem + otherRootPem });
    const second = await connectStream(session);
    assert.equal(second.status, 200);
    assert.equal(await second.send('two'), 'two');
    assert.equal(goaway, false);

    // The peer's root is removed: the session may not open anything more.
    source.update({ ...serverCreds, bundlePem: otherRootPem });
    const refused = await logs.waitFor((l) => /no longer chains to a root/.test(String(l['msg'])));
    assert.equal(refused['peer'], CLIENT_ID);
    const third = await connectStream(session).catch((err: Error) => err);
    // Either a 403 carrying the reason, or the stream refused outright after the GOAWAY.
    if (!(third instanceof Error)) assert.equal(third.status, 403);
    assert.equal(backendConnections, 2, 'the refused stream must not reach the backend');
    // Streams already open keep flowing, as plain mTLS connections of that peer do.
    assert.equal(await first.send('still'), 'still');
    await new Promise<void>((r) => setImmediate(r));
    assert.equal(goaway, true);
  } finally {
    session.destroy();
    await inbound.close({ drainMs: 0 });
    await backend.close();
  }
});
