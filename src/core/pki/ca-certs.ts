/**
 * Creation of the CA's own certificates: self-signed roots and signing intermediates. Not on the
 * hot path (a few per year), so clarity beats speed here.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign as cryptoSign, X509Certificate, type KeyObject } from 'node:crypto';
import { trustDomainId } from '../identity.js';
import { keyIdFromExtension, parseCertificate } from './certificate.js';
import { generateEcKeyPair, privateKeyPem, spkiDer, spkiKeyIdentifier } from './keys.js';
import { certificatePem } from './pem.js';
import {
  authorityKeyIdentifierExtension,
  basicConstraintsExtension,
  encodeCertificate,
  encodeName,
  encodeTbs,
  KEY_USAGE,
  keyUsageExtension,
  SIGNATURE_HASH_OF,
  subjectAltNameExtension,
  subjectKeyIdentifierExtension,
  type SignatureAlgorithm,
} from './profile.js';

/** A certificate with its private key, both PEM. */
export interface IssuedCa {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly fingerprint: string;
}

const BACKDATE_MS = 60_000;

function caSerial(): Buffer {
  const serial = randomBytes(16);
  serial[0] = ((serial[0] as number) & 0x3f) | 0x40;
  return serial;
}

function algorithmFor(key: KeyObject): SignatureAlgorithm {
  return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ecdsa-sha384' : 'ecdsa-sha256';
}

/** SHA-256 fingerprint of a PEM certificate as lowercase hex (no colons). */
export function certificateFingerprint(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256.replace(/:/g, '').toLowerCase();
}

/** Creates a self-signed root for a trust domain; `generation` keeps successive subjects distinct. */
export function createRoot(options: { trustDomain: string; generation: number; now: number; ttlMs: number; curve?: 'P-256' | 'P-384' }): IssuedCa {
  const { privateKey, publicKey } = generateEcKeyPair(options.curve ?? 'P-256');
  const spki = spkiDer(publicKey);
  const keyId = spkiKeyIdentifier(spki);
  const name = encodeName({
    organization: options.trustDomain,
    commonName: `Rampart Root CA G${options.generation}`,
    serialNumber: String(options.generation),
  });
  const notBefore = options.now - BACKDATE_MS;
  const notAfter = options.now + options.ttlMs;
  const algorithm = algorithmFor(privateKey);
  const tbs = encodeTbs({
    serial: caSerial(),
    signatureAlgorithm: algorithm,
    issuerName: name,
    subjectName: name,
    notBefore,
    notAfter,
    spki,
    extensions: [
      basicConstraintsExtension(true),
      keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
      subjectKeyIdentifierExtension(keyId),
      subjectAltNameExtension({ uris: [trustDomainId(options.trustDomain)] }, false),
    ],
  });
  const der = encodeCertificate(tbs, algorithm, cryptoSign(SIGNATURE_HASH_OF[algorithm], tbs, privateKey));
  const certPem = certificatePem(der);
  return { certPem, keyPem: privateKeyPem(privateKey), notBefore, notAfter: Math.floor(notAfter / 1000) * 1000, fingerprint: certificateFingerprint(certPem) };
}

/**
 * Creates a signing intermediate under a CA whose key we hold: ECDSA P-256, URI SAN of the trust
 * domain, cA=true pathLen 0, never outliving its issuer.
 */
export function createIntermediate(options: {
  trustDomain: string;
  generation: number;
  issuerCertPem: string;
  issuerKeyPem: string;
  now: number;
  ttlMs: number;
}): IssuedCa {
  const issuerKey = createPrivateKey(options.issuerKeyPem);
  const issuer = parseCertificate(new X509Certificate(options.issuerCertPem).raw);
  const { privateKey, publicKey } = generateEcKeyPair('P-256');
  const spki = spkiDer(publicKey);
  const notBefore = options.now - BACKDATE_MS;
  const notAfter = Math.min(options.now + options.ttlMs, issuer.notAfter);
  const stamp = new Date(options.now).toISOString().replace(/[-:T.Z]/g, '').slice(0, 14);
  const algorithm = algorithmFor(issuerKey);
  const tbs = encodeTbs({
    serial: caSerial(),
    signatureAlgorithm: algorithm,
    issuerName: issuer.subject,
    subjectName: encodeName({
      organization: options.trustDomain,
      commonName: `Rampart Intermediate CA G${options.generation}`,
      serialNumber: `${options.generation}-${stamp}`,
    }),
    notBefore,
    notAfter,
    spki,
    extensions: [
      basicConstraintsExtension(true, 0),
      keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]),
      subjectKeyIdentifierExtension(spkiKeyIdentifier(spki)),
      authorityKeyIdentifierExtension(keyIdFromExtension(issuer, 'ski') ?? spkiKeyIdentifier(issuer.spki)),
      subjectAltNameExtension({ uris: [trustDomainId(options.trustDomain)] }, false),
    ],
  });
  const der = encodeCertificate(tbs, algorithm, cryptoSign(SIGNATURE_HASH_OF[algorithm], tbs, issuerKey));
  const certPem = certificatePem(der);
  if (!new X509Certificate(certPem).verify(createPublicKey(options.issuerKeyPem))) {
    throw new Error('intermediate signature does not verify with its issuer');
  }
  return { certPem, keyPem: privateKeyPem(privateKey), notBefore, notAfter: Math.floor(notAfter / 1000) * 1000, fingerprint: certificateFingerprint(certPem) };
}
