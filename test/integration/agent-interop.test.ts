import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { startTestAgent, type TestAgent } from './agent-support.js';
import { makePki, runTool, type Pki } from './proxy-support.js';

const CLIENT = 'spiffe://cluster.local/ns/a/sa/client';
const SERVER = 'spiffe://cluster.local/ns/b/sa/server';

let ca: TestCa;
let pki: Pki;
let greeter: net.Server;
let server: TestAgent;
let client: TestAgent;
let intruder: TestAgent;


/** openssl s_client against the server agent's inbound, trusting the client agent's root-cert.pem. */
function sClient(cert: { certPath: string; keyPath: string } | null): Promise<{ out: string; code: number | null }> {
  const args = ['s_client', '-connect', `127.0.0.1:${server.agent.inbound[0]?.address.port}`, '-CAfile', join(client.outDir, 'root-cert.pem'), '-verify_return_error', '-ign_eof'];
  // -cert sends only the first certificate; -cert_chain adds the intermediate the peer needs.
  if (cert) args.push('-cert', cert.certPath, '-cert_chain', cert.certPath, '-key', cert.keyPath);
  return runTool('openssl', args, 'ping\n');
}

const files = (a: TestAgent): { certPath: string; keyPath: string } => ({ certPath: join(a.outDir, 'cert-chain.pem'), keyPath: join(a.outDir, 'key.pem') });

before(async () => {
  ca = await startTestCa();
  pki = makePki();
  // Answers the first chunk and closes, so command-line TLS clients terminate on their own.
  greeter = net.createServer((s) => {
    s.on('error', () => {});
    s.once('data', (d: Buffer) => s.end(`echo:${d.toString().trim()}\n`));
  });
  await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
  server = await startTestAgent(ca, 'b', 'server', { ttl: '1h', inbound: [`127.0.0.1:0=127.0.0.1:${(greeter.address() as net.AddressInfo).port}`], allow: [CLIENT], tunnel: 'off' });
  client = await startTestAgent(ca, 'a', 'client', { ttl: '1h' });
  intruder = await startTestAgent(ca, 'c', 'intruder', { ttl: '1h' });
});

after(async () => {
  await Promise.all([server?.close(), client?.close(), intruder?.close()]);
  await new Promise<void>((r) => (greeter ? greeter.close(() => r()) : r()));
  pki?.cleanup();
  await ca?.close();
});

test('openssl s_client with the cert/key the agent wrote is admitted by another agent\'s inbound', async () => {
  const { out } = await sClient(files(client));
  assert.match(out, /echo:ping/);
  assert.match(out, /Verify return code: 0 \(ok\)/);
  assert.match(out, /TLSv1\.3/);
  await server.logs.waitFor((l) => l['peer'] === CLIENT && l['result'] === 'ok');
});

test('refused: no client certificate, an identity not allowed, a certificate from another trust domain', async () => {
  const none = await sClient(null);
  assert.doesNotMatch(none.out, /echo:/);
  const other = await sClient(files(intruder));
  assert.doesNotMatch(other.out, /echo:/);
  const denied = await server.logs.waitFor((l) => l['peer'] === 'spiffe://cluster.local/ns/c/sa/intruder');
  assert.equal(denied['result'], 'denied');
  // A leaf from a separate openssl-made CA for trust domain other.local.
  const foreign = await sClient(pki.leaves.foreign);
  assert.doesNotMatch(foreign.out, /echo:/);
  assert.equal(server.logs.lines.some((l) => l['peer'] === pki.leaves.foreign.id), false, 'never authenticated');
  assert.ok(server.logs.lines.filter((l) => l['result'] === 'tls-error').length >= 2, 'both handshakes failed');
});

const hasPython = spawnSync('python3', ['-c', 'import ssl'], { stdio: 'ignore' }).status === 0;
test('python3 ssl agrees: admitted with the agent-written SVID, refused with the intruder\'s', { skip: !hasPython && 'python3 with ssl not installed' }, async () => {
  const script = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False  # SPIFFE: the identity is the URI SAN, printed below
ctx.load_verify_locations(sys.argv[2])
ctx.load_cert_chain(sys.argv[3], sys.argv[4])
try:
    with socket.create_connection(('127.0.0.1', int(sys.argv[1]))) as raw:
        with ctx.wrap_socket(raw) as s:
            print('san', [v for k, v in s.getpeercert()['subjectAltName'] if k == 'URI'])
            s.sendall(b'py\\n')
            data = b''
            while True:
                chunk = s.recv(4096)
                if not chunk: break
                data += chunk
            print('got', data.decode().strip())
except (ssl.SSLError, ConnectionError) as e:
    print('refused', type(e).__name__)
`;
  const port = String(server.agent.inbound[0]?.address.port);
  const root = join(client.outDir, 'root-cert.pem');
  const ok = await runTool('python3', ['-c', script, port, root, files(client).certPath, files(client).keyPath], '');
  assert.equal(ok.code, 0, ok.out);
  assert.match(ok.out, new RegExp(`san \\['${SERVER}'\\]`));
  assert.match(ok.out, /got echo:py/);
  const bad = await runTool('python3', ['-c', script, port, root, files(intruder).certPath, files(intruder).keyPath], '');
  assert.doesNotMatch(bad.out, /got echo/);
});
