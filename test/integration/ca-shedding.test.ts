/**
 * Load shedding at the HTTP layer: requests beyond --max-in-flight get 429 with Retry-After and
 * a coded body, without touching the signer, and succeed when retried. Requests pile up in
 * flight when the CA waits on something outside it: here the JWKS endpoint holds its answer.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { startTestCa } from '../helpers/ca.js';
import { httpsJson, type HttpsResult } from '../helpers/https.js';
import { makeKey, projectedClaims, sign } from '../unit/authn-jwt-helpers.js';

const ISSUER = 'https://issuer.test.example';

test('beyond --max-in-flight the CA answers 429 with Retry-After; the retries succeed', async () => {
  const key = makeKey('ES256', 'k1');
  const held: Array<() => void> = [];
  let fetches = 0;
  // Fetches are held only during the burst; once it is released, any later fetch is answered at
  // once, so a refetch can never leave a request (and the test) waiting for good.
  let holding = true;
  const jwksServer = http.createServer((_req, res) => {
    fetches++;
    const answer = (): void => void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [key.jwk] }));
    if (holding) held.push(answer);
    else answer();
  });
  await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', r));
  const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/keys`;
  const ca = await startTestCa({ authn: 'jwks', 'jwks-issuer': ISSUER, 'jwks-url': jwksUrl, 'max-in-flight': '2' });
  try {
    const now = Math.floor(Date.now() / 1000);
    const tokenFor = (sa: string) =>
      sign(key, projectedClaims({ iss: ISSUER, sub: `system:serviceaccount:shop:${sa}`, iat: now, nbf: now, exp: now + 600, 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: sa, uid: `uid-${sa}` } } }));
    const post = async (sa: string): Promise<HttpsResult> =>
      httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token: await tokenFor(sa), body: { csr: createKeyAndCsr().csrPem } });

    // Six callers at once; the first two wait on the JWKS fetch, the other four are shed.
    const answers: Array<HttpsResult | undefined> = Array(6).fill(undefined);
    const pending = Array.from({ length: 6 }, (_, i) => post(`app-${i}`).then((r) => (answers[i] = r)));
    const deadline = Date.now() + 20_000;
    while (answers.filter((a) => a !== undefined).length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const shed = answers.filter((a): a is HttpsResult => a !== undefined);
    assert.equal(shed.length, 4, 'four answers while two requests are still in flight');
    for (const r of shed) {
      assert.equal(r.status, 429, r.text);
      assert.equal(r.body.error.code, 'RAMPART_ERR_RATE_LIMITED');
      const retryAfter = Number(r.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3, `Retry-After ${String(r.headers['retry-after'])}`);
    }
    assert.equal(fetches, 1, 'one JWKS fetch for the whole burst');

    holding = false;
    for (const release of held.splice(0)) release();
    await Promise.all(pending);
    const admitted = answers.filter((a) => a?.status === 200);
    assert.equal(admitted.length, 2);

    // Each shed caller comes back and is served.
    for (let i = 0; i < 6; i++) {
      if (answers[i]?.status === 200) continue;
      const retry = await post(`app-${i}`);
      assert.equal(retry.status, 200, retry.text);
      assert.equal(retry.body.spiffeId, `spiffe://cluster.local/ns/shop/sa/app-${i}`);
    }
    const metrics = await httpsJson(`${ca.monitoringUrl}/metrics`, { headers: { accept: 'text/plain' } });
    assert.match(metrics.text, /rampart_ca_certificates_issued_total\{result="RAMPART_ERR_RATE_LIMITED"\} 4$/m);
    assert.match(metrics.text, /rampart_ca_certificates_issued_total\{result="ok"\} 6$/m);
  } finally {
    holding = false;
    for (const release of held.splice(0)) release();
    // Keep-alive connections from the CA would hold close() open; a failed assertion must surface.
    jwksServer.closeAllConnections();
    await ca.close();
    await new Promise<void>((r) => jwksServer.close(() => r()));
  }
});
