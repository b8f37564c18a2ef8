/**
 * Shuts out, for a while, addresses whose TLS client certificates cost a listener far more to
 * check than they cost to send.
 *
 * The CA's API listener asks every client for a certificate (the svid authenticator and the
 * agents' bundle reports need it), and the agent's inbound requires one. OpenSSL checks the
 * signatures of whatever chain a client presents inside the handshake, with the keys that chain
 * carries, before node hands the socket over. Node accepts every chain at that point (its verify
 * callback returns 1 and leaves the verdict to the application), offers no hook before the check,
 * and no setting for the verify depth. So a made-up chain of RSA keys with public exponents as
 * long as their 3,072-bit moduli (OpenSSL caps exponents only for larger moduli) costs about 6 ms
 * of CPU a link: a 70-link chain, 129 kB, cost the CA 380 ms a handshake, where a real SVID
 * handshake costs 1.5 ms and the attacker about as much.
 *
 * Nothing can stop the first such handshake. A chain judged costly (client-chain-cost.ts) bans
 * its address at once: its next connections are refused on arrival and its other handshakes
 * still in progress are cut, so each address gets about one costly handshake per ban, and bans
 * double with each offence. What node shows of a chain can hide a few costly links, about 27 ms
 * a handshake within 8 KiB, so chains that did not verify in a handshake with more bytes than the
 * shown chain explains count too: an address that presents three within 10 minutes is banned (the
 * inbound, which refuses such chains anyway) or, at the CA, whose callers can fall back on a
 * token, is not asked for a certificate for 10 minutes, and a client that is not asked sends
 * none. An expired or untrusted SVID, whose bytes are all shown, is refused and never counted.
 *
 * All of it is per address: clients sharing one behind NAT share its fate, and an attacker
 * holding many addresses gets a few costly handshakes per address.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { acceptedSocketOf } from './accepted-socket.js';
import { handshakeCost, unverifiedChain } from './client-chain-cost.js';
import { OffenderTable } from './offender-table.js';

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
  /**
   * What an address earns by presenting STRIKE_LIMIT chains that did not verify within the strike
   * window: a ban (default; a listener that refuses such chains anyway) or, for a listener whose
   * callers have other credentials, no certificate request on its connections for a while.
   */
  readonly repeatedUnverified?: 'ban' | 'stop-asking';
  /** Window in which unverified chains count together (default 10 min). */
  readonly strikeWindowMs?: number;
  /** How long an address is not asked for a certificate (default 10 min). */
  readonly stopAskingMs?: number;
  /** Called when an address stops being asked for a certificate: the address key, why, and for how long. */
  readonly onStopAsking?: BanReport;
}

export interface ClientChainGuard {
  /** True (and the socket destroyed) when its address is banned; else the socket is followed through its handshake. */
  refuses(socket: Socket): boolean;
  /** False while the socket's address is not to be asked for a client certificate. */
  asksForCertificate(socket: Socket): boolean;
  /** When an address will be asked for a client certificate again, or null when it is asked now. */
  certificateNotAskedUntil(address: string): number | null;
  /** Reads the chain a finished or failed handshake presented; bans or counts against its address. */
  handshakeEnded(socket: TLSSocket): void;
  /** Addresses banned now. */
  banned(): number;
}

/** Called with each ban (or end of certificate requests), for the listener's own log and metrics. */
export type BanReport = (address: string, reason: string, banMs: number) => void;

const DEFAULT_FIRST_BAN_MS = 10_000;
const DEFAULT_MAX_BAN_MS = 600_000;
const DEFAULT_FORGET_AFTER_MS = 3_600_000;
// A memory bound: a flood from more addresses than this forgets the oldest offenders first.
const MAX_ADDRESSES = 10_000;
/** Unverified chains from one address within the strike window that get it banned or not asked. */
export const STRIKE_LIMIT = 3;
const DEFAULT_STRIKE_WINDOW_MS = 600_000;
const DEFAULT_STOP_ASKING_MS = 600_000;

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
  /** When its recent unverified chains came, oldest first. */
  strikes: number[];
  notAskedUntil: number;
}

const newOffender = (): Offender => ({ offences: 0, bannedUntil: 0, strikes: [], notAskedUntil: 0 });

export function createClientChainGuard(options: ClientChainGuardOptions = {}): ClientChainGuard {
  const now = options.now ?? Date.now;
  const firstBanMs = options.firstBanMs ?? DEFAULT_FIRST_BAN_MS;
  const maxBanMs = options.maxBanMs ?? DEFAULT_MAX_BAN_MS;
  const strikeWindowMs = options.strikeWindowMs ?? DEFAULT_STRIKE_WINDOW_MS;
  const stopAskingMs = options.stopAskingMs ?? DEFAULT_STOP_ASKING_MS;
  const offenders = new OffenderTable<Offender>(MAX_ADDRESSES, options.forgetAfterMs ?? DEFAULT_FORGET_AFTER_MS, now);
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
    const offender = offenders.get(key) ?? newOffender();
    // The handshakes cut below end too, some of them costly: one wave is one offence.
    if (offender.bannedUntil > at) return;
    offender.offences++;
    const banMs = Math.min(maxBanMs, firstBanMs * 2 ** Math.min(30, offender.offences - 1));
    offender.bannedUntil = Math.max(offender.bannedUntil, at + banMs);
    offenders.set(key, offender);
    options.onBan?.(key, reason, banMs);
    cutHandshakes(key);
  };

  // Their Certificate messages may already wait in OpenSSL's buffers: cut them before they are read.
  const cutHandshakes = (key: string): void => {
    for (const socket of handshaking.get(key) ?? []) socket.destroy();
    handshaking.delete(key);
  };

  const strike = (key: string, why: string): void => {
    const at = now();
    const offender = offenders.get(key) ?? newOffender();
    // Handshakes that were in progress when the address was dealt with: one wave, already counted.
    if (offender.bannedUntil > at || offender.notAskedUntil > at) return;
    offender.strikes = offender.strikes.filter((t) => at - t < strikeWindowMs);
    offender.strikes.push(at);
    offenders.set(key, offender);
    if (offender.strikes.length < STRIKE_LIMIT) return;
    offender.strikes = [];
    const reason = `${STRIKE_LIMIT} client certificate chains that did not verify within ${Math.round(strikeWindowMs / 60_000)} min (the last: ${why})`;
    if (options.repeatedUnverified !== 'stop-asking') {
      ban(key, reason);
      return;
    }
    offender.notAskedUntil = at + stopAskingMs;
    options.onStopAsking?.(key, reason, stopAskingMs);
    cutHandshakes(key);
  };

  const notAskedUntil = (address: string): number | null => {
    const offender = offenders.get(addressKey(address));
    return offender !== undefined && offender.notAskedUntil > now() ? offender.notAskedUntil : null;
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
    asksForCertificate(socket) {
      return socket.remoteAddress === undefined || notAskedUntil(socket.remoteAddress) === null;
    },
    certificateNotAskedUntil: notAskedUntil,
    handshakeEnded(socket) {
      // Without the accepted socket the address is read from the TLS socket, and the accepted one
      // stays followed until it closes. The accepted socket still knows its address when closed:
      // refuses() read it, and node keeps it.
      const accepted = acceptedSocketOf(socket);
      const address = accepted?.remoteAddress ?? socket.remoteAddress;
      if (address === undefined) return;
      const key = addressKey(address);
      if (accepted !== null) unfollow(key, accepted);
      const reason = handshakeCost(socket, accepted?.bytesRead);
      if (reason === null) {
        const unverified = unverifiedChain(socket, accepted?.bytesRead);
        if (unverified !== null) strike(key, unverified);
        return;
      }
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
