import net from 'node:net';
import type { Duplex } from 'node:stream';

/** One side of a relayed connection and how to tear it down abruptly (RST, stream reset). */
export interface RelayEnd {
  readonly stream: Duplex;
  /** Abort the side so the peer sees a reset rather than a clean end. */
  readonly abort: () => void;
  /**
   * Passes the other side's end on to this one (default `stream.end()`); for a side that cannot
   * take an end yet, such as a TLS socket still in its handshake.
   */
  readonly end?: () => void;
}

/** How a relayed connection ended. */
export type RelayResult = 'ok' | 'downstream-error' | 'upstream-error' | 'reset' | 'idle-timeout' | 'shutdown' | 'refused';

/** Handle on a running relay. */
export interface Relay {
  /** Tears down both sides, recording `result` (and `error`) unless an earlier failure was recorded. */
  abort(result: RelayResult, error?: Error): void;
}

/** Aborts a plain TCP socket with an RST so the peer notices, or destroys any other socket. */
export function abortSocket(socket: net.Socket): void {
  if (socket.destroyed) return;
  // resetAndDestroy only works on raw TCP handles; TLS sockets and unconnected ones are destroyed.
  // Nor once our side has ended: libuv refuses to reset a handle it has shut down (EINVAL), and
  // node 20 then drops the handle without closing it. The fd leaked, the server stopped counting
  // the connection, and the handle spun at 100 % CPU once the peer's data or FIN came, holding the
  // process up after SIGTERM (outside QA). A plain close is as good here: the peer already has
  // our FIN, and unread data it still sends makes the kernel answer with an RST anyway.
  if (!socket.connecting && !socket.writableEnded && socket.constructor === net.Socket) {
    try {
      socket.resetAndDestroy();
      return;
    } catch {
      // Fall through to a plain destroy.
    }
  }
  socket.destroy();
}

function endedCleanly(s: Duplex): boolean {
  return s.readableEnded && s.writableFinished;
}

/**
 * Copies `src` into `dst` with backpressure and passes an end on. This is what `pipe` does for
 * one source and one destination, without its per-pipe bookkeeping (about ten listeners and
 * closures per direction, each promoted to the old generation when connections are short-lived);
 * errors and closes are handled once for both directions by {@link relay}.
 */
function pump(src: Duplex, dst: Duplex, endDst: () => void): void {
  src.on('data', (chunk: Buffer) => {
    if (!dst.write(chunk)) src.pause();
  });
  dst.on('drain', () => src.resume());
  // A source that half-closed with nothing buffered, before the relay was attached (while the
  // outbound waited for a tunnel session), has already emitted its 'end': pass it on now.
  if (src.readableEnded) endDst();
  else src.once('end', endDst);
}

/**
 * Relays two duplex streams into each other, keeping half-close (an end on one side becomes an
 * end on the other while the reverse direction keeps flowing) and turning an error or abrupt
 * close on either side into an abort of the other. `done` runs once, after both sides closed.
 * `pipeline` is not used because it destroys a duplex as soon as one direction finishes, which
 * would break half-close.
 */
export function relay(down: RelayEnd, up: RelayEnd, done: (result: RelayResult, error?: Error) => void): Relay {
  let result: RelayResult = 'ok';
  let firstError: Error | undefined;
  let closed = 0;
  let aborted = false;
  const abort = (r: RelayResult, err?: Error): void => {
    if (result === 'ok') {
      result = r;
      firstError = err;
    }
    if (aborted) return;
    aborted = true;
    down.abort();
    up.abort();
  };
  const onClose = (side: Duplex, other: Duplex): void => {
    // A side that closed without finishing both directions was reset: pass that on.
    if (!endedCleanly(side) && !other.destroyed) abort('reset');
    if (++closed === 2) done(result, firstError);
  };
  down.stream.on('error', (err: Error) => abort('downstream-error', err));
  up.stream.on('error', (err: Error) => abort('upstream-error', err));
  down.stream.once('close', () => onClose(down.stream, up.stream));
  up.stream.once('close', () => onClose(up.stream, down.stream));
  pump(down.stream, up.stream, up.end ?? (() => up.stream.end()));
  pump(up.stream, down.stream, down.end ?? (() => down.stream.end()));
  return { abort };
}
