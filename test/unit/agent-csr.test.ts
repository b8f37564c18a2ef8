import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { test } from 'node:test';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { parseCsrPem } from '../../src/core/pki/csr.js';

test('a fresh P-256 key and a CSR that the CA parser, @peculiar/x509 and openssl accept', async () => {
  const a = createKeyAndCsr();
  const b = createKeyAndCsr();
  assert.notEqual(a.keyPem, b.keyPem, 'every certificate gets a new key');
  const key = createPrivateKey(a.keyPem);
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const parsed = parseCsrPem(a.csrPem);
  assert.equal(parsed.keyType, 'ec-p256');

  const req = new x509.Pkcs10CertificateRequest(a.csrPem);
  assert.equal(req.subject, '');
  assert.equal(req.extensions.length, 0, 'no SAN: the CA takes the identity from the token');
  assert.ok(await req.verify());
  const spkiFromCsr = Buffer.from(req.publicKey.rawData);
  assert.deepEqual(spkiFromCsr, createPublicKey(key).export({ format: 'der', type: 'spki' }));

  const out = execFileSync('openssl', ['req', '-verify', '-noout'], { input: a.csrPem, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
  void out;
});
