import type net from 'node:net';
import type { Relay } from './relay.js';

/** Remembers every accepted socket so a shutdown can destroy stragglers (e.g. mid-handshake). */
export function trackSockets(server: net.Server): Set<net.Socket> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return sockets;
}

/**
 * Stops accepting, waits until every connection has closed or `drainMs` passed, then aborts
 * the remaining relays and sockets. Resolves once the listener is fully closed.
 */
export async function drainThenDestroy(
  server: net.Server,
  relays: Set<Relay>,
  sockets: Set<net.Socket>,
  drainMs: number,
  destroyExtra: () => void,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), Math.max(0, drainMs));
  });
  const first = await Promise.race([closed, expired]);
  clearTimeout(timer);
  if (first === 'expired') {
    for (const r of [...relays]) r.abort('shutdown');
    destroyExtra();
    for (const s of [...sockets]) s.destroy();
    await closed;
  }
}
