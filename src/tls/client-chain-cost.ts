/**
 * What a TLS client's certificate chain cost the listener to check, judged after the handshake
 * from what node shows of it (client-chain-guard.ts acts on the verdicts).
 *
 * A chain that did not verify is costly when it holds a key no Rampart chain has (anything but
 * P-256, P-384, Ed25519, Ed448, or RSA of at most 4,096 bits with a public exponent under 2^32),
 * is longer than MAX_PEER_CHAIN, or came in a handshake of more than 8 KiB. What node shows of a
 * chain can hide a few costly links per handshake (see handshakeCost); a chain that did not
 * verify in a handshake carrying more bytes than the shown chain explains is reported too
 * (unverifiedChain), so that an address sending such chains again and again can be dealt with.
 */
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { MAX_PEER_CHAIN, peerChain, type PeerChain } from './peer-chain.js';

const MAX_RSA_MODULUS_BITS = 4096;
const MAX_RSA_EXPONENT = 2n ** 32n;
// EC curves whose checks cost about what a P-256 one does; an outside QA session measured 7
// links of secp521r1 at 16.8 ms a handshake and of the binary sect571r1 at 24-31 ms.
const CHEAP_CURVES: ReadonlySet<string> = new Set(['prime256v1', 'secp384r1']);
// A ClientHello with a post-quantum key share (about 1.8 kB), an SVID chain with a plugged-in
// CA's few certificates, CertificateVerify and Finished stay well under it. A chain node shows
// only in part can hide more links than MAX_PEER_CHAIN behind a decoy issuer (below), but not
// their bytes.
const MAX_UNVERIFIED_HANDSHAKE_BYTES = 8192;
// What a client sends in its handshake besides the certificates node shows: a ClientHello (up to
// about 1.9 kB with a post-quantum key share), CertificateVerify (at most 512 bytes of RSA-4096
// signature), Finished, record framing, and the first bytes of application data that often ride
// along (an HTTP/2 preface, a short request). Measured on loopback: 518 to 885 bytes for openssl
// s_client, curl, Python and node. More than this beyond the shown chain may be links node does
// not show; less cannot hide more than two costly ones of about 1.3 kB each (11.7 and 21.5 ms
// more per handshake than none, measured on the development VM).
const HANDSHAKE_BYTES_BESIDES_SHOWN_CHAIN = 3072;

/** Why verifying with this certificate's key would cost far more than any Rampart chain, or null. */
function costlyKey(der: Buffer): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    // OpenSSL parsed it in the handshake; what node cannot parse again it did not verify with.
    return null;
  }
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'rsa':
    case 'rsa-pss':
      if ((details.modulusLength ?? 0) > MAX_RSA_MODULUS_BITS) return `an RSA key of ${details.modulusLength} bits`;
      if ((details.publicExponent ?? 0n) >= MAX_RSA_EXPONENT) return 'an RSA public exponent of 2^32 or more';
      return null;
    case 'ec':
      if (details.namedCurve === undefined) return 'an EC key with explicit curve parameters';
      return CHEAP_CURVES.has(details.namedCurve) ? null : `an EC key on ${details.namedCurve}`;
    case 'ed25519':
    case 'ed448':
      return null;
    default:
      // DSA, and whatever else no Rampart chain holds.
      return `a ${String(key.asymmetricKeyType)} key`;
  }
}

/** Why this chain was costly to check, or null. */
export function costlyChain(chain: PeerChain): string | null {
  if (chain.truncated) return `a chain of more than ${MAX_PEER_CHAIN} certificates`;
  for (const der of chain.certs) {
    const why = costlyKey(der);
    if (why !== null) return `a certificate with ${why}`;
  }
  return null;
}

/**
 * Why this handshake was costly, or null. What node shows of a chain is what it links from the
 * leaf up, one issuer per name; OpenSSL prefers an issuer that is valid now, so an expired decoy
 * under the right name shows node a short cheap chain while OpenSSL checks a long costly one
 * behind it (outside QA: 70 hidden links, 430 ms a handshake). The bytes the client sent give
 * that away. A connection whose TLS state node has already freed is let go: a reset that
 * overtakes the data makes the kernel drop it unread, and judged by bytes alone, a client that
 * sent a large ClientHello and no certificate was banned.
 */
export function handshakeCost(socket: TLSSocket, bytesFromClient: number | undefined): string | null {
  const chain = unverifiedPeerChain(socket);
  if (chain === null) return null;
  const costly = costlyChain(chain);
  if (costly !== null) return costly;
  if (bytesFromClient !== undefined && bytesFromClient > MAX_UNVERIFIED_HANDSHAKE_BYTES) {
    return `an unverified chain in a handshake of ${bytesFromClient} bytes, more than any SVID chain takes`;
  }
  return null;
}

/**
 * Why a chain the client presented that did not verify may have cost more than node shows of it
 * (node's code, such as UNABLE_TO_GET_ISSUER_CERT_LOCALLY), or null when it verified, none came,
 * node has freed the connection's TLS state, or the handshake's bytes are all accounted for by
 * the chain node shows. That last case is an expired SVID, one from a retired root or another
 * trust domain: cheap to check, and a healthy peer's passing state, which must not count against
 * its address (outside QA: agents sharing an address were banned, and the CA stopped asking
 * them for certificates, for one agent still holding a leaf of a force-retired root).
 */
export function unverifiedChain(socket: TLSSocket, bytesFromClient: number | undefined): string | null {
  const chain = unverifiedPeerChain(socket);
  if (chain === null) return null;
  if (bytesFromClient !== undefined && bytesFromClient <= bytesOfSentCertificates(chain) + HANDSHAKE_BYTES_BESIDES_SHOWN_CHAIN) return null;
  const code = (socket as TLSSocket & { authorizationError?: unknown }).authorizationError;
  return code === undefined || code === null ? 'a chain that did not verify' : String(code);
}

/**
 * The DER bytes of the shown certificates the client may have sent. node completes the chain with
 * a root from the listener's own store when it finds one, which the client did not send; roots
 * are self-issued, so self-issued certificates are left out (one the client did send is then
 * counted as possibly hiding something, the safe side).
 */
function bytesOfSentCertificates(chain: PeerChain): number {
  let bytes = 0;
  for (const der of chain.certs) {
    let selfIssued = false;
    try {
      const cert = new X509Certificate(der);
      selfIssued = cert.checkIssued(cert);
    } catch {
      // Counted: OpenSSL parsed it in the handshake.
    }
    if (!selfIssued) bytes += der.length;
  }
  return bytes;
}

/** The chain a client presented if it did not verify; null when none came, it verified, or node has freed the TLS state. */
function unverifiedPeerChain(socket: TLSSocket): PeerChain | null {
  // node keeps the connection's TLS state as `ssl` until it frees it, as the socket closes;
  // asked about a freed state, node 20 crashes (SIGSEGV).
  const tlsState = (socket as TLSSocket & { ssl?: unknown }).ssl;
  if (tlsState === null || tlsState === undefined) return null;
  // A chain that verified leads to a trusted root through certificates no costly key can sign
  // its way into. (getPeerX509Certificate() would be the cheap way to see whether a client sent
  // any certificate, but in node 20 a call to it leaves getPeerCertificate(true) without the
  // issuer chain; peerChain() answers a client without one in microseconds too.)
  if (socket.authorized) return null;
  let chain: PeerChain;
  try {
    chain = peerChain(socket);
  } catch {
    return null;
  }
  return chain.certs.length === 0 ? null : chain;
}
