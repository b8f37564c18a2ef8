/**
 * Shuts out, for a while, addresses whose TLS client certificates cost a listener far more to
 * check than they cost to send.
 *
 * The CA's API listener asks every client for a certificate (the svid authenticator and the
 * agents' bundle reports need it), and the agent's inbound requires one. OpenSSL checks the
 * signatures of whatever chain a client presents inside the handshake, with the keys that chain
 * carries, before node hands the socket over. Node accepts every chain at that point (its verify callback returns 1 and leaves the verdict to
 * the application), offers no hook before the check, and no setting for the verify depth. So a
 * made-up chain of RSA keys with public exponents as long as their 3,072-bit moduli (OpenSSL caps
 * exponents only for larger moduli) costs about 6 ms of CPU a link: a 70-link chain, 129 kB,
 * cost the CA 380 ms a handshake, where a real SVID handshake costs 1.5 ms and the attacker
 * about as much. Nothing can stop the first such handshake, so the address that sent it is
 * refused at once on its next connections, and its other handshakes still in progress are cut:
 * each address gets about one costly handshake per ban, and bans double with each offence.
 *
 * A chain that did not verify is costly when it holds a key no Rampart chain has (anything but
 * P-256, P-384, Ed25519, Ed448, or RSA of at most 4,096 bits with a public exponent under 2^32),
 * is longer than MAX_PEER_CHAIN, or came in a handshake of more than 8 KiB. A ban is per
 * address: clients sharing one behind NAT share its ban, and an attacker holding many addresses
 * gets one costly handshake per address per ban. What this cannot catch: a chain node shows in
 * part (see handshakeCost) whose hidden links are few and costly per byte; a port that asks no
 * client for a certificate would be the whole answer.
 */
import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { LRUCache } from 'lru-cache';
import { MAX_PEER_CHAIN, peerChain, type PeerChain } from './peer-chain.js';

export interface ClientChainGuardOptions {
  /** First ban of an address (default 10 s); each further offence doubles it. */
  readonly firstBanMs?: number;
  /** Longest ban (default 10 min). */
  readonly maxBanMs?: number;
  /** An address's offences are forgotten this long after its last one (default 1 h). */
  readonly forgetAfterMs?: number;
  readonly now?: () => number;
  /** Called when an address is banned: the address key, why, and for how long. */
  readonly onBan?: BanReport;
  /** Called once per connection refused because its address is banned. */
  readonly onRefused?: () => void;
}

export interface ClientChainGuard {
  /** True (and the socket destroyed) when its address is banned; else the socket is followed through its handshake. */
  refuses(socket: Socket): boolean;
  /** Reads the chain a finished or failed handshake presented and bans its address if it was costly. */
  handshakeEnded(socket: TLSSocket): void;
  /** Addresses banned now. */
  banned(): number;
}

/** Called with each ban, for the listener's own log and metrics. */
export type BanReport = (address: string, reason: string, banMs: number) => void;

const DEFAULT_FIRST_BAN_MS = 10_000;
const DEFAULT_MAX_BAN_MS = 600_000;
const DEFAULT_FORGET_AFTER_MS = 3_600_000;
// A memory bound: a flood from more addresses than this forgets the oldest offenders first.
const MAX_ADDRESSES = 10_000;

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
  if (chain.certs.length === 0) return null;
  const costly = costlyChain(chain);
  if (costly !== null) return costly;
  if (bytesFromClient !== undefined && bytesFromClient > MAX_UNVERIFIED_HANDSHAKE_BYTES) {
    return `an unverified chain in a handshake of ${bytesFromClient} bytes, more than any SVID chain takes`;
  }
  return null;
}

/**
 * The unit an address is banned in: the address itself, an IPv4-mapped IPv6 one as IPv4. Not an
 * IPv6 /64, as services on the internet often ban: a Kubernetes node's pods share one, and one
 * pod would shut out its neighbours.
 */
export function addressKey(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

interface Offender {
  offences: number;
  bannedUntil: number;
}

export function createClientChainGuard(options: ClientChainGuardOptions = {}): ClientChainGuard {
  const now = options.now ?? Date.now;
  const firstBanMs = options.firstBanMs ?? DEFAULT_FIRST_BAN_MS;
  const maxBanMs = options.maxBanMs ?? DEFAULT_MAX_BAN_MS;
  const offenders = new LRUCache<string, Offender>({ max: MAX_ADDRESSES, ttl: options.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS, perf: { now } });
  // Sockets between arrival and the end of their handshake, by address: cut when it is banned.
  const handshaking = new Map<string, Set<Socket>>();

  const follow = (key: string, socket: Socket): void => {
    let sockets = handshaking.get(key);
    if (sockets === undefined) {
      sockets = new Set();
      handshaking.set(key, sockets);
    }
    sockets.add(socket);
    socket.once('close', () => unfollow(key, socket));
  };
  const unfollow = (key: string, socket: Socket): void => {
    const sockets = handshaking.get(key);
    if (sockets === undefined) return;
    sockets.delete(socket);
    if (sockets.size === 0) handshaking.delete(key);
  };

  const ban = (key: string, reason: string): void => {
    const at = now();
    const offender = offenders.get(key) ?? { offences: 0, bannedUntil: 0 };
    // The handshakes cut below end too, some of them costly: one wave is one offence.
    if (offender.bannedUntil > at) return;
    offender.offences++;
    const banMs = Math.min(maxBanMs, firstBanMs * 2 ** Math.min(30, offender.offences - 1));
    offender.bannedUntil = Math.max(offender.bannedUntil, at + banMs);
    offenders.set(key, offender);
    options.onBan?.(key, reason, banMs);
    // Their Certificate messages may already wait in OpenSSL's buffers: cut them before they are read.
    for (const socket of handshaking.get(key) ?? []) socket.destroy();
    handshaking.delete(key);
  };

  return {
    refuses(socket) {
      const address = socket.remoteAddress;
      if (address === undefined) return false;
      const key = addressKey(address);
      const offender = offenders.get(key);
      if (offender !== undefined && offender.bannedUntil > now()) {
        options.onRefused?.();
        socket.destroy();
        return true;
      }
      follow(key, socket);
      return false;
    },
    handshakeEnded(socket) {
      // node:tls keeps the accepted socket it wraps as _parent; without it the address is read
      // from the TLS socket, and the accepted one stays followed until it closes. The accepted
      // socket still knows its address when closed: refuses() read it, and node keeps it.
      const parent = (socket as TLSSocket & { _parent?: unknown })._parent;
      const accepted = parent instanceof Object ? (parent as Socket) : undefined;
      const address = accepted?.remoteAddress ?? socket.remoteAddress;
      if (address === undefined) return;
      const key = addressKey(address);
      if (accepted !== undefined) unfollow(key, accepted);
      const reason = handshakeCost(socket, accepted?.bytesRead);
      if (reason === null) return;
      ban(key, reason);
      // No chain of ours is costly, so nothing this connection could ask would be granted.
      socket.destroy();
    },
    banned() {
      const at = now();
      let count = 0;
      for (const offender of offenders.values()) if (offender.bannedUntil > at) count++;
      return count;
    },
  };
}
