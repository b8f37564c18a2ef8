/**
 * Checks a certificate answer the way an agent relies on it, so a load test counts certificates
 * and not 200s (outside audit of the bench): the chain verifies up to one of the roots and is
 * valid now, the leaf certifies the requester's own key, and it names the requester's SPIFFE ID
 * and nothing else. Returns what is wrong, or null.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';

function signedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

export function issuedProblem(body: string, roots: readonly X509Certificate[], key: KeyObject, spiffeId: string, now = Date.now()): string | null {
  let pems: unknown;
  try {
    pems = (JSON.parse(body) as { certChain?: unknown }).certChain;
  } catch {
    return 'not JSON';
  }
  if (!Array.isArray(pems) || pems.length === 0 || !pems.every((p) => typeof p === 'string')) return 'no certChain';
  let chain: X509Certificate[];
  try {
    chain = (pems as string[]).map((p) => new X509Certificate(p));
  } catch {
    return 'unparsable';
  }
  for (let k = 0; k + 1 < chain.length; k++) if (!signedBy(chain[k]!, chain[k + 1]!)) return 'chain';
  const top = chain[chain.length - 1]!;
  if (!roots.some((root) => signedBy(top, root))) return 'chain';
  if (!chain.every((c) => Date.parse(c.validFrom) <= now && now < Date.parse(c.validTo))) return 'validity';
  const leaf = chain[0]!;
  if (leaf.ca || !leaf.checkPrivateKey(key)) return 'key';
  if (leaf.subjectAltName !== `URI:${spiffeId}`) return 'spiffe id';
  return null;
}

/** Every certificate in a PEM bundle. */
export function rootsFromPem(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => new X509Certificate(p));
}
