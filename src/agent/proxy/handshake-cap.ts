/**
 * A bound on the TLS handshakes an inbound listener holds at once. Each costs an OpenSSL state
 * and buffers (about 70 KB); 3,000 connections that sent a partial ClientHello and then nothing
 * took an agent past its 256 Mi limit in outside QA, within the handshake timeout, and the
 * allocator kept most of it afterwards. Past the bound, the oldest unfinished handshake is
 * dropped if it has stalled (a real client finishes in milliseconds), so a new caller is not
 * turned away for a flood of silent ones, as a first-come queue would do; in a burst of real
 * handshakes none has stalled, and the newcomer is reset instead (its client retries).
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { acceptedSocketOf } from '../../tls/accepted-socket.js';

export interface HandshakeCap {
  /** Handshakes under way. */
  inProgress(): number;
}

/** A handshake this old has stalled: it may be dropped for a newcomer. */
const STALLED_MS = 1_000;

/** Caps `server`'s unfinished handshakes at `limit`; `onDrop` runs for each one dropped. */
export function capHandshakes(server: tls.Server, limit: number, onDrop: () => void, now: () => number = Date.now): HandshakeCap {
  // Insertion-ordered: the first entry is the oldest handshake still under way.
  const pending = new Map<net.Socket, number>();
  server.on('connection', (raw: net.Socket) => {
    // Refused already (a banned address, no credentials): no handshake to bound.
    if (raw.destroyed) return;
    const at = now();
    if (pending.size >= limit) {
      const [oldest, since] = pending.entries().next().value as [net.Socket, number];
      const victim = at - since >= STALLED_MS ? oldest : raw;
      pending.delete(victim);
      onDrop();
      victim.destroy();
      if (victim === raw) return;
    }
    pending.set(raw, at);
    raw.once('close', () => pending.delete(raw));
  });
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    // The TLS socket wraps the accepted one, which is no longer a handshake to bound.
    const raw = acceptedSocketOf(socket);
    if (raw !== null) pending.delete(raw);
  });
  return { inProgress: () => pending.size };
}
