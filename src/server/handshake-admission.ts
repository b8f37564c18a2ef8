/**
 * First come, first served TLS handshakes for the CA's listener.
 *
 * When a fleet of pods connects at once, the event loop interleaves every connection's
 * handshake and request, so all of them finish late together: clients hit their timeouts and
 * retry, spending again the handshakes the CA already paid for. Here only `limit` handshakes
 * run at a time and the rest wait unread, their ClientHello in the kernel buffer, in arrival
 * order; waiting costs the CA nothing and the earliest callers are served first.
 *
 * Under --workers each signing process accepts for itself (runtime/cluster-ca.ts), so the wait
 * measured here starts when the connection leaves the kernel's backlog.
 */
import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import { acceptedSocketOf } from '../tls/accepted-socket.js';

/** Decides on connections before they queue and hears of each handshake's end (client-chain-guard.ts). */
export interface ConnectionScreen {
  /** True when the connection is refused; the screen has destroyed it. */
  refuses(socket: Socket): boolean;
  /** False when the connection is not to be asked for a client certificate (the server's requestCert is kept otherwise). */
  asksForCertificate?(socket: Socket): boolean;
  /** Called at the end of every handshake, finished or failed, before a failed one is destroyed. */
  handshakeEnded(socket: TLSSocket): void;
}

export interface HandshakeAdmissionOptions {
  /** Handshakes in progress at once (per process). */
  readonly limit: number;
  /**
   * A slot is reclaimed after this long even if its handshake has not ended, so clients that
   * connect and then say nothing cannot hold admission up (the TLS handshake timeout closes them).
   */
  readonly slotTimeoutMs?: number;
  /**
   * Longest a connection may wait for its turn; after that it is reset without a handshake. Its
   * client has likely given up (agents time out after 15 s), and handshaking for departed
   * clients is the work that turns a flood into a collapse. A reset client backs off and
   * retries (DESIGN section 7).
   */
  readonly maxWaitMs?: number;
  /** Called once per connection reset for having waited too long. */
  readonly onShed?: () => void;
  readonly screen?: ConnectionScreen;
}

export interface HandshakeAdmission {
  /** Connections accepted but not yet handed to TLS. */
  waiting(): number;
  /** Handshakes holding a slot. */
  inProgress(): number;
  /** Connections reset without a handshake because they would have waited too long. */
  shed(): number;
  /** Stops admitting and destroys every waiting connection. */
  close(): void;
  /**
   * Whether this TLS connection's handshake asked for a client certificate, or undefined when
   * node does not say which accepted connection it wraps.
   */
  askedForCertificate(socket: TLSSocket): boolean | undefined;
}

const DEFAULT_SLOT_TIMEOUT_MS = 2_000;
const DEFAULT_MAX_WAIT_MS = 10_000;
// A memory bound only: each waiting connection is a file descriptor and a small socket object.
const MAX_QUEUED = 20_000;

/**
 * Runs `start` with the server's certificate request off. node:tls reads the server's requestCert
 * as it wraps each accepted socket (tlsConnectionListener), synchronously, so this one connection
 * is not asked for a certificate and the next ones are as before.
 */
function withoutCertificateRequest(server: TlsServer, start: () => void): void {
  const settings = server as TlsServer & { requestCert?: boolean };
  const saved = settings.requestCert;
  settings.requestCert = false;
  try {
    start();
  } finally {
    settings.requestCert = saved;
  }
}

/** Puts `server`'s TLS handshakes behind a FIFO admission gate. Call before it listens. */
export function admitHandshakesInOrder(server: TlsServer, options: HandshakeAdmissionOptions): HandshakeAdmission {
  const slotTimeoutMs = options.slotTimeoutMs ?? DEFAULT_SLOT_TIMEOUT_MS;
  const maxWaitMs = options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
  const limit = Math.max(1, Math.floor(options.limit));
  // node:tls wraps each accepted socket in its 'connection' listener; run those on admission.
  const tlsListeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  // Accepted sockets must stay unread until admitted, or TLS would miss their ClientHello.
  (server as TlsServer & { pauseOnConnect: boolean }).pauseOnConnect = true;

  const startTls = (socket: Socket): void => {
    for (const listener of tlsListeners) listener.call(server, socket);
  };

  // Waiting connections and when each arrived (parallel arrays: no object per connection).
  const queue: Socket[] = [];
  const queuedAt: number[] = [];
  let head = 0;
  let shedCount = 0;
  // Admission times of the slots in use, oldest first; any handshake end frees the oldest.
  const slots: number[] = [];
  let closed = false;
  // Accepted connections admitted with the certificate request off (screen.asksForCertificate).
  const notAsked = new WeakSet<Socket>();
  let retryTimer: NodeJS.Timeout | null = null;

  const expireSlots = (now: number): void => {
    while (slots.length > 0 && now - (slots[0] as number) >= slotTimeoutMs) slots.shift();
  };

  const shed = (socket: Socket): void => {
    shedCount++;
    options.onShed?.();
    // Unread data makes the kernel answer with a reset: the client learns at once.
    socket.destroy();
  };

  const pump = (): void => {
    if (closed) return;
    const now = Date.now();
    expireSlots(now);
    while (head < queue.length) {
      const socket = queue[head] as Socket;
      const stale = now - (queuedAt[head] as number) >= maxWaitMs;
      if (!socket.destroyed && !stale && slots.length >= limit) break;
      queue[head] = undefined as unknown as Socket;
      head++;
      if (socket.destroyed) continue;
      if (stale) {
        shed(socket);
        continue;
      }
      slots.push(now);
      if (options.screen?.asksForCertificate?.(socket) === false) {
        notAsked.add(socket);
        withoutCertificateRequest(server, () => startTls(socket));
      } else startTls(socket);
    }
    if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      queuedAt.splice(0, head);
      head = 0;
    }
    if (retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
    }
    if (head < queue.length) {
      // Nothing else may wake us if every slot is held by a silent client, and the head of
      // the queue must be reset on time even then.
      const slotFree = slots.length >= limit ? (slots[0] as number) + slotTimeoutMs : now;
      const headStale = (queuedAt[head] as number) + maxWaitMs;
      retryTimer = setTimeout(pump, Math.max(1, Math.min(slotFree, headStale) - now));
      retryTimer.unref();
    }
  };

  const release = (): void => {
    slots.shift();
    pump();
  };

  server.on('connection', (socket: Socket) => {
    if (closed) {
      socket.destroy();
      return;
    }
    if (options.screen?.refuses(socket) === true) return;
    if (queue.length - head >= MAX_QUEUED) {
      shed(socket);
      return;
    }
    queue.push(socket);
    queuedAt.push(Date.now());
    pump();
  });
  server.on('secureConnection', (socket: TLSSocket) => {
    options.screen?.handshakeEnded(socket);
    release();
  });
  server.on('tlsClientError', (_err: Error, socket: TLSSocket) => {
    options.screen?.handshakeEnded(socket);
    // With a listener attached node leaves the failed socket to us.
    socket.destroy();
    release();
  });

  return {
    waiting: () => queue.length - head,
    inProgress: () => slots.length,
    shed: () => shedCount,
    askedForCertificate(socket) {
      const accepted = acceptedSocketOf(socket);
      return accepted === null ? undefined : !notAsked.has(accepted);
    },
    close() {
      closed = true;
      if (retryTimer !== null) clearTimeout(retryTimer);
      for (let i = head; i < queue.length; i++) queue[i]?.destroy();
      queue.length = 0;
      queuedAt.length = 0;
      head = 0;
    },
  };
}
