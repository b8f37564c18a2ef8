/**
 * Renewal with an SVID (DESIGN section 5, `svid` authenticator): a workload that holds a valid
 * certificate presents it as the TLS client certificate, with no token, and gets the same identity.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import https from 'node:https';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { startTestCa, type TestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { OpenSsl, tls12RenegotiationAttempt } from '../helpers/openssl.js';

const run = promisify(execFile);
const ID = 'spiffe://cluster.local/ns/shop/sa/cart';

let ca: TestCa;
let ssl: OpenSsl;
let svid: { keyPem: string; keyPath: string; chainPem: string };

before(async () => {
  ca = await startTestCa();
  ssl = await OpenSsl.create('rampart-renewal-');
  const first = await ssl.keyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await ca.token('shop', 'cart'), body: { csr: first.csrPem } });
  assert.equal(res.status, 200, res.text);
  svid = { keyPem: first.keyPem, keyPath: first.keyPath, chainPem: (res.body.certChain as string[]).join('') };
});

after(async () => {
  await ca?.close();
  await ssl?.close();
});

const lastIssued = (): Record<string, unknown> => {
  const line = [...ca.logLines].reverse().find((l) => l.includes('"msg":"certificate issued"'));
  assert.ok(line);
  return JSON.parse(line) as Record<string, unknown>;
};

test('node https: the SVID as client certificate and no token renews the same identity', async () => {
  const next = await ssl.keyAndCsr();
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: svid.chainPem, key: svid.keyPem, body: { csr: next.csrPem } });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.body.spiffeId, ID);
  assert.equal(lastIssued()['authenticator'], 'svid');
  assert.equal(lastIssued()['spiffeId'], ID);
  // The renewed certificate is for the new key, and itself renews again.
  const again = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: (res.body.certChain as string[]).join(''), key: next.keyPem, body: { csr: (await ssl.keyAndCsr()).csrPem } });
  assert.equal(again.status, 200, again.text);
  assert.equal(again.body.spiffeId, ID);
});

test('curl --cert --key: the same renewal from a client nobody here wrote', async () => {
  const next = await ssl.keyAndCsr();
  const chainPath = await ssl.write('svid-chain.pem', svid.chainPem);
  const bodyPath = await ssl.write('body.json', JSON.stringify({ csr: next.csrPem }));
  const rootPath = await ssl.write('root.pem', ca.rootCertPem());
  const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--cacert', rootPath, '--cert', chainPath, '--key', svid.keyPath, '-H', 'content-type: application/json', '--data-binary', `@${bodyPath}`, `${ca.apiUrl}/v1/certificates`]);
  const body = JSON.parse(stdout) as { spiffeId: string; certChain: string[] };
  assert.equal(body.spiffeId, ID);
  assert.equal(lastIssued()['authenticator'], 'svid');
  const text = await ssl.x509Text(body.certChain[0] as string);
  assert.match(text, /URI:spiffe:\/\/cluster\.local\/ns\/shop\/sa\/cart/);
});

test('TLS 1.2: renewals on one kept-alive connection, and openssl s_client cannot renegotiate', async () => {
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: ca.rootCertPem(), cert: svid.chainPem, key: svid.keyPem, maxVersion: 'TLSv1.2' });
  // A kept-alive agent hands each finished request's socket back with 'free'.
  const sockets = new Set<TLSSocket>();
  agent.on('free', (socket: TLSSocket) => sockets.add(socket));
  try {
    for (let i = 0; i < 3; i++) {
      const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { agent, body: { csr: (await ssl.keyAndCsr()).csrPem } });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.spiffeId, ID);
    }
    assert.equal(sockets.size, 1, 'the three renewals shared one connection');
    for (const socket of sockets) assert.equal(socket.getProtocol(), 'TLSv1.2');
    assert.equal(lastIssued()['authenticator'], 'svid');
  } finally {
    agent.destroy();
  }

  // The client certificate is read once per connection, so a TLS 1.2 client must not be able to
  // swap it by renegotiating.
  const output = await tls12RenegotiationAttempt({
    port: Number(new URL(ca.apiUrl).port),
    caPath: await ssl.write('root-tls12.pem', ca.rootCertPem()),
    certPath: await ssl.write('svid-chain-tls12.pem', svid.chainPem),
    keyPath: svid.keyPath,
  });
  assert.match(output, /no renegotiation/, 'the CA refused the renegotiation');
});

test('with an SVID, a CSR naming another ID is refused: 403 RAMPART_ERR_CSR_IDENTITY_MISMATCH', async () => {
  const other = await ssl.keyAndCsr({ subjectAltName: 'URI:spiffe://cluster.local/ns/rampart-system/sa/rampart-admin' });
  const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: svid.chainPem, key: svid.keyPem, body: { csr: other.csrPem } });
  assert.equal(res.status, 403, res.text);
  assert.equal(res.body.error.code, 'RAMPART_ERR_CSR_IDENTITY_MISMATCH');
});

test('an SVID from another CA, or a certificate without its key, does not authenticate: 401', async () => {
  const foreignCa = await startTestCa();
  try {
    const k = await ssl.keyAndCsr();
    const issued = await httpsJson(`${foreignCa.apiUrl}/v1/certificates`, { ca: foreignCa.rootCertPem(), token: await foreignCa.token('shop', 'cart'), body: { csr: k.csrPem } });
    assert.equal(issued.status, 200);
    const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: (issued.body.certChain as string[]).join(''), key: k.keyPem, body: { csr: (await ssl.keyAndCsr()).csrPem } });
    assert.equal(res.status, 401, res.text);
    assert.equal(res.body.error.code, 'RAMPART_ERR_UNAUTHENTICATED');
  } finally {
    await foreignCa.close();
  }
  // A certificate presented with a key that is not its own fails in TLS before any request is made.
  const wrongKey = await ssl.keyAndCsr();
  await assert.rejects(
    httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), cert: svid.chainPem, key: wrongKey.keyPem, body: { csr: wrongKey.csrPem } }),
    /key values mismatch|KEY_VALUES_MISMATCH/i,
  );
});
