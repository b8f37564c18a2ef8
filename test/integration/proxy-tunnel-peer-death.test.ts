import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { StaticCredentialSource } from '../../src/agent/credentials.js';
import { startInbound } from '../../src/agent/proxy/index.js';
import { eventually } from '../helpers/poll.js';
import { CLIENT_ID, captureLogs, makePki, type Pki } from './proxy-support.js';

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => pki.cleanup());

/**
 * A tunnel client in its own process: opens STREAMS CONNECT streams, waits for each echo,
 * prints "ready" and then waits to be killed.
 */
const CLIENT = `
const http2 = require('node:http2'), tls = require('node:tls'), fs = require('node:fs');
const e = process.env;
const socket = tls.connect({ host: '127.0.0.1', port: Number(e.PORT), key: fs.readFileSync(e.KEY), cert: fs.readFileSync(e.CERT), ca: fs.readFileSync(e.CA), ALPNProtocols: ['rampart-tunnel'], checkServerIdentity: () => undefined });
const session = http2.connect('https://tunnel', { createConnection: () => socket });
session.on('error', () => {});
let echoed = 0;
for (let i = 0; i < Number(e.STREAMS); i++) {
  const st = session.request({ ':method': 'CONNECT', ':authority': 'backend:1' }, { endStream: false });
  st.on('error', () => {});
  st.once('data', () => { if (++echoed === Number(e.STREAMS)) process.stdout.write('ready\\n'); });
  st.write('x');
}
`;

test('tunnel: a peer process that dies releases its session, socket and backend connections', async () => {
  const logs = captureLogs();
  let open = 0;
  const backendSockets = new Set<net.Socket>();
  const backend = net.createServer({ allowHalfOpen: true }, (s) => {
    open++;
    backendSockets.add(s);
    s.on('error', () => {});
    s.on('close', () => {
      open--;
      backendSockets.delete(s);
    });
    s.pipe(s);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  // PINGs would find the dead peer after their timeout; this test is about the FIN it sent.
  const inbound = await startInbound({ listen: { host: '127.0.0.1', port: 0 }, backend: { host: '127.0.0.1', port: (backend.address() as net.AddressInfo).port }, allow: [CLIENT_ID], credentials: new StaticCredentialSource(pki.creds('server')), logger: logs.logger, timeouts: { tunnelPingMs: 3_600_000 } });
  const streams = 20;
  const child = spawn(process.execPath, ['-e', CLIENT], {
    env: { PORT: String(inbound.address.port), KEY: pki.leaves.client.keyPath, CERT: pki.leaves.client.certPath, CA: pki.caPath, STREAMS: String(streams) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`tunnel client exited early (${String(code)})`)));
    });
    assert.equal(open, streams);
    child.kill('SIGKILL');

    const closed = await Promise.race([
      logs.waitFor((l) => l['direction'] === 'inbound' && l['msg'] === 'tunnel session closed'),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 15_000).unref()),
    ]);
    assert.ok(closed, 'the inbound never noticed that its tunnel peer died');
    assert.equal(closed['peer'], CLIENT_ID);
    assert.equal(closed['streams'], streams);
    await eventually('the backend connections of the dead peer to close', () => open === 0, 15_000);
    await eventually('the inbound to release the dead peer socket', () => inbound.openSockets === 0, 15_000);
    assert.equal(inbound.activeConnections, 0);
  } finally {
    child.kill('SIGKILL');
    await inbound.close({ drainMs: 0 });
    for (const s of backendSockets) s.destroy();
    await new Promise<void>((r) => backend.close(() => r()));
  }
});
