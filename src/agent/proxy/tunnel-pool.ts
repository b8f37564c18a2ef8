import type tls from 'node:tls';
import type { Logger } from 'pino';
import type { Clock } from '../../core/clock.js';
import { describeError, type HostPort } from './errors.js';
import { H2Session } from './h2/session.js';
import type { H2Stream } from './h2/stream.js';
import { TUNNEL_ALPN, TUNNEL_SESSION_OPTIONS } from './inbound-tunnel.js';
import type { ProxyMetrics } from './metrics.js';
import { DEFAULT_PING_INTERVAL_MS, watchSession, type SessionLiveness } from './session-liveness.js';
import { connectUpstream, spiffeServerIdentityCheck, upstreamLeaf, whenSecure } from './upstream-tls.js';

/** The TLS context the pool should use for new sessions, tagged with its generation. */
export interface ContextGeneration {
  readonly context: tls.SecureContext;
  readonly generation: number;
  /** Own leaf NotAfter (ms): a session is retired before its client certificate expires. */
  readonly notAfter: number;
}

interface Entry {
  readonly session: H2Session;
  readonly generation: number;
  readonly peerSerial: string | undefined;
  readonly liveness: SessionLiveness;
  streams: number;
  draining: boolean;
  retireTimer: NodeJS.Timeout | undefined;
  idleTimer: NodeJS.Timeout | undefined;
}

/** A CONNECT stream opened on a pooled session. */
export interface TunnelStream {
  readonly stream: H2Stream;
  readonly peerSerial: string | undefined;
}

export interface TunnelPoolOptions {
  readonly upstream: HostPort;
  readonly expectedId: string;
  readonly context: () => ContextGeneration;
  readonly connectMs: number;
  /** Already bound to the upstream (outbound.ts): lines here must not name it again. */
  readonly logger: Logger;
  readonly metrics: ProxyMetrics;
  readonly clock: Clock;
  /** Open another session once every live one carries this many streams (default 100). */
  readonly maxStreamsPerSession?: number;
  /** After an upstream refused `h2`, ask again after this long (default 5 min). */
  readonly reprobeMs?: number;
  /** Every session is PINGed this often and dropped if no answer comes within `connectMs`. */
  readonly pingIntervalMs?: number;
  /**
   * A session that has carried no stream for this long is closed while another session of the
   * pool can take its place (default 60 s), so the pool shrinks back after a burst.
   */
  readonly idleSessionMs?: number;
}

const MAX_TIMER_MS = 2_147_483_647;

/** The upstream ended the handshake with TLS alert 120: it speaks none of the protocols offered. */
function refusedOurAlpn(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL';
}
// A stream waiting for room gives up after this many new sessions filled up before it: with
// 100 streams per session that is a burst of 6,400 application connections at once.
const MAX_SESSION_OPENS_PER_STREAM = 64;
/** Default of {@link TunnelPoolOptions.idleSessionMs}. */
export const DEFAULT_IDLE_SESSION_MS = 60_000;

/**
 * Keeps long-lived HTTP/2-over-mTLS sessions to one upstream agent so an application
 * connection costs a CONNECT stream instead of a handshake. Upstreams that do not select ALPN
 * `rampart-tunnel` (stunnel, haproxy, openssl s_server, an agent with tunnelling off), or that
 * refuse it with a no_application_protocol alert (Go's net/http), are remembered as plain, and
 * the caller falls back to one mTLS connection per application connection.
 */
export class TunnelPool {
  private readonly entries = new Set<Entry>();
  private connecting: Promise<Entry | null> | null = null;
  private plainUntil = 0;
  /** The probe that found the upstream plain: an mTLS connection ready for the next caller. */
  private spare: { socket: tls.TLSSocket; generation: number } | undefined;
  private closed = false;
  private readonly checkIdentity;
  private readonly authority: string;
  private readonly maxStreams: number;
  private readonly reprobeMs: number;
  private readonly pingIntervalMs: number;
  private readonly idleSessionMs: number;

  constructor(private readonly o: TunnelPoolOptions) {
    this.checkIdentity = spiffeServerIdentityCheck(o.expectedId);
    this.authority = `${o.upstream.host.includes(':') ? `[${o.upstream.host}]` : o.upstream.host}:${o.upstream.port}`;
    this.maxStreams = o.maxStreamsPerSession ?? 100;
    this.reprobeMs = o.reprobeMs ?? 300_000;
    this.pingIntervalMs = o.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.idleSessionMs = o.idleSessionMs ?? DEFAULT_IDLE_SESSION_MS;
  }

  /** True while the upstream is known not to speak the tunnel. */
  usePlain(): boolean {
    return this.closed || this.o.clock.now() < this.plainUntil;
  }

  /**
   * The verified mTLS connection of the probe that found the upstream plain, for the application
   * connection that waited on it, or undefined. Dropping it instead cost a handshake, and the
   * upstream saw a client hang up during the handshake (its TLS tickets unread) and logged a
   * tls-error warning at every re-probe.
   */
  takeSpare(): tls.TLSSocket | undefined {
    const spare = this.spare;
    this.spare = undefined;
    if (spare === undefined || spare.socket.destroyed || spare.generation !== this.o.context().generation) {
      spare?.socket.destroy();
      return undefined;
    }
    return spare.socket;
  }

  /** Number of live sessions (for tests and metrics). */
  get sessionCount(): number {
    return this.entries.size;
  }

  /**
   * Opens a CONNECT stream on a session that is already up, or returns undefined when none can
   * take one (the caller then awaits {@link open}). The common case thus costs no promise and
   * no deferred callbacks per application connection.
   */
  tryOpen(): TunnelStream | undefined {
    const entry = this.pick();
    if (entry === null) return undefined;
    try {
      return this.request(entry);
    } catch {
      // The session went away since pick (GOAWAY, socket loss); open() starts a fresh one.
      this.retire(entry);
      return undefined;
    }
  }

  /**
   * Opens a CONNECT stream, or resolves null when the caller should use plain mTLS instead.
   *
   * A burst of application connections all wait on the same new session. Once it is full the
   * rest must not pile onto it (a session refuses streams beyond the peer's limit, and a full
   * one would stall them until others close), so whoever finds no room opens the next session. Picking
   * and opening the stream happen in one synchronous step so two waiters never both take the
   * last slot.
   */
  async open(): Promise<TunnelStream | null> {
    let failures = 0;
    for (let opened = 0; ; ) {
      const entry = this.pick();
      if (entry !== null) {
        try {
          return this.request(entry);
        } catch (err) {
          // The session went away between pick and request (GOAWAY, socket loss): retire it
          // and try once more on a fresh session before failing the application connection.
          this.retire(entry);
          if (++failures > 1) throw err;
          continue;
        }
      }
      if (this.closed) return null;
      if (opened++ >= MAX_SESSION_OPENS_PER_STREAM) throw new Error(`no tunnel session had room for another stream after ${MAX_SESSION_OPENS_PER_STREAM} new sessions`);
      if ((await this.connect()) === null) return null;
    }
  }

  private request(entry: Entry): TunnelStream {
    const stream = entry.session.request([[':method', 'CONNECT'], [':authority', this.authority]]);
    entry.streams++;
    if (entry.idleTimer !== undefined) {
      clearTimeout(entry.idleTimer);
      entry.idleTimer = undefined;
    }
    // The peer answers a CONNECT within its own connect timeout. A stream still waiting after
    // ours makes the session suspect: a PING tells a slow backend from a dead peer.
    const answerDue = setTimeout(() => entry.liveness.probe(), this.o.connectMs);
    stream.once('response', () => clearTimeout(answerDue));
    stream.once('close', () => {
      clearTimeout(answerDue);
      entry.streams--;
      if (entry.draining && entry.streams === 0) entry.session.close();
      else if (entry.streams === 0) this.armIdle(entry);
    });
    return { stream, peerSerial: entry.peerSerial };
  }

  /**
   * New credentials: sessions of older generations take no new streams and close once their
   * open streams are done, so in-flight application connections are never cut.
   */
  rotate(generation: number): void {
    for (const e of this.entries) if (e.generation < generation) this.retire(e);
  }

  /** GOAWAY on every session; open streams continue until they end. */
  drain(): void {
    this.closed = true;
    this.takeSpare()?.destroy();
    for (const e of this.entries) this.retire(e);
  }

  /** Destroys every session at once. */
  destroyAll(): void {
    this.closed = true;
    this.takeSpare()?.destroy();
    for (const e of this.entries) e.session.destroy();
  }

  /** A session that may take new streams: live, not draining, of the current credentials. */
  private takesStreams(e: Entry, generation: number): boolean {
    return !e.draining && e.generation === generation && e.session.canOpenStream();
  }

  private pick(): Entry | null {
    const gen = this.o.context().generation;
    let best: Entry | null = null;
    for (const e of this.entries) {
      if (!this.takesStreams(e, gen) || e.streams >= this.maxStreams) continue;
      if (best === null || e.streams < best.streams) best = e;
    }
    return best;
  }

  /**
   * After a burst every session the burst opened sits idle, each with its TLS connection, its
   * PINGs and the inbound's memory for it. One is kept for the next connection; the others go
   * once they stay unused for idleSessionMs.
   */
  private armIdle(e: Entry): void {
    if (e.idleTimer !== undefined) clearTimeout(e.idleTimer);
    e.idleTimer = setTimeout(() => {
      e.idleTimer = undefined;
      if (e.streams > 0 || e.draining) return;
      const gen = this.o.context().generation;
      for (const other of this.entries) {
        if (other !== e && this.takesStreams(other, gen)) {
          this.retire(e);
          return;
        }
      }
    }, this.idleSessionMs);
    e.idleTimer.unref();
  }

  private retire(e: Entry): void {
    if (e.draining) return;
    e.draining = true;
    if (e.retireTimer !== undefined) clearTimeout(e.retireTimer);
    if (e.idleTimer !== undefined) clearTimeout(e.idleTimer);
    if (e.streams === 0) e.session.close();
  }

  private connect(): Promise<Entry | null> {
    this.connecting ??= this.establish().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  private async establish(): Promise<Entry | null> {
    const { context, generation, notAfter } = this.o.context();
    const socket = connectUpstream(this.o.upstream, context, this.checkIdentity, { alpn: [TUNNEL_ALPN] });
    socket.on('error', () => {
      // Surfaced through whenSecure or the session's own error handler.
    });
    try {
      await whenSecure(socket, this.o.connectMs);
    } catch (err) {
      if (!refusedOurAlpn(err)) throw err;
      // A server that enforces ALPN (Go's net/http, Node's https with ALPNProtocols) ends a
      // handshake that offers only the tunnel's ID. It is plain; the caller's own connection
      // offers no ALPN at all, as stunnel would, and the server then takes it.
      this.plainUntil = this.o.clock.now() + this.reprobeMs;
      this.o.logger.info(`upstream refused ALPN ${TUNNEL_ALPN} (no_application_protocol); using one mTLS connection per application connection`);
      return null;
    }
    if (socket.alpnProtocol !== TUNNEL_ALPN) {
      // Kept for the caller that waited on this probe (outbound.ts takes it at once); one that
      // is not taken, because that caller went away, is closed with the next probe or drain.
      this.spare?.socket.destroy();
      this.spare = this.closed ? undefined : { socket, generation };
      if (this.closed) socket.destroy();
      this.plainUntil = this.o.clock.now() + this.reprobeMs;
      this.o.logger.info(`upstream did not select ALPN ${TUNNEL_ALPN}; using one mTLS connection per application connection`);
      return null;
    }
    socket.setKeepAlive(true, 30_000);
    const cert = upstreamLeaf(socket);
    const peerSerial = 'serialNumber' in cert ? cert.serialNumber : undefined;
    const peerNotAfter = 'valid_to' in cert ? Date.parse(cert.valid_to) : Number.NaN;
    const session = new H2Session(socket, { role: 'client', ...TUNNEL_SESSION_OPTIONS });
    const liveness = watchSession(session, { intervalMs: this.pingIntervalMs, timeoutMs: this.o.connectMs });
    const entry: Entry = { session, generation, peerSerial, liveness, streams: 0, draining: false, retireTimer: undefined, idleTimer: undefined };
    this.entries.add(entry);
    this.o.metrics.tunnelOpen('outbound', 1);
    const startedAt = this.o.clock.now();
    session.on('goaway', () => this.retire(entry));
    session.once('close', (sessionError: Error | undefined) => {
      this.entries.delete(entry);
      if (entry.retireTimer !== undefined) clearTimeout(entry.retireTimer);
      if (entry.idleTimer !== undefined) clearTimeout(entry.idleTimer);
      const result = sessionError === undefined ? 'ok' : 'error';
      this.o.metrics.tunnelOpen('outbound', -1);
      this.o.metrics.tunnelSession('outbound', result);
      this.o.logger.info(
        { direction: 'outbound', mode: 'tunnel-session', peer: this.o.expectedId, peerSerial, durationMs: this.o.clock.now() - startedAt, result, error: describeError(sessionError) },
        'tunnel session closed',
      );
    });
    // Retire before either certificate expires so no stream rides a session the peer would
    // no longer accept on a fresh handshake.
    const expiresAt = Math.min(notAfter, Number.isNaN(peerNotAfter) ? Infinity : peerNotAfter);
    if (Number.isFinite(expiresAt)) {
      entry.retireTimer = setTimeout(() => this.retire(entry), Math.min(MAX_TIMER_MS, Math.max(0, expiresAt - this.o.clock.now())));
      entry.retireTimer.unref();
    }
    if (this.closed) this.retire(entry);
    // A session opened for a waiter that then found room elsewhere may never carry a stream.
    else this.armIdle(entry);
    return entry;
  }
}
