import type net from 'node:net';
import type tls from 'node:tls';
import { acceptedSocketOf } from '../../tls/accepted-socket.js';

/**
 * Remembers each accepted connection's remote address, so a refused handshake can be logged
 * with it. By the time 'tlsClientError' fires the socket may already be closed (the client hung
 * up, reset, or we destroyed it) and `remoteAddress` then reads undefined.
 *
 * Node gives 'tlsClientError' the TLS socket and 'connection' the raw socket it wraps, linked
 * only through tls/accepted-socket.ts. Without that link the lookup just misses.
 */
export function rememberRemotes(server: tls.Server): (socket: tls.TLSSocket) => string | undefined {
  const remotes = new WeakMap<net.Socket, string>();
  server.on('connection', (raw: net.Socket) => {
    if (raw.remoteAddress !== undefined) remotes.set(raw, raw.remoteAddress);
  });
  return (socket) => {
    if (socket.remoteAddress !== undefined) return socket.remoteAddress;
    const raw = acceptedSocketOf(socket);
    return raw === null ? undefined : remotes.get(raw);
  };
}
