/** The certificate chain a TLS client presented, read once per connection. */
import type { TLSSocket } from 'node:tls';

interface PeerCert {
  raw: Buffer;
  issuerCertificate?: PeerCert;
}

/** Longest chain read; a Rampart SVID chain is a leaf, its intermediate and a plugged CA's few. */
export const MAX_PEER_CHAIN = 8;

export interface PeerChain {
  /** DER of the certificates the peer sent, leaf first, linked by issuer, at most MAX_PEER_CHAIN. */
  readonly certs: readonly Buffer[];
  /** The peer's chain went on past MAX_PEER_CHAIN certificates. */
  readonly truncated: boolean;
}

const NONE: PeerChain = { certs: [], truncated: false };

// getPeerCertificate(true) turns the whole chain into JS objects (~220 µs for an SVID and its
// intermediate), and agents send a request per bundle long-poll on a kept-alive connection. A
// connection's client certificate cannot change (TLS 1.3 has no renegotiation, and the API
// listener refuses it for TLS 1.2: server/tls.ts), so it is read once per connection, at the end
// of the handshake (client-chain-guard.ts) or at the first request.
const chainPerConnection = new WeakMap<object, PeerChain>();

export function peerChain(socket: TLSSocket): PeerChain {
  const cached = chainPerConnection.get(socket);
  if (cached !== undefined) return cached;
  const chain = readPeerChain(socket);
  chainPerConnection.set(socket, chain);
  return chain;
}

function readPeerChain(socket: TLSSocket): PeerChain {
  const leaf = socket.getPeerCertificate(true) as unknown as PeerCert | Record<string, never> | null;
  if (leaf === null || !('raw' in leaf)) return NONE;
  const certs: Buffer[] = [];
  const seen = new Set<string>();
  let cert: PeerCert | undefined = leaf as PeerCert;
  while (cert?.raw) {
    const key = cert.raw.toString('base64');
    if (seen.has(key)) break;
    if (certs.length === MAX_PEER_CHAIN) return { certs, truncated: true };
    seen.add(key);
    certs.push(cert.raw);
    cert = cert.issuerCertificate;
  }
  return { certs, truncated: false };
}
