import type net from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../core/clock.js';
import { refusalReason, type CredentialSource, type Credentials } from '../credentials.js';
import { listenOn } from './listen.js';
import { compileAllowList } from './authz.js';
import { classifyResult, connectTcp } from './backend.js';
import { recordConnection } from './conn-log.js';
import { checkHostPort, checkTimeout, describeError, type HostPort } from './errors.js';
import { createTunnelAcceptor, TUNNEL_ALPN } from './inbound-tunnel.js';
import { proxyMetrics } from './metrics.js';
import { DEFAULT_PING_INTERVAL_MS } from './session-liveness.js';
import { peerSpiffeId } from './peer-identity.js';
import { peerExpired, peerNotAfter } from './peer-expiry.js';
import { abortSocket, relay, type Relay } from './relay.js';
import { rememberRemotes } from './remote-address.js';
import { drainThenDestroy, RelaySet, trackSockets } from './shutdown.js';
import { capHandshakes } from './handshake-cap.js';
import { LogBudget } from '../../observability/log-budget.js';
import { inboundContextOptions, type TlsTuning } from './tls-settings.js';
import { createClientChainGuard } from '../../tls/client-chain-guard.js';
import { peerChain } from '../../tls/peer-chain.js';
import { acceptedSocketOf } from '../../tls/accepted-socket.js';
import { bundleRoots } from '../chain-check.js';

/** Logged for a client that completed the handshake without a certificate. */
export const NO_CLIENT_CERTIFICATE = 'no client certificate presented: this inbound requires the peer\'s SVID (mutual TLS)';

/** Timeouts in milliseconds. */
export interface ProxyTimeouts {
  /** TCP connect to the backend/upstream (default 5 s). */
  readonly connectMs?: number;
  /** A connection with no traffic either way is closed after this (default 1 h). */
  readonly idleMs?: number;
  /** TLS handshake (default 10 s). */
  readonly handshakeMs?: number;
  /**
   * Pooled HTTP/2 tunnel sessions are PINGed this often (default 30 s); a peer that does not
   * answer within `connectMs` is dropped with the session.
   */
  readonly tunnelPingMs?: number;
  /**
   * Outbound only: a pooled tunnel session with no stream for this long is closed while another
   * session can take its place (default 60 s).
   */
  readonly tunnelIdleMs?: number;
}

/** Options of {@link startInbound}. */
export interface InboundOptions {
  readonly listen: HostPort;
  readonly backend: HostPort;
  /** Exact SPIFFE IDs or prefix patterns ending in `/*`. */
  readonly allow: readonly string[];
  readonly credentials: CredentialSource;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly timeouts?: ProxyTimeouts;
  /** `auto` (default) also serves HTTP/2 CONNECT tunnels from other agents on ALPN `h2`. */
  readonly tunnel?: 'auto' | 'off';
  readonly tls?: TlsTuning;
  readonly clock?: Clock;
}

/** A running inbound listener. */
export interface InboundProxy {
  readonly address: HostPort;
  /** Application connections (plain or tunnelled) currently open. */
  readonly activeConnections: number;
  /** Accepted TCP connections not yet closed, including those still in the TLS handshake. */
  readonly openSockets: number;
  /**
   * Stops accepting, lets open connections finish for up to `drainMs` (default 10 s; tunnel
   * sessions get GOAWAY), then destroys what is left.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

/**
 * Picks the ALPN answer. A Rampart agent offers the tunnel's own ID; every other client gets the
 * plain byte pipe and one of its own protocols back, which the backend then speaks: `http/1.1`
 * when offered (curl and browsers offer `h2` too, and most backends speak HTTP/1.1 only), else
 * what it offered first, such as `h2` from a gRPC client. Node rejects the handshake when the
 * callback returns nothing.
 */
function selectAlpn({ protocols }: { protocols: string[] }): string | undefined {
  if (protocols.includes(TUNNEL_ALPN)) return TUNNEL_ALPN;
  if (protocols.includes('http/1.1')) return 'http/1.1';
  return protocols[0];
}

/**
 * Defence in depth behind the listener's no-resumption setting: a resumed TLS session carries
 * the client certificate of an earlier handshake, never checked against today's bundle, so
 * one that slipped through (a future setting, a library change) is refused, not trusted.
 */
function resumedSession(socket: tls.TLSSocket): string | undefined {
  return socket.isSessionReused() ? 'resumed TLS session refused: the client certificate must be verified by a full handshake' : undefined;
}

const DEFAULT_CONNECT_MS = 5_000;
const DEFAULT_IDLE_MS = 3_600_000;
const DEFAULT_HANDSHAKE_MS = 10_000;
// About 18 MB of TLS state at most (see handshake-cap.ts); far above what real callers keep open.
const HANDSHAKES_AT_ONCE = 256;
// Failed handshakes logged one by one each minute; a flood of them is summed up (log-budget.ts).
const HANDSHAKE_FAILURES_LOGGED_PER_MINUTE = 100;

/**
 * Starts the inbound mTLS proxy: requires a client SVID that chains to the bundle and whose
 * SPIFFE ID matches `allow`, then pipes plain TCP to the backend. Resolves once listening.
 */
export async function startInbound(options: InboundOptions): Promise<InboundProxy> {
  const listen = checkHostPort('inbound listen', options.listen, true);
  const backend = checkHostPort('inbound backend', options.backend, false);
  const isAllowed = compileAllowList(options.allow);
  const connectMs = checkTimeout('timeouts.connectMs', options.timeouts?.connectMs, DEFAULT_CONNECT_MS);
  const idleMs = checkTimeout('timeouts.idleMs', options.timeouts?.idleMs, DEFAULT_IDLE_MS);
  const handshakeMs = checkTimeout('timeouts.handshakeMs', options.timeouts?.handshakeMs, DEFAULT_HANDSHAKE_MS);
  const pingIntervalMs = checkTimeout('timeouts.tunnelPingMs', options.timeouts?.tunnelPingMs, DEFAULT_PING_INTERVAL_MS);
  const clock = options.clock ?? systemClock;
  const log = options.logger.child({ component: 'inbound', listen: `${listen.host}:${listen.port}` });
  const metrics = await proxyMetrics(options.registry);
  const relays = new RelaySet();
  const tunnels = createTunnelAcceptor({ backend, connectMs, idleMs, pingIntervalMs, logger: log, metrics, clock, relays });

  let creds: Credentials | null = options.credentials.current();
  let refusing: string | null = null;

  const server = tls.createServer({
    ...(creds === null ? {} : inboundContextOptions(creds, options.tls)),
    requestCert: true,
    // A client whose chain does not verify is refused in secureConnection below, after the
    // client-chain guard has read that chain; node would otherwise free it unread.
    rejectUnauthorized: false,
    handshakeTimeout: handshakeMs,
    allowHalfOpen: true,
    noDelay: true,
    ...(options.tunnel === 'off' ? {} : { ALPNCallback: selectAlpn }),
  });

  const sockets = trackSockets(server);
  const remoteOf = rememberRemotes(server);
  // Half-open only once secure, and only for the plain relay (see secureConnection): during the
  // handshake a client's FIN (it refused our certificate, say) must close the connection now,
  // not leave it to the handshake timeout. Runs before node's own listener, which copies the raw
  // socket's setting into the TLS socket.
  server.prependListener('connection', (raw: net.Socket) => {
    raw.allowHalfOpen = false;
  });

  const unsubscribe = options.credentials.onChange((next) => {
    try {
      // Only new handshakes use the new context; open connections keep theirs.
      server.setSecureContext(inboundContextOptions(next, options.tls));
      const bundleChanged = creds?.bundlePem !== next.bundlePem;
      creds = next;
      log.info({ spiffeId: next.spiffeId, notAfter: new Date(next.notAfter).toISOString() }, 'inbound credentials updated');
      // A tunnel session outlives its handshake and carries new application connections: one
      // whose peer lost its root (a forced retire) must not go on opening them.
      if (bundleChanged) tunnels.refuseUnanchored(bundleRoots(next.bundlePem));
    } catch (err) {
      log.error({ error: describeError(err) }, 'new credentials rejected by TLS; keeping the previous ones');
    }
  });

  const guard = createClientChainGuard({
    onBan: (address, reason, banMs) =>
      log.warn({ event: 'client-address-banned', address, reason, banSeconds: banMs / 1000 }, 'client address banned: its TLS client certificate chain costs far more to check than any SVID chain, or its chains keep failing verification'),
    onRefused: () => metrics.connection('inbound', 'address-banned'),
  });
  // Refused on arrival by the guard: counted once there as address-banned, so the TLS error that
  // node then raises for its torn-down handshake is not counted again as tls-error (outside QA).
  const refusedOnArrival = new WeakSet<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    if (guard.refuses(socket)) refusedOnArrival.add(socket);
  });
  server.prependListener('secureConnection', (socket: tls.TLSSocket) => guard.handshakeEnded(socket));
  server.prependListener('tlsClientError', (_err: Error, socket: tls.TLSSocket) => guard.handshakeEnded(socket));

  server.on('connection', (socket: net.Socket) => {
    if (socket.destroyed) return;
    const now = clock.now();
    const reason = refusalReason(creds, now);
    if (reason !== refusing) {
      if (reason === null) log.info('inbound has a valid certificate again; accepting connections');
      else log.error({ notAfter: creds === null ? undefined : new Date(creds.notAfter).toISOString() }, `inbound ${reason}; refusing connections`);
      refusing = reason;
    }
    if (reason === null) return;
    recordConnection(log, metrics, { direction: 'inbound', mode: 'mtls', peer: undefined, peerSerial: undefined, remote: socket.remoteAddress, startedAt: now, result: 'no-credentials', bytesIn: 0, bytesOut: 0 }, now);
    socket.destroy();
  });

  /** A client that hangs up mid-handshake usually refused our certificate; say so. */
  const describeHandshakeError = (err: Error): string | undefined =>
    (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? 'the client closed the connection during the TLS handshake (does it trust this agent\'s certificate?)' : describeError(err);

  const handshakeFailureLines = new LogBudget(HANDSHAKE_FAILURES_LOGGED_PER_MINUTE, 60_000, () => clock.now(), (suppressed, windowMs) =>
    log.warn({ event: 'handshake-failures-summarized', suppressed, windowMs }, `${suppressed} more failed TLS handshakes in the last minute were counted (rampart_agent_connections_total) but not logged one by one`),
  );
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    const remote = remoteOf(socket);
    // With a tlsClientError listener Node leaves the socket to us, even on a handshake
    // timeout: without this, a client that never speaks TLS holds its fd forever.
    socket.destroy();
    // The hang-up of a connection refused above for want of credentials was already recorded.
    if (refusing !== null && (err as NodeJS.ErrnoException).code === 'ECONNRESET') return;
    const accepted = acceptedSocketOf(socket);
    if (accepted !== null && refusedOnArrival.has(accepted)) return;
    // A TLS 1.2 client whose chain failed verification may still get here, before secureConnection:
    // the verification code is the reason worth logging, not the hang-up that follows.
    const refusedChain = (socket as tls.TLSSocket & { authorizationError?: string }).authorizationError;
    const error = refusedChain ? `client certificate refused: ${refusedChain}` : describeHandshakeError(err);
    if (handshakeFailureLines.take()) recordConnection(log, metrics, { direction: 'inbound', mode: 'mtls', peer: undefined, peerSerial: undefined, remote, startedAt: clock.now(), result: 'tls-error', bytesIn: 0, bytesOut: 0, error }, clock.now());
    else metrics.connection('inbound', 'tls-error');
  });

  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const startedAt = clock.now();
    socket.on('error', () => {
      // Reported by the relay; an error before it starts must not crash the process.
    });
    // Banned by the guard for its chain.
    if (socket.destroyed) return;
    if (!socket.authorized) {
      // Logged as before, when node closed such a client itself (rejectUnauthorized). Node names a
      // client that sent no certificate at all UNABLE_TO_GET_ISSUER_CERT, as if a chain were broken.
      const sentNone = Object.keys(socket.getPeerCertificate() ?? {}).length === 0;
      const error = sentNone ? NO_CLIENT_CERTIFICATE : `client certificate refused: ${String(socket.authorizationError)}`;
      if (handshakeFailureLines.take()) recordConnection(log, metrics, { direction: 'inbound', mode: 'mtls', peer: undefined, peerSerial: undefined, remote: remoteOf(socket), startedAt, result: 'tls-error', bytesIn: 0, bytesOut: 0, error }, clock.now());
      else metrics.connection('inbound', 'tls-error');
      socket.destroy();
      return;
    }
    const cert = socket.getPeerCertificate();
    const peer = peerSpiffeId(cert);
    const serial = 'serialNumber' in cert ? cert.serialNumber : undefined;
    const remote = socket.remoteAddress;
    const notAfter = peerNotAfter(cert);
    const denial = peer.ok ? (isAllowed(peer.id) ? (resumedSession(socket) ?? peerExpired(notAfter, startedAt)) : 'peer SPIFFE ID is not in the allow list') : peer.reason;
    if (!peer.ok || denial !== undefined) {
      // A would-be tunnel is logged as one, so a refused agent is told from a refused app.
      const mode = socket.alpnProtocol === TUNNEL_ALPN ? 'tunnel' : 'mtls';
      recordConnection(log, metrics, { direction: 'inbound', mode, peer: peer.ok ? peer.id : undefined, peerSerial: serial, remote, startedAt, result: 'denied', bytesIn: 0, bytesOut: 0, error: denial }, clock.now());
      // A peer agent with a valid SVID is told why on its tunnel, so its own log says refused
      // instead of a connection reset (outside QA); anything else is just closed.
      if (mode === 'tunnel' && peer.ok && denial !== undefined) tunnels.accept(socket, { id: peer.id, serial, remote, notAfter, refusal: denial });
      else socket.destroy();
      return;
    }
    if (socket.alpnProtocol === TUNNEL_ALPN) {
      // Read already by the chain guard (cached per connection), so this costs nothing more.
      tunnels.accept(socket, { id: peer.id, serial, remote, notAfter, chain: peerChain(socket).certs });
      return;
    }
    // Only the plain relay is half-open (the client's end is passed to the backend while the
    // answer still flows). An HTTP/2 session must not be: it learns of the peer's FIN only when
    // the socket ends, and a half-open socket never does, so a dead peer's session, socket and
    // backend connections stayed until the PING timeout or for ever.
    socket.allowHalfOpen = true;
    let r: Relay | undefined;
    const upstream = connectTcp(backend, connectMs, idleMs, () => r?.abort('idle-timeout'));
    const handle = relay(
      { stream: socket, abort: () => socket.destroy() },
      { stream: upstream, abort: () => abortSocket(upstream) },
      (result, err) => {
        relays.delete(handle);
        metrics.active('inbound', -1);
        recordConnection(log, metrics, { direction: 'inbound', mode: 'mtls', peer: peer.id, peerSerial: serial, remote, startedAt, result: classifyResult(result, err), bytesIn: upstream.bytesWritten, bytesOut: upstream.bytesRead, error: describeError(err) }, clock.now());
      },
    );
    r = handle;
    relays.add(handle);
    metrics.active('inbound', 1);
  });

  let lastDropWarning = -Infinity;
  const handshakes = capHandshakes(server, HANDSHAKES_AT_ONCE, () => {
    metrics.connection('inbound', 'handshake-dropped');
    // Counted each time, said at most once a minute: a flood would otherwise flood the log too.
    const at = clock.now();
    if (at - lastDropWarning < 60_000) return;
    lastDropWarning = at;
    log.warn({ event: 'inbound-handshakes-dropped', inProgress: handshakes.inProgress(), limit: HANDSHAKES_AT_ONCE }, 'inbound holds as many TLS handshakes as it may; dropping stalled ones (or, in a burst, new ones). A flood of connections that do not finish TLS?');
  });

  const addr = await listenOn(server, listen);
  server.on('error', (err) => log.error({ error: describeError(err) }, 'inbound listener error'));
  log.info({ port: addr.port, backend: `${backend.host}:${backend.port}`, tunnel: options.tunnel ?? 'auto' }, 'inbound listening');

  let closing: Promise<void> | undefined;
  return {
    address: { host: addr.address, port: addr.port },
    get activeConnections() {
      return relays.size;
    },
    get openSockets() {
      return sockets.size;
    },
    close(opts) {
      closing ??= (async () => {
        unsubscribe();
        tunnels.drain();
        await drainThenDestroy(server, relays, sockets, opts?.drainMs ?? 10_000, () => tunnels.destroyAll());
        handshakeFailureLines.flush();
        log.info('inbound closed');
      })();
      return closing;
    },
  };
}
