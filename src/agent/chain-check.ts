/**
 * Whether a certificate chain still leads to a root of the trust bundle. After a root is retired
 * (forced, or a leaf that outlived the retire wait), the agent's certificate can stop chaining to
 * the bundle its peers trust; it must then renew at once instead of at its scheduled time.
 */
import { X509Certificate } from 'node:crypto';
import { decodeCertificates } from '../core/pki/pem.js';

/** True when the last certificate of `chainPem` is a bundle root or is issued and signed by one. */
export function chainsToBundle(chainPem: string, bundlePem: string): boolean {
  const chain = decodeCertificates(chainPem);
  const top = chain[chain.length - 1];
  if (top === undefined) return false;
  const topCert = new X509Certificate(top);
  for (const der of decodeCertificates(bundlePem)) {
    if (der.equals(top)) return true;
    const root = new X509Certificate(der);
    if (topCert.checkIssued(root) && topCert.verify(root.publicKey)) return true;
  }
  return false;
}
