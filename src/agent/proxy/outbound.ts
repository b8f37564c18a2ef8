import net from 'node:net';
import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { systemClock, type Clock } from '../../core/clock.js';
import { ConfigError } from '../../core/errors.js';
import { isValidSpiffeId } from '../../core/identity.js';
import { refusalReason, type CredentialSource, type Credentials } from '../credentials.js';
import { listenOn } from './listen.js';
import { classifyResult } from './backend.js';
import { recordConnection } from './conn-log.js';
import { checkHostPort, checkTimeout, describeError, type HostPort } from './errors.js';
import type { ProxyTimeouts } from './inbound.js';
import { proxyMetrics } from './metrics.js';
import { DEFAULT_PING_INTERVAL_MS } from './session-liveness.js';
import { abortSocket, relay, type Relay, type RelayEnd } from './relay.js';
import { H2_ERROR } from './h2/constants.js';
import { headerValue, type HeaderList } from './h2/hpack.js';
import { REFUSAL_HEADER } from './inbound-tunnel.js';
import { drainThenDestroy, RelaySet, trackSockets } from './shutdown.js';
import { buildSecureContext, type TlsTuning } from './tls-settings.js';
import { DEFAULT_IDLE_SESSION_MS, TunnelPool, type ContextGeneration, type TunnelStream } from './tunnel-pool.js';
import { connectUpstream, PeerIdMismatchError, spiffeServerIdentityCheck, upstreamLeaf } from './upstream-tls.js';

/** Options of {@link startOutbound}. */
export interface OutboundOptions {
  readonly listen: HostPort;
  readonly upstream: HostPort;
  /** The upstream's SPIFFE ID; its certificate's URI SAN must equal this exactly. */
  readonly expectedId: string;
  readonly credentials: CredentialSource;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly timeouts?: ProxyTimeouts;
  /** `auto` (default): pooled HTTP/2 tunnels when the upstream selects ALPN h2; `off`: plain mTLS always. */
  readonly tunnel?: 'auto' | 'off';
  readonly tls?: TlsTuning;
  /**
   * Offer TLS sessions for resumption on plain mTLS connections (default false: full
   * handshakes). A Rampart inbound never resumes (a resumed session skips the client
   * certificate's expiry and bundle checks), so this only helps with other upstreams.
   */
  readonly resumeSessions?: boolean;
  /** Open another tunnel session once each carries this many streams (default 100). */
  readonly maxStreamsPerSession?: number;
  readonly clock?: Clock;
}

/** A running outbound listener. */
export interface OutboundProxy {
  readonly address: HostPort;
  readonly activeConnections: number;
  /** Pooled tunnel sessions currently open to the upstream. */
  readonly tunnelSessions: number;
  /** Stops accepting, lets open connections finish for up to `drainMs` (default 10 s), then destroys the rest. */
  close(options?: { drainMs?: number }): Promise<void>;
}

/** The upstream's identity as far as known: unset until its certificate was seen. */
interface PeerSeen {
  id: string | undefined;
  serial: string | undefined;
}

const DEFAULT_CONNECT_MS = 5_000;
const DEFAULT_IDLE_MS = 3_600_000;

/**
 * Starts the outbound proxy: plain TCP from the local app, mTLS to the upstream with this
 * pod's SVID, accepting only an upstream whose SPIFFE ID equals `expectedId`.
 */
export async function startOutbound(options: OutboundOptions): Promise<OutboundProxy> {
  const listen = checkHostPort('outbound listen', options.listen, true);
  const upstream = checkHostPort('outbound upstream', options.upstream, false);
  if (typeof options.expectedId !== 'string' || !isValidSpiffeId(options.expectedId)) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `outbound expectedId must be a valid SPIFFE ID, got ${JSON.stringify(String(options.expectedId).slice(0, 80))}`);
  }
  if (options.tunnel !== undefined && options.tunnel !== 'auto' && options.tunnel !== 'off') {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `outbound tunnel must be "auto" or "off", got ${JSON.stringify(options.tunnel)}`);
  }
  const connectMs = checkTimeout('timeouts.connectMs', options.timeouts?.connectMs, DEFAULT_CONNECT_MS);
  const idleMs = checkTimeout('timeouts.idleMs', options.timeouts?.idleMs, DEFAULT_IDLE_MS);
  const pingIntervalMs = checkTimeout('timeouts.tunnelPingMs', options.timeouts?.tunnelPingMs, DEFAULT_PING_INTERVAL_MS);
  const idleSessionMs = checkTimeout('timeouts.tunnelIdleMs', options.timeouts?.tunnelIdleMs, DEFAULT_IDLE_SESSION_MS);
  const clock = options.clock ?? systemClock;
  const expectedId = options.expectedId;
  const log = options.logger.child({ component: 'outbound', listen: `${listen.host}:${listen.port}`, upstream: `${upstream.host}:${upstream.port}` });
  const metrics = await proxyMetrics(options.registry);
  const checkIdentity = spiffeServerIdentityCheck(expectedId);
  const relays = new RelaySet();

  let creds: Credentials | null = options.credentials.current();
  let current: ContextGeneration | null = null;
  let generation = 0;
  const adopt = (c: Credentials): void => {
    const context = buildSecureContext(c, options.tls);
    creds = c;
    current = { context, generation: ++generation, notAfter: c.notAfter };
    resumable = undefined;
  };
  let resumable: Buffer | undefined;
  if (creds !== null) adopt(creds);

  const pool = new TunnelPool({ upstream, expectedId, context: () => current as ContextGeneration, connectMs, pingIntervalMs, idleSessionMs, logger: log, metrics, clock, ...(options.maxStreamsPerSession === undefined ? {} : { maxStreamsPerSession: options.maxStreamsPerSession }) });
  const tunnel = options.tunnel !== 'off';

  const unsubscribe = options.credentials.onChange((next) => {
    try {
      adopt(next);
      pool.rotate(generation);
      log.info({ spiffeId: next.spiffeId, notAfter: new Date(next.notAfter).toISOString() }, 'outbound credentials updated');
    } catch (err) {
      log.error({ error: describeError(err) }, 'new credentials rejected by TLS; keeping the previous ones');
    }
  });

  let refusing: string | null = null;
  /**
   * `seen` is filled in once the upstream's certificate is known. The logged `peer` is who
   * actually answered (the presented ID when it was refused as a mismatch), never merely the
   * ID we expected, which goes in `expectedPeer`.
   */
  const finish = (mode: 'mtls' | 'tunnel', app: net.Socket, startedAt: number, remote: string | undefined, seen: PeerSeen) =>
    (result: string, err?: Error) => {
      metrics.active('outbound', -1);
      const peer = seen.id ?? (err instanceof PeerIdMismatchError ? err.peer : undefined);
      recordConnection(log, metrics, { direction: 'outbound', mode, peer, expectedPeer: expectedId, peerSerial: seen.serial, remote, startedAt, result: classifyResult(result, err), bytesIn: app.bytesRead, bytesOut: app.bytesWritten, error: describeError(err) }, clock.now());
    };

  /** `endApp` replaces passing the upstream's end on to the application as a plain end. */
  function startRelay(app: net.Socket, up: RelayEnd, done: (result: string, err?: Error) => void, endApp?: () => void): Relay {
    const down: RelayEnd = { stream: app, abort: () => abortSocket(app), end: endApp };
    const handle = relay(down, up, (result, err) => {
      relays.delete(handle);
      done(result, err);
    });
    relays.add(handle);
    // One timer per connection: Node resets it on activity without per-chunk work of ours.
    app.setTimeout(idleMs, () => handle.abort('idle-timeout'));
    return handle;
  }

  /** `spare`: an mTLS connection to the upstream already made and verified (the pool's h2 probe). */
  function plain(app: net.Socket, startedAt: number, remote: string | undefined, spare?: tls.TLSSocket): void {
    const gen = current as ContextGeneration;
    const seen: PeerSeen = { id: undefined, serial: undefined };
    let secure = false;
    const onSecure = (sock: tls.TLSSocket): void => {
      secure = true;
      sock.setTimeout(0);
      const cert = upstreamLeaf(sock);
      // secureConnect only follows a passed identity check: the peer is expectedId.
      seen.id = expectedId;
      seen.serial = 'serialNumber' in cert ? cert.serialNumber : undefined;
    };
    let sock: tls.TLSSocket;
    if (spare !== undefined) {
      sock = spare;
      // The probe was made for HTTP/2, which ends with its peer; an application connection keeps
      // half-close.
      sock.allowHalfOpen = true;
      onSecure(sock);
    } else {
      const fresh = connectUpstream(upstream, gen.context, checkIdentity, { allowHalfOpen: true, session: options.resumeSessions === true ? resumable : undefined });
      sock = fresh;
      fresh.setTimeout(connectMs, () => {
        if (!fresh.destroyed) fresh.destroy(new Error(`TLS connect to upstream timed out after ${connectMs} ms`));
      });
      fresh.once('secureConnect', () => onSecure(fresh));
      if (options.resumeSessions === true) {
        fresh.on('session', (s: Buffer) => {
          if (current === gen) resumable = s;
        });
      }
    }
    // An end passed to a TLS socket mid-handshake shuts TCP down under the handshake and is
    // lost, so an application that half-closes at once is held until the upstream is secure.
    // Data needs no such care: TLS queues writes until the handshake is done.
    const end = (): void => {
      if (secure) sock.end();
      else sock.once('secureConnect', () => sock.end());
    };
    startRelay(app, { stream: sock, abort: () => sock.destroy(), end }, finish('mtls', app, startedAt, remote, seen));
  }

  function attachTunnel(t: TunnelStream, app: net.Socket, startedAt: number, remote: string | undefined): void {
    const { stream } = t;
    // Pooled sessions only exist once the upstream proved it is expectedId.
    const seen: PeerSeen = { id: expectedId, serial: t.peerSerial };
    stream.on('error', () => {
      // Reported through the relay.
    });
    if (app.destroyed) {
      stream.close(H2_ERROR.CANCEL);
      finish('tunnel', app, startedAt, remote, seen)('downstream-error', new Error('application closed before the tunnel opened'));
      return;
    }
    // Only a 200 answer to the CONNECT means the inbound took the connection. A stream that
    // ends or closes without one was turned away (the inbound dropped our session because our
    // SPIFFE ID is not allowed, or it is going away): the application must see a reset and the
    // log a refusal, not a clean, empty close.
    let accepted = false;
    let handle: Relay | undefined;
    const turnedAway = (): void => handle?.abort('refused', new Error('the upstream closed the tunnel stream without accepting the connection; it may not allow this SPIFFE ID'));
    stream.once('close', () => {
      if (!accepted) turnedAway();
    });
    stream.once('response', (status: number, fields: HeaderList) => {
      if (status === 200) accepted = true;
      else {
        const why = headerValue(fields, REFUSAL_HEADER);
        handle?.abort('refused', new Error(`the upstream answered the tunnel CONNECT with status ${status}${why === undefined ? '' : `: ${why}`}`));
      }
    });
    const endApp = (): void => {
      if (accepted) app.end();
      else turnedAway();
    };
    handle = startRelay(app, { stream, abort: () => stream.close(H2_ERROR.CANCEL) }, finish('tunnel', app, startedAt, remote, seen), endApp);
  }

  function tunnelled(app: net.Socket, startedAt: number, remote: string | undefined): void {
    const ready = pool.tryOpen();
    if (ready !== undefined) {
      attachTunnel(ready, app, startedAt, remote);
      return;
    }
    pool.open().then(
      (t) => {
        if (t !== null) attachTunnel(t, app, startedAt, remote);
        // The relay would never see the 'close' that already happened.
        else if (app.destroyed) {
          pool.takeSpare()?.destroy();
          finish('mtls', app, startedAt, remote, { id: undefined, serial: undefined })('downstream-error', new Error('application closed before the upstream was reached'));
        } else plain(app, startedAt, remote, pool.takeSpare());
      },
      (err: unknown) => {
        abortSocket(app);
        finish('tunnel', app, startedAt, remote, { id: undefined, serial: undefined })('upstream-error', err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: false }, (app) => {
    const startedAt = clock.now();
    const remote = app.remoteAddress;
    app.on('error', () => {
      // Reported through the relay; errors before it starts must not crash the process.
    });
    const reason = current === null ? 'has no certificate yet' : refusalReason(creds, startedAt);
    if (reason !== refusing) {
      if (reason === null) log.info('outbound has a valid certificate again; accepting connections');
      else log.error(`outbound ${reason}; refusing connections`);
      refusing = reason;
    }
    if (reason !== null) {
      recordConnection(log, metrics, { direction: 'outbound', mode: 'mtls', peer: undefined, expectedPeer: expectedId, peerSerial: undefined, remote, startedAt, result: 'no-credentials', bytesIn: 0, bytesOut: 0 }, clock.now());
      abortSocket(app);
      return;
    }
    metrics.active('outbound', 1);
    if (tunnel && !pool.usePlain()) tunnelled(app, startedAt, remote);
    else plain(app, startedAt, remote);
  });
  const sockets = trackSockets(server);

  const addr = await listenOn(server, listen);
  server.on('error', (err) => log.error({ error: describeError(err) }, 'outbound listener error'));
  log.info({ port: addr.port, expectedId, tunnel: options.tunnel ?? 'auto' }, 'outbound listening');

  let closing: Promise<void> | undefined;
  return {
    address: { host: addr.address, port: addr.port },
    get activeConnections() {
      return relays.size;
    },
    get tunnelSessions() {
      return pool.sessionCount;
    },
    close(opts) {
      closing ??= (async () => {
        unsubscribe();
        pool.drain();
        await drainThenDestroy(server, relays, sockets, opts?.drainMs ?? 10_000, () => pool.destroyAll());
        // Idle pooled sessions would otherwise keep the process alive after a drain.
        pool.destroyAll();
        log.info('outbound closed');
      })();
      return closing;
    },
  };
}
