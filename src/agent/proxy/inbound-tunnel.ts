import type { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import { anchoredIn } from '../chain-check.js';
import { classifyResult, connectTcp } from './backend.js';
import { recordConnection } from './conn-log.js';
import { describeError, type HostPort } from './errors.js';
import type { ProxyMetrics } from './metrics.js';
import { atTime, peerExpired } from './peer-expiry.js';
import { abortSocket, relay, type Relay, type RelayResult } from './relay.js';
import { H2_ERROR } from './h2/constants.js';
import { headerValue, type HeaderList } from './h2/hpack.js';
import { H2Session, type H2SessionOptions } from './h2/session.js';
import type { H2Stream } from './h2/stream.js';
import { watchSession } from './session-liveness.js';

/** Who is on the other end of an authorized tunnel session. */
export interface TunnelPeer {
  readonly id: string;
  readonly serial: string | undefined;
  readonly remote: string | undefined;
  /** The peer leaf's notAfter (ms): the session takes no streams from then on. */
  readonly notAfter: number | undefined;
  /** The chain TLS verified at the handshake (DER, leaf first), re-anchored when the bundle changes. */
  readonly chain?: readonly Buffer[];
  /**
   * Why this peer may not connect, for a session kept only to tell it so: its CONNECTs are
   * answered 403 with the reason, so the caller's agent logs a refusal, not a connection reset.
   */
  readonly refusal?: string;
}

/** Header carrying the reason of a 403 to a refused tunnel peer. */
export const REFUSAL_HEADER = 'rampart-refusal';

/**
 * The ALPN protocol ID of an agent-to-agent tunnel: HTTP/2 CONNECT streams over one mTLS
 * connection. Not `h2`: gRPC clients offer `h2` alone too, and were taken for agents (405 to
 * every call; outside QA), where plain mTLS must carry them to their backend.
 */
export const TUNNEL_ALPN = 'rampart-tunnel';

/** HTTP/2 settings shared by both ends of the tunnel. */
export const TUNNEL_SESSION_OPTIONS: Omit<H2SessionOptions, 'role'> = {
  // Per-stream window: large enough that a bulk transfer on one app connection is not
  // throttled to 64 KiB per round trip.
  streamWindow: 1 << 20,
  // Connection-level window, shared by all the session's streams.
  connectionWindow: 16 << 20,
  maxConcurrentStreams: 1000,
  maxHeaderListSize: 16 * 1024,
};

/** Accepts authorized `h2` TLS connections and serves CONNECT streams to one backend. */
export interface TunnelAcceptor {
  accept(socket: tls.TLSSocket, peer: TunnelPeer): void;
  /** Graceful: GOAWAY so no new streams start; open streams continue. */
  drain(): void;
  /** Tears down every session and stream. */
  destroyAll(): void;
  /**
   * The trust bundle changed: every session whose peer chain no longer leads to one of `roots`
   * takes no new stream (403 with the reason) and gets GOAWAY; streams already open finish, as
   * plain mTLS connections of that peer do. Returns how many sessions were refused.
   */
  refuseUnanchored(roots: readonly X509Certificate[]): number;
  readonly sessionCount: number;
}

export interface TunnelAcceptorOptions {
  readonly backend: HostPort;
  readonly connectMs: number;
  readonly idleMs: number;
  /** Sessions are PINGed this often; a client that does not answer within `connectMs` is dropped. */
  readonly pingIntervalMs: number;
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  readonly relays: Set<Relay>;
}

/**
 * Serves HBONE-style tunnels: each CONNECT stream on an authorized session becomes a TCP
 * connection to the backend. Authorization already happened once for the whole session.
 */
export function createTunnelAcceptor(o: TunnelAcceptorOptions): TunnelAcceptor {
  const sessions = new Map<H2Session, TunnelPeer>();

  function serve(session: H2Session, stream: H2Stream, fields: HeaderList): void {
    const peer = sessions.get(session);
    const startedAt = o.clock.now();
    stream.on('error', () => {
      // Reported through the relay or the record below; never let it crash the process.
    });
    if (peer?.refusal !== undefined) {
      // Logged once as denied when the handshake ended; each stream only learns why.
      stream.respond(403, [[REFUSAL_HEADER, peer.refusal]], true);
      session.close();
      return;
    }
    const method = headerValue(fields, ':method');
    if (method !== 'CONNECT' || peer === undefined) {
      stream.respond(405, [], true);
      recordConnection(o.logger, o.metrics, { direction: 'inbound', mode: 'tunnel', peer: peer?.id, peerSerial: peer?.serial, remote: peer?.remote, startedAt, result: 'bad-request', bytesIn: 0, bytesOut: 0, error: `tunnel stream must be CONNECT, got ${String(method)}` }, o.clock.now());
      return;
    }
    // Checked per stream as well as by the GOAWAY timer: a stream can arrive before the timer
    // fires (clock steps, a busy event loop), and it must not reach the backend either.
    const expired = peerExpired(peer.notAfter, startedAt);
    if (expired !== undefined) {
      stream.respond(403, [], true);
      session.close();
      recordConnection(o.logger, o.metrics, { direction: 'inbound', mode: 'tunnel', peer: peer.id, peerSerial: peer.serial, remote: peer.remote, startedAt, result: 'denied', bytesIn: 0, bytesOut: 0, error: expired }, o.clock.now());
      return;
    }
    let r: Relay | undefined;
    const backend = connectTcp(o.backend, o.connectMs, o.idleMs, () => r?.abort('idle-timeout'));
    backend.once('connect', () => stream.respond(200));
    const relayHandle = relay(
      { stream, abort: () => stream.close(H2_ERROR.CONNECT_ERROR) },
      { stream: backend, abort: () => abortSocket(backend) },
      (result: RelayResult, err?: Error) => {
        o.relays.delete(relayHandle);
        o.metrics.active('inbound', -1);
        recordConnection(o.logger, o.metrics, { direction: 'inbound', mode: 'tunnel', peer: peer.id, peerSerial: peer.serial, remote: peer.remote, startedAt, result: classifyResult(result, err), bytesIn: backend.bytesWritten, bytesOut: backend.bytesRead, error: describeError(err) }, o.clock.now());
      },
    );
    r = relayHandle;
    o.relays.add(relayHandle);
    o.metrics.active('inbound', 1);
  }

  function open(socket: tls.TLSSocket, peer: TunnelPeer): void {
    const session = new H2Session(socket, { role: 'server', ...TUNNEL_SESSION_OPTIONS });
    sessions.set(session, peer);
    o.metrics.tunnelOpen('inbound', 1);
    const startedAt = o.clock.now();
    let streams = 0;
    watchSession(session, { intervalMs: o.pingIntervalMs, timeoutMs: o.connectMs });
    // The peer was checked once, at the handshake. When its certificate expires the session
    // must end too (GOAWAY: open streams finish, the peer's pool opens a new session with its
    // renewed certificate), or an expired identity keeps opening streams for ever.
    const cancelExpiry =
      peer.notAfter === undefined
        ? () => {}
        : atTime(o.clock, peer.notAfter, () => {
            if (session.closed) return;
            o.logger.info({ direction: 'inbound', mode: 'tunnel-session', peer: peer.id, peerSerial: peer.serial, remote: peer.remote, notAfter: new Date(peer.notAfter as number).toISOString() }, 'tunnel peer certificate expired; sending GOAWAY');
            session.close();
          });
    session.on('stream', (stream: H2Stream, fields: HeaderList) => {
      streams++;
      serve(session, stream, fields);
    });
    session.once('close', (sessionError: Error | undefined) => {
      cancelExpiry();
      sessions.delete(session);
      const result = sessionError === undefined ? 'ok' : 'error';
      o.metrics.tunnelOpen('inbound', -1);
      o.metrics.tunnelSession('inbound', result);
      o.logger.info(
        { direction: 'inbound', mode: 'tunnel-session', peer: peer.id, peerSerial: peer.serial, remote: peer.remote, streams, durationMs: o.clock.now() - startedAt, result, error: describeError(sessionError) },
        'tunnel session closed',
      );
    });
  }

  return {
    accept(socket, peer) {
      // A refused peer's session is kept only to answer its first CONNECT; one that sends none
      // is not waited for. The socket itself is destroyed: a session destroyed before the
      // client's preface left it open.
      if (peer.refusal !== undefined) setTimeout(() => socket.destroy(), o.connectMs).unref();
      open(socket, peer);
    },
    drain() {
      for (const s of sessions.keys()) s.close();
    },
    destroyAll() {
      for (const s of sessions.keys()) s.destroy();
    },
    refuseUnanchored(roots) {
      let refused = 0;
      for (const [session, peer] of sessions) {
        if (peer.refusal !== undefined || peer.chain === undefined || anchoredIn(peer.chain, roots)) continue;
        const refusal = 'peer certificate no longer chains to a root of the trust bundle';
        sessions.set(session, { ...peer, refusal });
        refused++;
        o.logger.warn({ direction: 'inbound', mode: 'tunnel-session', peer: peer.id, peerSerial: peer.serial, remote: peer.remote }, `tunnel session refused: ${refusal}; sending GOAWAY`);
        session.close();
      }
      return refused;
    },
    get sessionCount() {
      return sessions.size;
    },
  };
}
