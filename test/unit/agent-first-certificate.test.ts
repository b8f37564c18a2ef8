/** The agent's start-up failure names the last answer's own code, with a hint where one helps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FirstCertificateTimeout } from '../../src/agent/first-certificate.js';

test('a CA that answered 503 AUTHN_BACKEND_UNAVAILABLE is not reported as unreachable', () => {
  const err = new FirstCertificateTimeout(30_000, { code: 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', message: 'the jwks authenticator cannot load its key set' });
  assert.equal(err.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
  assert.match(err.message, /^no certificate within 30s: the jwks authenticator cannot load its key set; the CA is up but cannot check tokens/);
});

test('no answer at all, or a code outside the catalogue, is CA_UNREACHABLE with the --ca-url hint', () => {
  assert.equal(new FirstCertificateTimeout(2_000, null).code, 'RAMPART_ERR_CA_UNREACHABLE');
  const odd = new FirstCertificateTimeout(2_000, { code: 'ECONNRESET', message: 'socket hang up' });
  assert.equal(odd.code, 'RAMPART_ERR_CA_UNREACHABLE');
  assert.equal(new FirstCertificateTimeout(2_000, null).message, 'no certificate within 2s: the CA did not answer; check --ca-url and that the CA is running');
});

test('a failure whose message already says what to check gets no generic hint, whatever its words', () => {
  // The serving-certificate case says "use a --ca-url host ..." and has no "; check --ca-" in it:
  // matching on words appended "check --ca-url and that the CA is running" to it.
  const altName = { code: 'RAMPART_ERR_CA_UNREACHABLE', message: 'the CA at https://localhost:1 presented a certificate that is not for localhost (ERR_TLS_CERT_ALTNAME_INVALID); use a --ca-url host the CA\'s serving certificate names (its --serving-name)', advised: true };
  assert.equal(new FirstCertificateTimeout(2_000, altName).message, `no certificate within 2s: ${altName.message}`);
  const unadvised = { code: 'RAMPART_ERR_CA_UNREACHABLE', message: 'cannot reach the CA at https://127.0.0.1:1: ECONNREFUSED' };
  assert.equal(new FirstCertificateTimeout(2_000, unadvised).message, `no certificate within 2s: ${unadvised.message}; check --ca-url and that the CA is running`);
});
