import type { PeerCertificate } from 'node:tls';
import tls from 'node:tls';
import type { ErrorCode } from '../../core/errors.js';
import type { HostPort } from './errors.js';
import { peerSpiffeId } from './peer-identity.js';

/** The upstream presented a valid chain but not the SPIFFE ID this outbound expects. */
export class PeerIdMismatchError extends Error {
  readonly code: ErrorCode = 'RAMPART_ERR_PEER_ID_MISMATCH';
  /** `peer`: the SPIFFE ID presented, or undefined (with `reason`) when there was none usable. */
  constructor(expected: string, readonly peer: string | undefined, reason?: string) {
    super(`upstream identity ${peer ?? `(none: ${reason ?? 'no SPIFFE ID'})`} does not match the expected ${expected}`);
  }
}

/**
 * Replaces host-name verification: the upstream's only URI SAN must equal `expectedId`.
 * Node calls this after OpenSSL verified the chain against the bundle.
 */
export function spiffeServerIdentityCheck(expectedId: string): (host: string, cert: PeerCertificate) => Error | undefined {
  return (_host, cert) => {
    const peer = peerSpiffeId(cert);
    if (!peer.ok) return new PeerIdMismatchError(expectedId, undefined, peer.reason);
    return peer.id === expectedId ? undefined : new PeerIdMismatchError(expectedId, peer.id);
  };
}

type GetPeerCertificate = (detailed?: boolean) => PeerCertificate | Record<string, never>;

/**
 * node 20 hands checkServerIdentity the peer's whole chain as JS objects
 * (`getPeerCertificate(true)`: every certificate printed, hashed three ways and exported, plus a
 * search of the trust store for the root; about 400 µs per handshake, a fifth of a full mTLS
 * connection's CPU for both ends). The check reads only the leaf's subjectaltname, so the first
 * read of this socket's peer certificate that finds one returns the leaf alone, which carries the
 * same subjectaltname; after it the socket answers as any other. If node ever reads the
 * certificate some other way, the check still runs, on what node gives it.
 */
function leafOnlyForIdentityCheck(socket: tls.TLSSocket): void {
  const leafOnce: GetPeerCertificate = function (this: tls.TLSSocket) {
    const leaf = tls.TLSSocket.prototype.getPeerCertificate.call(this, false);
    // Before the handshake there is no certificate yet: stay in place for the read that counts.
    if (!('raw' in leaf)) return leaf;
    delete (this as { getPeerCertificate?: GetPeerCertificate }).getPeerCertificate;
    leafReadOnce.set(this, leaf);
    return leaf;
  };
  (socket as { getPeerCertificate: GetPeerCertificate }).getPeerCertificate = leafOnce;
}

/** The leaf each upstream socket's first read returned; node builds a new object on every read. */
const leafReadOnce = new WeakMap<tls.TLSSocket, PeerCertificate | Record<string, never>>();

/**
 * The upstream's leaf certificate (serial, validity, SANs) as its identity check read it, or read
 * now when no check ran: a resumed session, on which node 20 keeps no peer certificate for a
 * client, so it is empty there, as before the handshake.
 */
export function upstreamLeaf(socket: tls.TLSSocket): PeerCertificate | Record<string, never> {
  return leafReadOnce.get(socket) ?? socket.getPeerCertificate();
}

/** Opens an mTLS connection to an upstream agent with this pod's SVID as client certificate. */
export function connectUpstream(
  upstream: HostPort,
  secureContext: tls.SecureContext,
  checkServerIdentity: (host: string, cert: PeerCertificate) => Error | undefined,
  extra: { alpn?: string[]; session?: Buffer | undefined; allowHalfOpen?: boolean },
): tls.TLSSocket {
  // Node's tls.connect honours allowHalfOpen (passed to the TLSSocket) though @types/node omits it.
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    host: upstream.host,
    port: upstream.port,
    secureContext,
    rejectUnauthorized: true,
    checkServerIdentity,
    allowHalfOpen: extra.allowHalfOpen ?? false,
    ...(extra.alpn === undefined ? {} : { ALPNProtocols: extra.alpn }),
    ...(extra.session === undefined ? {} : { session: extra.session }),
  };
  const socket = tls.connect(options);
  leafOnlyForIdentityCheck(socket);
  // Small request/response exchanges must not wait for Nagle.
  socket.once('connect', () => socket.setNoDelay(true));
  return socket;
}

/** Resolves once the TLS handshake (and identity check) succeeded; rejects on error or timeout. */
export function whenSecure(socket: tls.TLSSocket, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      const err = new Error(`TLS connect to upstream timed out after ${timeoutMs} ms`);
      socket.destroy(err);
      reject(err);
    }, timeoutMs);
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('upstream closed the connection during the TLS handshake'));
    };
    const onSecure = (): void => {
      cleanup();
      resolve();
    };
    function cleanup(): void {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('secureConnect', onSecure);
    }
    socket.once('error', onError);
    socket.once('close', onClose);
    socket.once('secureConnect', onSecure);
  });
}
