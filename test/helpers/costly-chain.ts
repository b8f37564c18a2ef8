/**
 * Client certificate chains that cost a TLS server far more to check than to send: made-up CAs
 * linked by name, whose signatures are random bytes (OpenSSL pays for the check all the same).
 * Only the leaf has a real key, so a TLS client can present the chain.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { bitString, contextTag, encodeOid, encodeTime, seq, smallInteger, tlv, TAG, unsignedInteger } from '../../src/core/pki/der.js';
import { encodeName } from '../../src/core/pki/profile.js';
import { certificatePem } from '../../src/core/pki/pem.js';

const RSA_SHA256 = seq(encodeOid('1.2.840.113549.1.1.11'), tlv(TAG.NULL));
const ECDSA_SHA256 = seq(encodeOid('1.2.840.10045.4.3.2'));

export interface PresentedChain {
  readonly keyPem: string;
  /** Leaf first, then each made-up issuer. */
  readonly chainPem: string;
}

/**
 * An RSA SubjectPublicKeyInfo with a random odd `bits`-bit modulus and the exponent n - 2: as long
 * as the modulus, which OpenSSL allows up to 3,072 bits, so each check is a full-size exponentiation.
 */
function hugeExponentRsaSpki(bits: number): Buffer {
  const n = randomModulus(bits);
  const e = Buffer.from(n);
  e[e.length - 1] = (e[e.length - 1] as number) - 2;
  return rsaSpki(n, e);
}

/** A random odd number of exactly `bits` bits: an RSA modulus as far as a verifier can tell. */
export function randomModulus(bits: number): Buffer {
  const n = randomBytes(bits / 8);
  n[0] = (n[0] as number) | 0x80;
  n[n.length - 1] = (n[n.length - 1] as number) | 1;
  return n;
}

/** An RSA SubjectPublicKeyInfo for modulus `n` and exponent `e` (big-endian magnitudes). */
export function rsaSpki(n: Buffer, e: Buffer): Buffer {
  return seq(seq(encodeOid('1.2.840.113549.1.1.1'), tlv(TAG.NULL)), bitString(seq(unsignedInteger(n), unsignedInteger(e))));
}

/** A certificate for `spki`, named `subject` and issued by `issuer`, with a made-up RSA signature. */
export function madeUpCertificateDer(subject: string, issuer: string, spki: Buffer): Buffer {
  return certificateDer(subject, issuer, spki, RSA_SHA256, rsaSignature(3072));
}

function certificate(subject: string, issuer: string, spki: Buffer, signatureAlgorithm: Buffer, signature: Buffer): string {
  return certificatePem(certificateDer(subject, issuer, spki, signatureAlgorithm, signature));
}

/** Valid from an hour ago to an hour ahead unless `notAfter` (ms) says otherwise; then a day before it. */
function certificateDer(subject: string, issuer: string, spki: Buffer, signatureAlgorithm: Buffer, signature: Buffer, notAfter?: number): Buffer {
  const now = Date.now();
  const validity = notAfter === undefined ? seq(encodeTime(now - 3_600_000), encodeTime(now + 3_600_000)) : seq(encodeTime(notAfter - 86_400_000), encodeTime(notAfter));
  const tbs = seq(
    tlv(contextTag(0, true), smallInteger(2)),
    smallInteger(1 + Math.floor(Math.random() * 1_000_000)),
    signatureAlgorithm,
    encodeName({ commonName: issuer }),
    validity,
    encodeName({ commonName: subject }),
    spki,
  );
  return seq(tbs, signatureAlgorithm, bitString(signature));
}

/** An RSA signature value the length of a `bits`-bit modulus and below any such modulus (RSA_verify insists on both). */
function rsaSignature(bits: number): Buffer {
  const s = randomBytes(bits / 8);
  s[0] = 1;
  return s;
}

/** A P-256 leaf under `links` made-up RSA-3072 CAs with 3,070-bit-plus public exponents. */
export function hugeExponentChain(links: number): PresentedChain {
  const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pems = [certificate('leaf', 'costly-ca-1', leaf.publicKey.export({ format: 'der', type: 'spki' }), RSA_SHA256, rsaSignature(3072))];
  for (let i = 1; i <= links; i++) pems.push(certificate(`costly-ca-${i}`, `costly-ca-${i + 1}`, hugeExponentRsaSpki(3072), RSA_SHA256, rsaSignature(3072)));
  return { keyPem: leaf.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), chainPem: pems.join('') };
}

/** A P-256 leaf under `links` made-up CAs with ordinary P-256 keys: costly only by its length. */
export function longChain(links: number): PresentedChain {
  const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = (): Buffer => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'der', type: 'spki' });
  // A DER ECDSA-Sig-Value of two 32-byte INTEGERs: well formed, and wrong.
  const signature = (): Buffer => seq(unsignedInteger(randomBytes(32)), unsignedInteger(randomBytes(32)));
  const pems = [certificate('leaf', 'long-ca-1', leaf.publicKey.export({ format: 'der', type: 'spki' }), ECDSA_SHA256, signature())];
  for (let i = 1; i <= links; i++) pems.push(certificate(`long-ca-${i}`, `long-ca-${i + 1}`, spki(), ECDSA_SHA256, signature()));
  return { keyPem: leaf.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), chainPem: pems.join('') };
}

/**
 * hugeExponentChain(links) behind an expired decoy issuer: the decoy carries the first made-up
 * CA's name and an ordinary RSA key, and names an issuer nobody presents. node links leaf and decoy and
 * stops; OpenSSL prefers the issuer valid now and checks every costly link (outside QA).
 */
export function decoyedHugeExponentChain(links: number): PresentedChain {
  const chain = hugeExponentChain(links);
  // An RSA key, as the leaf's signature algorithm wants of its issuer (OpenSSL's issuer match).
  const decoySpki = rsaSpki(randomModulus(2048), Buffer.from([1, 0, 1]));
  const decoy = certificatePem(certificateDer('costly-ca-1', 'dead-end', decoySpki, RSA_SHA256, rsaSignature(3072), Date.now() - 30 * 86_400_000));
  const [leaf, ...issuers] = chain.chainPem.split(/(?=-----BEGIN CERTIFICATE-----)/);
  return { keyPem: chain.keyPem, chainPem: [leaf, decoy, ...issuers].join('') };
}
