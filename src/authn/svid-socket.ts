/**
 * Extracts the client certificate chain a TLS peer presented, as the DER list the `svid`
 * authenticator expects. The server must request certificates without rejecting unknown ones
 * (`requestCert: true, rejectUnauthorized: false`): the svid authenticator does the verifying,
 * against the trust bundle of the moment rather than the one the TLS context was built with.
 */
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';

/** Most certificates collected from one peer; a chain longer than this is refused anyway. */
const MAX_CERTS = 8;

/** Returns the peer's certificates, leaf first, or an empty list when it presented none. */
export function clientCertChainFromSocket(socket: TLSSocket): Buffer[] {
  // Node answers an empty object (not null) when the peer sent no certificate.
  const leaf = socket.getPeerCertificate(true) as Partial<DetailedPeerCertificate> | null;
  if (leaf === null || leaf.raw === undefined) return [];
  const chain: Buffer[] = [];
  const seen = new Set<string>();
  let current: Partial<DetailedPeerCertificate> | undefined = leaf;
  // Node links each certificate to its issuer; a self-signed one links to itself, ending the walk.
  while (current?.raw !== undefined && chain.length < MAX_CERTS) {
    const key = current.raw.toString('base64');
    if (seen.has(key)) break;
    seen.add(key);
    chain.push(Buffer.from(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}
