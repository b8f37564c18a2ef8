/**
 * Hand-built certificates for parser tests: any extension bytes, any validity, signed by the key
 * given, so a test can hold a certificate OpenSSL loads that Rampart's own checks must judge.
 */
import { createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { seq, tlv, bool, TAG } from '../../src/core/pki/der.js';
import { OID } from '../../src/core/pki/oids.js';
import {
  basicConstraintsExtension,
  encodeCertificate,
  encodeName,
  encodeTbs,
  extension,
  KEY_USAGE,
  keyUsageExtension,
  subjectKeyIdentifierExtension,
  type NameAttributes,
} from '../../src/core/pki/profile.js';
import { spkiDer, spkiKeyIdentifier } from '../../src/core/pki/keys.js';
import { certificatePem } from '../../src/core/pki/pem.js';

export interface BuiltCertificate {
  readonly der: Buffer;
  readonly pem: string;
  readonly privateKey: KeyObject;
}

export interface BuildOptions {
  readonly subject: NameAttributes;
  /** Issuer name and key; self-signed when absent. */
  readonly issuer?: { readonly name: NameAttributes; readonly privateKey: KeyObject };
  /** Complete Extension TLVs, in order. */
  readonly extensions: readonly Buffer[];
  readonly notBefore?: number;
  readonly notAfter?: number;
  readonly privateKey?: KeyObject;
}

/** A P-256 certificate (ECDSA with SHA-256) with exactly the extensions given. */
export function buildCertificate(options: BuildOptions): BuiltCertificate {
  const privateKey = options.privateKey ?? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  const now = Date.now();
  const tbs = encodeTbs({
    serial: Buffer.from('4a0b0c0d0e0f10111213141516171819', 'hex'),
    signatureAlgorithm: 'ecdsa-sha256',
    issuerName: encodeName(options.issuer?.name ?? options.subject),
    subjectName: encodeName(options.subject),
    notBefore: options.notBefore ?? now - 3_600_000,
    notAfter: options.notAfter ?? now + 30 * 86_400_000,
    spki: spkiDer(createPublicKey(privateKey)),
    extensions: [...options.extensions],
  });
  const der = encodeCertificate(tbs, 'ecdsa-sha256', sign('sha256', tbs, options.issuer?.privateKey ?? privateKey));
  return { der, pem: certificatePem(der), privateKey };
}

/** basicConstraints cA=TRUE with a pathLenConstraint whose INTEGER content is `pathLenBytes`. */
export function basicConstraintsWithRawPathLen(pathLenBytes: Buffer): Buffer {
  return extension(OID.basicConstraints, true, seq(bool(true), tlv(TAG.INTEGER, pathLenBytes)));
}

/** The extensions a usable CA certificate carries (cA, keyCertSign, its own SKI). */
export function caExtensions(privateKey: KeyObject, pathLen?: number): Buffer[] {
  return [basicConstraintsExtension(true, pathLen), keyUsageExtension([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign]), subjectKeyIdentifierExtension(spkiKeyIdentifier(spkiDer(createPublicKey(privateKey))))];
}
