/**
 * Whether a certificate chain still leads to a root of the trust bundle. After a root is retired
 * (forced, or a leaf that outlived the retire wait), the agent's certificate can stop chaining to
 * the bundle its peers trust; it must then renew at once instead of at its scheduled time. A
 * peer's chain, verified by TLS against the bundle of its handshake, is asked the same question
 * when the bundle changes under a session that outlives the handshake.
 */
import { X509Certificate } from 'node:crypto';
import { decodeCertificates } from '../core/pki/pem.js';

/** True when the last certificate of `chainPem` is a bundle root or is issued and signed by one. */
export function chainsToBundle(chainPem: string, bundlePem: string): boolean {
  const chain = decodeCertificates(chainPem);
  const top = chain[chain.length - 1];
  if (top === undefined) return false;
  return anchoredIn([top], bundleRoots(bundlePem));
}

/** The roots of a bundle, parsed once for many {@link anchoredIn} questions. */
export function bundleRoots(bundlePem: string): readonly X509Certificate[] {
  return decodeCertificates(bundlePem).map((der) => new X509Certificate(der));
}

/**
 * True when one of `certs` (DER) is a bundle root or is issued and signed by one. The chain's own
 * structure (CA flags, path length, names) was already checked by TLS at the handshake; what a
 * changed bundle can take away is only its anchor.
 */
export function anchoredIn(certs: readonly Buffer[], roots: readonly X509Certificate[]): boolean {
  for (const der of certs) {
    const cert = new X509Certificate(der);
    for (const root of roots) {
      if (der.equals(root.raw)) return true;
      if (cert.checkIssued(root) && cert.verify(root.publicKey)) return true;
    }
  }
  return false;
}
