/**
 * The light X.509 parser of core/pki/certificate.ts on hand-built certificates that OpenSSL
 * loads: its contract is a value or a DerError, which callers turn into their own coded errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { basicConstraints, parseCertificate } from '../../src/core/pki/certificate.js';
import { DerError } from '../../src/core/pki/der.js';
import { basicConstraintsWithRawPathLen, buildCertificate } from '../helpers/pki-build.js';

function withPathLen(hex: string): Buffer {
  return buildCertificate({ subject: { commonName: 'ca' }, extensions: [basicConstraintsWithRawPathLen(Buffer.from(hex, 'hex'))] }).der;
}

test('basicConstraints reads pathLenConstraint values a CA may write', () => {
  assert.deepEqual(basicConstraints(parseCertificate(withPathLen('00'))), { ca: true, pathLen: 0 });
  assert.deepEqual(basicConstraints(parseCertificate(withPathLen('7f'))), { ca: true, pathLen: 127 });
  assert.deepEqual(basicConstraints(parseCertificate(withPathLen('00ff'))), { ca: true, pathLen: 255 });
});

test('a pathLenConstraint that is empty, negative or over 6 bytes is a DerError, not a RangeError (fuzz finding)', () => {
  // Seeded certificate campaign (seed 0xce47): Buffer.readUIntBE threw "The value of byteLength
  // is out of range" for a 360-byte INTEGER, past every caller's DerError handling.
  for (const [hex, why] of [['', /empty pathLenConstraint/], ['01'.repeat(7), /out of range/], ['ff'.repeat(360), /negative|out of range/], ['80', /negative/]] as const) {
    const der = withPathLen(hex);
    if (hex !== '') new X509Certificate(der); // OpenSSL loads those it can; Rampart must still judge them with a DerError
    assert.throws(
      () => basicConstraints(parseCertificate(der)),
      (err: unknown) => err instanceof DerError && why.test(err.message),
      `pathLen ${hex.slice(0, 16) || '(empty)'}`,
    );
  }
});
