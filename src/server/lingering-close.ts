/**
 * Lingering close, as nginx (lingering_close) and Apache do it.
 *
 * When a server answers before the request body has arrived (413 for a body over the limit, 431,
 * 417, any answer on a connection the client asked to close) and then closes the connection, the
 * client's upload is still in flight. Closing a socket with unread bytes in its receive buffer, or
 * receiving bytes after the close, makes the kernel send a TCP RST, and a client that is still
 * writing (node:https uploading 1-4 MB) often sees ECONNRESET or EPIPE before it reads the coded
 * answer that was already on its way. So instead of closing at once the server half-closes (its
 * answer and FIN go out), keeps reading and throwing away what the client still sends, and closes
 * when the client closes too, or when a time or byte limit is reached.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Server as HttpServer } from 'node:http';
import { Server as TlsServer } from 'node:tls';

export interface LingerLimits {
  /** Longest a connection lingers in all (nginx lingering_time is 30 s; an agent's upload is a few KiB). */
  readonly totalMs: number;
  /** Longest silence from the client before the connection is closed (nginx lingering_timeout). */
  readonly idleMs: number;
  /** Most bytes read and thrown away; past that the client is uploading for no one. */
  readonly maxBytes: number;
}

export const LINGER_LIMITS: LingerLimits = Object.freeze({ totalMs: 5_000, idleMs: 2_000, maxBytes: 16 * 1024 * 1024 });

const lingering = new WeakSet<Duplex>();

/**
 * Ends `socket` (writing `lastBytes` first, when given) and reads and discards whatever the peer
 * still sends until it closes its side, falls silent for `idleMs`, has sent `maxBytes`, or
 * `totalMs` has passed; then destroys the socket. Works on plain and TLS sockets alike: on TLS the
 * end sends close_notify before the FIN, and reading goes on through the TLS layer.
 */
export function closeLingering(socket: Duplex, lastBytes?: string, limits: LingerLimits = LINGER_LIMITS): void {
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  const destroy = (): void => {
    socket.destroy();
  };
  // Both timers are cleared on close, so a closed socket leaves nothing behind.
  const total = setTimeout(destroy, limits.totalMs);
  const idle = setTimeout(destroy, limits.idleMs);
  socket.once('close', () => {
    clearTimeout(total);
    clearTimeout(idle);
  });
  // A peer that resets while we linger is the very thing that may happen here: not worth a log,
  // and the listener keeps the error from being unhandled.
  socket.on('error', destroy);
  // The peer closed its side: nothing more will arrive, so close ours once our answer is flushed
  // (destroying before that would throw away the answer still queued in node).
  socket.once('end', () => {
    if (socket.writableFinished) destroy();
    else socket.once('finish', destroy);
  });
  // The HTTP parser must not see these bytes: a server that closes after its answer serves no
  // further request on the connection (RFC 9112 section 9.6), and a body would only be parsed to
  // be dropped. Removing node's own 'data' listener stops that; adding ours detaches the parser
  // from the socket's handle (node:http does that whenever a 'data' listener is added) so the
  // bytes come here instead, and each chunk is dropped as soon as it is counted.
  socket.removeAllListeners('data');
  let received = 0;
  socket.on('data', (chunk: Buffer) => {
    received += chunk.length;
    if (received > limits.maxBytes) destroy();
    else idle.refresh();
  });
  // node:http pauses a connection whose answers back up, and a 'data' listener does not resume a
  // paused stream; unread, the receive buffer would fill, which is what ends in the reset.
  socket.resume();
  restartReading(socket);
  if (socket.writable) {
    if (lastBytes === undefined) socket.end();
    else socket.end(lastBytes);
  }
}

/** The libuv handle under a net.Socket, as node's own net.js drives it. */
interface StreamHandle {
  reading?: boolean;
  readStart?: () => number;
}

/**
 * On plain TCP node:http lets its parser read the socket's handle directly, bypassing the stream,
 * and stops the handle when it pauses the connection. Once the parser is detached the stream still
 * believes a read is under way (it started one before the parser took over), so resume() never
 * starts the handle again: nothing is read, and a client uploading more than the kernel buffers
 * (about 4 MiB on loopback) is reset when the idle limit ends the linger (outside QA: python's
 * http.client, 8 MiB to the monitoring listener). TLS sockets read through their own layer and
 * are reading already.
 */
function restartReading(socket: Duplex): void {
  const handle = (socket as Duplex & { _handle?: StreamHandle | null })._handle;
  if (handle === null || handle === undefined || handle.reading !== false || typeof handle.readStart !== 'function') return;
  handle.reading = true;
  handle.readStart();
}

/**
 * Makes node:http close `server`'s connections lingering. After the last answer on a connection
 * (Connection: close, or a request whose body was refused unread) node's server calls the
 * socket's destroySoon(), which ends it and destroys it the moment the answer is flushed: the
 * close that resets a client still uploading. That call is node's only way of closing a connection
 * it answered, so it is replaced on each of the server's sockets. A client that read its answer
 * closes at once, which ends the linger at once; Apache lingers on every close for the same reason.
 */
export function lingerOnClose(server: HttpServer | TlsServer, limits: LingerLimits = LINGER_LIMITS): void {
  // node:https hands the TLS socket to the HTTP machinery on secureConnection; 'connection' carries
  // the TCP socket underneath it, which must not be read directly.
  const event = server instanceof TlsServer ? 'secureConnection' : 'connection';
  // One function for every socket: node calls it as the socket's method.
  function destroySoonLingering(this: Socket): void {
    closeLingering(this, undefined, limits);
  }
  server.on(event, (socket: Socket) => {
    socket.destroySoon = destroySoonLingering;
  });
}
