/**
 * parseCsr on hand-built PKCS#10 requests that differ from a good one in a single element. Each
 * case comes from the seeded CSR campaign (seed 0xc5a11): a request Rampart took although it is
 * no valid PKCS#10, and whose SubjectPublicKeyInfo it would have copied into a certificate that
 * OpenSSL cannot load.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPrivateKey, generateKeyPairSync, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { BadRequestError } from '../../src/core/errors.js';
import { parseCsr } from '../../src/core/pki/csr.js';
import { bitString, contextTag, encodeOid, seq, smallInteger, tlv, TAG } from '../../src/core/pki/der.js';
import { OID } from '../../src/core/pki/oids.js';
import { createIntermediate, createRoot } from '../../src/core/pki/ca-certs.js';
import { LeafSigner } from '../../src/core/pki/signer.js';
import { spkiDer } from '../../src/core/pki/keys.js';
import { encodeName, SIGNATURE_ALGORITHM_DER } from '../../src/core/pki/profile.js';

const NULL = Buffer.from([TAG.NULL, 0]);
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

/** A request over `spki`, signed by `key`, with the pieces a test wants to change. */
function request(options: { spki: Buffer; key: KeyObject; rsa?: boolean; algorithm?: Buffer; trailing?: Buffer[]; infoExtra?: Buffer[] }): Buffer {
  const info = seq(smallInteger(0), encodeName({}), options.spki, tlv(contextTag(0, true)), ...(options.infoExtra ?? []));
  const algorithm = options.algorithm ?? (options.rsa ? seq(encodeOid(OID.sha256WithRsa), NULL) : SIGNATURE_ALGORITHM_DER['ecdsa-sha256']);
  return seq(info, algorithm, bitString(sign('sha256', info, options.key)), ...(options.trailing ?? []));
}

function assertMalformed(der: Buffer, message: RegExp): void {
  assert.throws(
    () => parseCsr(der),
    (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_MALFORMED' && message.test(err.message),
  );
}

const ecSpki = spkiDer(ec.publicKey);
const rsaJwk = rsa.publicKey.export({ format: 'jwk' });
const rsaModulus = Buffer.from(rsaJwk.n as string, 'base64url');
const rsaExponent = Buffer.from(rsaJwk.e as string, 'base64url');
const rsaSpki = (fields: { params?: Buffer[]; modulus?: Buffer; extraKeyField?: boolean }): Buffer =>
  seq(
    seq(encodeOid(OID.rsaEncryption), ...(fields.params ?? [NULL])),
    bitString(seq(tlv(TAG.INTEGER, fields.modulus ?? Buffer.concat([Buffer.from([0]), rsaModulus])), tlv(TAG.INTEGER, rsaExponent), ...(fields.extraKeyField ? [tlv(TAG.INTEGER, Buffer.from([1]))] : []))),
  );

test('the well-formed requests these cases start from parse', () => {
  assert.equal(parseCsr(request({ spki: ecSpki, key: ec.privateKey })).keyType, 'ec-p256');
  assert.equal(parseCsr(request({ spki: rsaSpki({}), key: rsa.privateKey, rsa: true })).keyType, 'rsa-2048');
  assert.equal(parseCsr(request({ spki: ecSpki, key: ec.privateKey, algorithm: seq(encodeOid(OID.ecdsaWithSha256), NULL) })).keyType, 'ec-p256');
});

test('anything outside the signed certificationRequestInfo is refused: a trailing element, junk signature parameters', () => {
  assertMalformed(request({ spki: ecSpki, key: ec.privateKey, trailing: [bitString(Buffer.from('junk'))] }), /exactly certificationRequestInfo, signatureAlgorithm and signature/);
  assertMalformed(request({ spki: ecSpki, key: ec.privateKey, trailing: [tlv(TAG.GENERALIZED_TIME, Buffer.from('x'))] }), /exactly certificationRequestInfo/);
  assertMalformed(request({ spki: ecSpki, key: ec.privateKey, algorithm: seq(encodeOid(OID.ecdsaWithSha256), encodeOid('1.2.3.4')) }), /parameters must be absent or NULL/);
  assertMalformed(request({ spki: ecSpki, key: ec.privateKey, algorithm: seq(encodeOid(OID.ecdsaWithSha256), NULL, NULL) }), /parameters must be absent or NULL/);
  assertMalformed(request({ spki: ecSpki, key: ec.privateKey, infoExtra: [NULL] }), /more than version, subject, subjectPKInfo and attributes/);
});

test('an RSASSA-PSS request, whose algorithm carries parameters, is refused as an unsupported algorithm, not as malformed', () => {
  // RSASSA-PSS-params (RFC 4055): SHA-256, MGF1 with SHA-256, salt 32, as openssl req -sigopt rsa_padding_mode:pss writes them.
  const sha256 = seq(encodeOid('2.16.840.1.101.3.4.2.1'));
  const pssParams = seq(tlv(contextTag(0, true), sha256), tlv(contextTag(1, true), seq(encodeOid('1.2.840.113549.1.1.8'), sha256)), tlv(contextTag(2, true), smallInteger(32)));
  assert.throws(
    () => parseCsr(request({ spki: rsaSpki({}), key: rsa.privateKey, rsa: true, algorithm: seq(encodeOid('1.2.840.113549.1.1.10'), pssParams) })),
    (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_UNSUPPORTED_SIGNATURE_ALGORITHM' && /signature algorithm 1\.2\.840\.113549\.1\.1\.10 is not supported/.test(err.message),
  );
});

test('a SubjectPublicKeyInfo the certificate could not carry is refused, though the request signature verifies', () => {
  const spkiWithTrailer = seq(...[ecSpki.subarray(2, 2 + 21), ecSpki.subarray(2 + 21)], bitString(Buffer.alloc(64, 1)));
  assertMalformed(request({ spki: spkiWithTrailer, key: ec.privateKey }), /exactly an algorithm and a key/);
  const ecAlgWithExtra = seq(seq(encodeOid(OID.ecPublicKey), encodeOid(OID.prime256v1), NULL), ecSpki.subarray(2 + 21));
  assertMalformed(request({ spki: ecAlgWithExtra, key: ec.privateKey }), /more than an OID and its parameters/);
  assertMalformed(request({ spki: rsaSpki({ params: [encodeOid('1.2.3')] }), key: rsa.privateKey, rsa: true }), /rsaEncryption parameters must be NULL/);
  // Left out, the key would go into the certificate without them, and Go would refuse that (outside QA).
  assertMalformed(request({ spki: rsaSpki({ params: [] }), key: rsa.privateKey, rsa: true }), /rsaEncryption parameters must be NULL \(RFC 3279\)/);
  assertMalformed(request({ spki: rsaSpki({ modulus: Buffer.concat([Buffer.from([0, 0]), rsaModulus]) }), key: rsa.privateKey, rsa: true }), /RSA modulus has a non-minimal encoding/);
  assertMalformed(request({ spki: rsaSpki({ extraKeyField: true }), key: rsa.privateKey, rsa: true }), /exactly a modulus and an exponent/);
});

test('every request parseCsr accepts here yields a leaf OpenSSL loads', () => {
  const root = createRoot({ trustDomain: 'cluster.local', generation: 1, now: Date.now(), ttlMs: 86_400_000 });
  const inter = createIntermediate({ trustDomain: 'cluster.local', generation: 1, issuerCertPem: root.certPem, issuerKeyPem: root.keyPem, now: Date.now(), ttlMs: 3_600_000 });
  const signer = new LeafSigner(new X509Certificate(inter.certPem).raw, createPrivateKey(inter.keyPem));
  for (const der of [request({ spki: ecSpki, key: ec.privateKey }), request({ spki: rsaSpki({}), key: rsa.privateKey, rsa: true })]) {
    const csr = parseCsr(der);
    const leaf = signer.sign({ spki: csr.spki, subjectPublicKey: csr.subjectPublicKey, isRsa: csr.isRsa, spiffeId: 'spiffe://cluster.local/ns/a/sa/b', notBefore: Date.now(), notAfter: Date.now() + 600_000 });
    assert.ok(new X509Certificate(leaf.der).publicKey);
  }
});

function assertUnsupportedKey(der: Buffer, message: RegExp): void {
  assert.throws(
    () => parseCsr(der),
    (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_UNSUPPORTED_KEY' && message.test(err.message),
  );
}

test('an RSA key whose exponent proves nothing or that Go refuses is unsupported: e = 1 (a forged "signature" verified), even, or 2^31 and over (outside security QA)', () => {
  const withExponent = (e: Buffer): Buffer => seq(seq(encodeOid(OID.rsaEncryption), NULL), bitString(seq(tlv(TAG.INTEGER, Buffer.concat([Buffer.from([0]), rsaModulus])), tlv(TAG.INTEGER, e))));
  // With e = 1 the padded digest is its own signature: no private key at all.
  const spki = withExponent(Buffer.from([1]));
  const info = seq(smallInteger(0), encodeName({}), spki, tlv(contextTag(0, true)));
  const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), createHash('sha256').update(info).digest()]);
  const padded = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - 3 - digestInfo.length, 0xff), Buffer.from([0]), digestInfo]);
  const forged = seq(info, seq(encodeOid(OID.sha256WithRsa), NULL), bitString(padded));
  assertUnsupportedKey(forged, /RSA 2048-bit with public exponent 1\)/);
  const signedBy = (e: Buffer) => request({ spki: withExponent(e), key: rsa.privateKey, rsa: true });
  assertUnsupportedKey(signedBy(Buffer.from([0x01, 0x00, 0x00])), /even public exponent \(65536\)/);
  assertUnsupportedKey(signedBy(Buffer.from([0x00, 0x80, 0x00, 0x00, 0x00])), /public exponent of 2\^31 or more/);
  assertUnsupportedKey(signedBy(Buffer.concat([Buffer.from([0x01]), Buffer.alloc(383, 0x01)])), /public exponent of 2\^31 or more/);
  // The largest exponent Go takes passes the key check and goes on to the signature, made by another key here.
  assert.throws(() => parseCsr(signedBy(Buffer.from([0x7f, 0xff, 0xff, 0xff]))), (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_BAD_SIGNATURE');
});

test('an EC key in compressed or hybrid point form is unsupported: Go cannot load such a leaf, and RFC 5480 forbids the hybrid form (outside security QA)', () => {
  const point = ecSpki.subarray(ecSpki.length - 65);
  const x = point.subarray(1, 33);
  const y = point.subarray(33);
  const spkiWith = (key: Buffer): Buffer => seq(seq(encodeOid(OID.ecPublicKey), encodeOid(OID.prime256v1)), bitString(key));
  const odd = ((y[31] as number) & 1) === 1;
  assertUnsupportedKey(request({ spki: spkiWith(Buffer.concat([Buffer.from([odd ? 3 : 2]), x])), key: ec.privateKey }), /ECDSA P-256 with a compressed point/);
  assertUnsupportedKey(request({ spki: spkiWith(Buffer.concat([Buffer.from([odd ? 7 : 6]), x, y])), key: ec.privateKey }), /ECDSA P-256 with a point that is not in uncompressed form/);
  assertUnsupportedKey(request({ spki: spkiWith(Buffer.concat([Buffer.from([4]), x])), key: ec.privateKey }), /not in uncompressed form of the curve's size/);
});

test('an uncompressed EC point off its curve is refused as malformed before any signature check; the same point on the curve is taken', () => {
  const point = Buffer.from(ecSpki.subarray(ecSpki.length - 65));
  const spkiWith = (key: Buffer): Buffer => seq(seq(encodeOid(OID.ecPublicKey), encodeOid(OID.prime256v1)), bitString(key));
  assert.equal(parseCsr(request({ spki: spkiWith(point), key: ec.privateKey })).keyType, 'ec-p256');
  const offCurve = Buffer.from(point);
  offCurve[64] = (offCurve[64] as number) ^ 1;
  assertMalformed(request({ spki: spkiWith(offCurve), key: ec.privateKey }), /ECDSA P-256\) is not a valid key: an EC point must lie on its curve/);
  assertMalformed(request({ spki: spkiWith(Buffer.concat([Buffer.from([4]), Buffer.alloc(64)])), key: ec.privateKey }), /must lie on its curve/);
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const p384Spki = spkiDer(p384.publicKey);
  const p384SpkiWith = (key: Buffer): Buffer => seq(seq(encodeOid(OID.ecPublicKey), encodeOid(OID.secp384r1)), bitString(key));
  const p384Request = (key: Buffer): Buffer => request({ spki: p384SpkiWith(key), key: p384.privateKey });
  const p384Point = Buffer.from(p384Spki.subarray(p384Spki.length - 97));
  assert.equal(parseCsr(p384Request(p384Point)).keyType, 'ec-p384');
  p384Point[96] = (p384Point[96] as number) ^ 1;
  assertMalformed(p384Request(p384Point), /ECDSA P-384\) is not a valid key/);
});

test('a request signed by another key than the one it carries is refused as a bad signature', () => {
  const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assert.throws(
    () => parseCsr(request({ spki: ecSpki, key: other.privateKey })),
    (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_CSR_BAD_SIGNATURE',
  );
});

test('an empty BIT STRING, for the key or the signature, is refused as empty, one with unused bits as such', () => {
  const ecAlgorithm = ecSpki.subarray(2, 2 + 21);
  const ecPoint = ecSpki.subarray(ecSpki.length - 65);
  for (const [bits, message] of [
    [Buffer.alloc(0), /public key BIT STRING is empty/],
    [Buffer.from([0]), /public key BIT STRING is empty/],
    [Buffer.concat([Buffer.from([3]), ecPoint]), /public key BIT STRING has unused bits/],
  ] as Array<[Buffer, RegExp]>) {
    assertMalformed(request({ spki: seq(ecAlgorithm, tlv(TAG.BIT_STRING, bits)), key: ec.privateKey }), message);
  }
  const info = seq(smallInteger(0), encodeName({}), ecSpki, tlv(contextTag(0, true)));
  const withSignatureBits = (bits: Buffer): Buffer => seq(info, SIGNATURE_ALGORITHM_DER['ecdsa-sha256'], tlv(TAG.BIT_STRING, bits));
  assertMalformed(withSignatureBits(Buffer.alloc(0)), /signature BIT STRING is empty/);
  assertMalformed(withSignatureBits(Buffer.concat([Buffer.from([2]), sign('sha256', info, ec.privateKey)])), /signature BIT STRING has unused bits/);
});
