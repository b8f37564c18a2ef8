import type net from 'node:net';
import type tls from 'node:tls';

/**
 * Remembers each accepted connection's remote address, so a refused handshake can be logged
 * with it. By the time 'tlsClientError' fires the socket may already be closed (the client hung
 * up, reset, or we destroyed it) and `remoteAddress` then reads undefined.
 *
 * Node gives 'tlsClientError' the TLS socket and 'connection' the raw socket it wraps; the
 * two are linked only by the TLS socket's `_parent` (set by node's TLS server since its first
 * versions, but not typed), hence the narrow cast. Without it the lookup just misses.
 */
export function rememberRemotes(server: tls.Server): (socket: tls.TLSSocket) => string | undefined {
  const remotes = new WeakMap<net.Socket, string>();
  server.on('connection', (raw: net.Socket) => {
    if (raw.remoteAddress !== undefined) remotes.set(raw, raw.remoteAddress);
  });
  return (socket) => {
    if (socket.remoteAddress !== undefined) return socket.remoteAddress;
    const raw = (socket as tls.TLSSocket & { _parent?: net.Socket | null })._parent;
    return raw === null || raw === undefined ? undefined : remotes.get(raw);
  };
}
