/**
 * validatePluggedCa on plugged-in CA files OpenSSL loads but Rampart's own reader cannot use. Each
 * case comes from the seeded certificate campaign (seed 0xce47): the error escaped rampart ca's
 * start-up uncoded (a RangeError, a DerError, an OpenSSL error), or the files were accepted and
 * the signer built on them failed at start-up instead.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { ConfigError } from '../../src/core/errors.js';
import { validatePluggedCa, type PluggedCaFiles } from '../../src/core/ca/plugged.js';
import { encodeOid, octetString, seq } from '../../src/core/pki/der.js';
import { spkiDer, spkiKeyIdentifier, privateKeyPem } from '../../src/core/pki/keys.js';
import { OID } from '../../src/core/pki/oids.js';
import { basicConstraintsExtension, extension, KEY_USAGE, keyUsageExtension, subjectKeyIdentifierExtension } from '../../src/core/pki/profile.js';
import { certificatePem } from '../../src/core/pki/pem.js';
import { basicConstraintsWithRawPathLen, buildCertificate, caExtensions } from '../helpers/pki-build.js';

const ROOT_NAME = { organization: 'example.org', commonName: 'Offline Root' };
const root = buildCertificate({ subject: ROOT_NAME, extensions: [] });
const rootCa = buildCertificate({ subject: ROOT_NAME, privateKey: root.privateKey, extensions: caExtensions(root.privateKey) });

/** Plugged-in files around an intermediate with these extensions (and its key), signed by the root. */
function files(extensions: (privateKey: KeyObject) => Buffer[], chainExtra = ''): PluggedCaFiles {
  const key = buildCertificate({ subject: { commonName: 'k' }, extensions: [] }).privateKey;
  const inter = buildCertificate({ subject: { organization: 'example.org', commonName: 'Plugged Intermediate' }, issuer: { name: ROOT_NAME, privateKey: root.privateKey }, privateKey: key, extensions: extensions(key) });
  new X509Certificate(inter.der); // OpenSSL loads every certificate these cases build
  return { caCertPem: inter.pem, caKeyPem: privateKeyPem(key), certChainPem: inter.pem + chainExtra + rootCa.pem, rootCertPem: rootCa.pem };
}

function assertRefused(f: PluggedCaFiles, message: RegExp): void {
  assert.throws(
    () => validatePluggedCa(f, 'example.org', Date.now()),
    (err: unknown) => err instanceof ConfigError && err.code === 'RAMPART_ERR_PLUGGED_CA_INVALID' && message.test(err.message),
  );
}

const skiOf = (key: KeyObject): Buffer => spkiKeyIdentifier(spkiDer(createPublicKey(key)));

test('a well-formed plugged-in CA built the same way is accepted', () => {
  const plugged = validatePluggedCa(files((key) => caExtensions(key, 0)), 'example.org', Date.now());
  assert.equal(plugged.rootCertPem, rootCa.pem);
});

test('a ca-cert.pem whose pathLen is over 6 bytes is refused with a code, not thrown as a RangeError', () => {
  assertRefused(files((key) => [basicConstraintsWithRawPathLen(Buffer.alloc(7, 1)), keyUsageExtension([KEY_USAGE.keyCertSign]), subjectKeyIdentifierExtension(skiOf(key))]), /ca-cert\.pem holds a certificate that is not well-formed DER \(pathLenConstraint out of range\)/);
});

test('a ca-cert.pem with a non-minimal DER length OpenSSL tolerates is refused with a code, not thrown as a DerError', () => {
  // An extra extension whose OCTET STRING length is written 81 02 instead of 02.
  const padded = seq(encodeOid('1.3.6.1.4.1.99999.1'), Buffer.from([0x04, 0x81, 0x02, 0x05, 0x00]));
  assertRefused(files((key) => [...caExtensions(key), padded]), /ca-cert\.pem holds a certificate that is not well-formed DER \(non-minimal length\)/);
});

test('a ca-cert.pem whose subjectKeyIdentifier has trailing bytes is refused, instead of failing the signer at start-up', () => {
  const badSki = (key: KeyObject): Buffer => extension(OID.subjectKeyIdentifier, false, Buffer.concat([octetString(skiOf(key)), Buffer.from([0x05, 0x00])]));
  assertRefused(files((key) => [basicConstraintsExtension(true, 0), keyUsageExtension([KEY_USAGE.keyCertSign]), badSki(key)]), /ca-cert\.pem holds a certificate that is not well-formed DER \(trailing bytes/);
});

test('a cert-chain.pem block OpenSSL cannot load is refused with a code, not thrown as an OpenSSL error', () => {
  assertRefused(files((key) => caExtensions(key), certificatePem(Buffer.from('3003020100', 'hex'))), /cert-chain\.pem certificate 2 holds a certificate that cannot be loaded/);
});
