/** `rampart ca --authn jwks --jwks-file`: the file is checked and read once at start, and the CA verifies from what it read. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { startTestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { makeKey, projectedClaims, sign, tempDir, writeJwks } from '../unit/authn-jwt-helpers.js';

const ISSUER = 'https://issuer.test.example';
let dir: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir, cleanup } = await tempDir('rampart-jwks-file-')));
after(() => cleanup());

test('the --jwks-file read at start is the key set the first token is verified with (the file is not read a second time)', async () => {
  const key = makeKey('ES256', 'k1');
  const path = join(dir, 'keys.json');
  await writeJwks(path, [key]);
  const ca = await startTestCa({ authn: 'jwks', 'jwks-issuer': ISSUER, 'jwks-file': path });
  try {
    // Were the first token to read the file again, it would find this and answer 503.
    await writeFile(path, 'not a key set');
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(key, projectedClaims({ iss: ISSUER, iat: now, nbf: now, exp: now + 600 }));
    const res = await httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: createKeyAndCsr().csrPem } });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.spiffeId, 'spiffe://cluster.local/ns/shop/sa/cart');
  } finally {
    await ca.close();
  }
});
