/**
 * One presented or trusted certificate, decoded once into the facts SVID path validation needs:
 * node:crypto for signatures, the core DER parser for the extensions node does not expose
 * faithfully (`X509Certificate.ca` is false for cA=TRUE without keyCertSign, and it has no
 * pathLen).
 */
import { X509Certificate } from 'node:crypto';
import { basicConstraints, extKeyUsages, keyUsageBits, parseCertificate, uriSans } from '../core/pki/certificate.js';

/** keyUsage bit numbers from RFC 5280. */
const KEY_CERT_SIGN = 5;
const CRL_SIGN = 6;

/** The decoded facts of one certificate. */
export interface SvidCert {
  readonly x509: X509Certificate;
  readonly subject: Buffer;
  readonly issuer: Buffer;
  readonly notBefore: number;
  readonly notAfter: number;
  /** basicConstraints cA=TRUE (and keyCertSign when keyUsage is present). */
  readonly isCa: boolean;
  /** basicConstraints cA=TRUE, whatever the key usage says. */
  readonly claimsCa: boolean;
  /** keyCertSign or cRLSign is set. */
  readonly canSignCerts: boolean;
  readonly pathLen: number | undefined;
  readonly extKeyUsages: readonly string[];
  readonly uris: readonly string[];
}

/** Decodes a DER certificate; throws (any error) when it is not a well-formed certificate. */
export function decodeSvidCert(der: Buffer): SvidCert {
  const x509 = new X509Certificate(der);
  const parsed = parseCertificate(Buffer.from(x509.raw));
  const bc = basicConstraints(parsed);
  const usage = keyUsageBits(parsed);
  const hasKeyUsage = parsed.extensions.has('2.5.29.15');
  const claimsCa = bc?.ca === true;
  return {
    x509,
    subject: parsed.subject,
    issuer: parsed.issuer,
    notBefore: parsed.notBefore,
    notAfter: parsed.notAfter,
    isCa: claimsCa && (!hasKeyUsage || usage.includes(KEY_CERT_SIGN)),
    claimsCa,
    canSignCerts: usage.includes(KEY_CERT_SIGN) || usage.includes(CRL_SIGN),
    pathLen: bc?.pathLen,
    extKeyUsages: extKeyUsages(parsed),
    uris: uriSans(parsed),
  };
}

/** True when `parent`'s subject names `child`'s issuer and `parent`'s key verifies `child`. */
export function signedBy(child: SvidCert, parent: SvidCert): boolean {
  if (!child.issuer.equals(parent.subject)) return false;
  try {
    return child.x509.verify(parent.x509.publicKey);
  } catch {
    return false;
  }
}

/** True when `now` (ms) lies within the certificate's validity. */
export function validAt(cert: SvidCert, now: number): boolean {
  return cert.notBefore <= now && now <= cert.notAfter;
}
