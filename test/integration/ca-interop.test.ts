/**
 * Interop with tools nobody here wrote: curl and Python's ssl verify the CA's own serving
 * certificate, and openssl s_server/s_client and curl run mutual TLS with two issued SVIDs.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, createPublicKey } from 'node:crypto';
import { connect } from 'node:net';
import { readFile, rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl } from '../helpers/openssl.js';
import { freePort } from '../helpers/ports.js';

const run = promisify(execFile);

let ca: TestCa;
let ssl: OpenSsl;
let rootPath: string;
/** A second CA whose root must NOT be accepted for the first one's certificates. */
let foreignRootPath: string;

before(async () => {
  ca = await startTestCa();
  const other = await startTestCa();
  foreignRootPath = `${ca.stateDir}/../${other.stateDir.split('/').pop()}-foreign-root.pem`;
  const { writeFile } = await import('node:fs/promises');
  await writeFile(foreignRootPath, other.rootCertPem());
  await other.close();
  ssl = await OpenSsl.create('rampart-interop-');
  rootPath = `${ca.stateDir}/root-cert.pem`;
});

after(async () => {
  if (foreignRootPath) await rm(foreignRootPath, { force: true });
  await ca?.close();
  await ssl?.close();
});

async function curl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('curl', ['-sS', '--max-time', '30', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function issue(ns: string, sa: string): Promise<{ keyPath: string; certPath: string; chainPath: string; leafPem: string }> {
  const k = await ssl.keyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token(ns, sa), body: { csr: k.csrPem } });
  assert.equal(res.status, 200, res.text);
  const [leaf, ...chain] = res.body.certChain as string[];
  return { keyPath: k.keyPath, certPath: await ssl.write(`${sa}.crt`, leaf as string), chainPath: await ssl.write(`${sa}-chain.pem`, chain.join('')), leafPem: leaf as string };
}

test('curl --cacert <state-dir>/root-cert.pem verifies the CA serving certificate for localhost and 127.0.0.1', async () => {
  const port = new URL(ca.apiUrl).port;
  for (const host of ['localhost', '127.0.0.1']) {
    const res = await curl(['--fail-with-body', '--cacert', rootPath, `https://${host}:${port}/v1/trust-bundle`]);
    assert.equal(res.code, 0, `${host}: ${res.stderr}`);
    assert.equal((JSON.parse(res.stdout) as { sequence: number }).sequence, 1);
  }
  // The check can fail: another CA's root does not vouch for this server (curl exit 60).
  const res = await curl(['--cacert', foreignRootPath, `https://localhost:${port}/v1/trust-bundle`]);
  assert.equal(res.code, 60, res.stderr);
});

test('Python ssl verifies the CA serving certificate (host names and the SPIFFE URI SAN)', async (t) => {
  if (spawnSync('python3', ['--version']).status !== 0) {
    t.skip('python3 not installed');
    return;
  }
  const port = new URL(ca.apiUrl).port;
  const script = [
    'import socket, ssl, sys, json',
    'ctx = ssl.create_default_context(cafile=sys.argv[1])',
    'out = []',
    'for host in ("localhost", "127.0.0.1"):',
    '    with socket.create_connection(("127.0.0.1", int(sys.argv[2]))) as s:',
    '        with ctx.wrap_socket(s, server_hostname=host) as tls:',
    '            out.append({"host": host, "version": tls.version(), "san": tls.getpeercert()["subjectAltName"]})',
    'print(json.dumps(out))',
  ].join('\n');
  const { stdout } = await run('python3', ['-c', script, rootPath, port], { timeout: 60_000 });
  const results = JSON.parse(stdout) as Array<{ host: string; version: string; san: Array<[string, string]> }>;
  assert.equal(results.length, 2);
  for (const r of results) {
    assert.match(r.version, /^TLSv1\.[23]$/);
    assert.ok(r.san.some(([k, v]) => k === 'URI' && v === 'spiffe://cluster.local/ns/rampart-system/sa/rampart-ca'), JSON.stringify(r.san));
    assert.ok(r.san.some(([k, v]) => k === 'DNS' && v === 'localhost'));
  }
  // Failing case: a foreign bundle makes Python refuse.
  const foreign = foreignRootPath;
  const bad = await run('python3', ['-c', script, foreign, port], { timeout: 60_000 }).then(
    () => ({ status: 0, stderr: '' }),
    (err: { code?: number; stderr?: string }) => ({ status: err.code ?? -1, stderr: err.stderr ?? '' }),
  );
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /CERTIFICATE_VERIFY_FAILED/);
});

test('mutual TLS between two issued SVIDs: openssl s_server requiring a client cert, openssl s_client and curl as clients', async () => {
  const server = await issue('shop', 'backend');
  const client = await issue('shop', 'frontend');
  const port = await freePort();
  const sServer: ChildProcess = ssl.spawn([
    's_server', '-accept', `127.0.0.1:${port}`, '-www',
    '-cert', server.certPath, '-cert_chain', server.chainPath, '-key', server.keyPath,
    '-CAfile', rootPath, '-Verify', '1', '-verify_return_error',
  ]);
  let serverOut = '';
  sServer.stdout?.on('data', (c: Buffer) => (serverOut += c.toString()));
  sServer.stderr?.on('data', (c: Buffer) => (serverOut += c.toString()));
  try {
    // s_server's stdout is block-buffered in a pipe, so wait for its port to accept instead of reading "ACCEPT".
    let exited = false;
    sServer.on('exit', () => (exited = true));
    for (;;) {
      if (exited) throw new Error(`s_server exited: ${serverOut}`);
      const up = await new Promise<boolean>((resolve) => {
        const sock = connect(port, '127.0.0.1', () => {
          sock.destroy();
          resolve(true);
        });
        sock.on('error', () => resolve(false));
      });
      if (up) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    // openssl s_client verifies the server SVID chain against the bundle and presents the client SVID.
    const sClient = await ssl.run(['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', rootPath, '-verify_return_error', '-cert', client.certPath, '-cert_chain', client.chainPath, '-key', client.keyPath], 'Q\n').catch((err: { stdout?: string; stderr?: string }) => ({ stdout: err.stdout ?? '', stderr: err.stderr ?? '' }));
    assert.match(sClient.stdout, /Verify return code: 0 \(ok\)/, sClient.stderr);

    // curl presents the client SVID; the server's SVID names no host, so curl pins its key instead of checking a name.
    const serverPub = createPublicKey(server.leafPem).export({ format: 'der', type: 'spki' });
    const pin = `sha256//${createHash('sha256').update(serverPub).digest('base64')}`;
    const full = await ssl.write('frontend-with-chain.pem', `${client.leafPem}${await readFile(client.chainPath, 'utf8')}`);
    const ok = await curl(['--fail-with-body', '-k', '--pinnedpubkey', pin, '--cacert', rootPath, '--cert', full, '--key', client.keyPath, `https://127.0.0.1:${port}/`]);
    assert.equal(ok.code, 0, `${ok.stderr}\n${serverOut}`);
    assert.match(ok.stdout, /s_server|Ciphers supported/);

    // Without a client certificate s_server refuses the handshake.
    const noCert = await curl(['-k', '--pinnedpubkey', pin, `https://127.0.0.1:${port}/`]);
    assert.notEqual(noCert.code, 0, 'no client certificate, no connection');
    // A wrong pin makes curl refuse the server.
    const wrongPin = await curl(['-k', '--pinnedpubkey', `sha256//${Buffer.alloc(32).toString('base64')}`, '--cert', full, '--key', client.keyPath, `https://127.0.0.1:${port}/`]);
    assert.equal(wrongPin.code, 90);
  } finally {
    sServer.kill('SIGTERM');
    await new Promise<void>((resolve) => (sServer.exitCode !== null || sServer.signalCode !== null ? resolve() : sServer.once('exit', () => resolve())));
  }
});
