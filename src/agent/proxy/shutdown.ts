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

/** The relays of one listener; `drained()` resolves once none is left. */
export class RelaySet extends Set<Relay> {
  private waiters: Array<() => void> = [];

  override delete(relay: Relay): boolean {
    const deleted = super.delete(relay);
    if (this.size === 0) for (const wake of this.waiters.splice(0)) wake();
    return deleted;
  }

  drained(): Promise<void> {
    return this.size === 0 ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/**
 * Stops accepting, waits until every connection has closed and every relay has finished (both of
 * its sides closed, its line logged), or until `drainMs` passed, then aborts the remaining relays
 * and sockets. Resolves once the listener is fully closed. The accepted sockets can all be closed
 * while a relay still waits on its backend's close; waiting for the relays too means nothing a
 * connection logs comes after the caller's own last line (a CI run once logged 'connection
 * closed' after 'agent stopped').
 */
export async function drainThenDestroy(
  server: net.Server,
  relays: RelaySet,
  sockets: Set<net.Socket>,
  drainMs: number,
  destroyExtra: () => void,
): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<'expired'>((resolve) => {
    timer = setTimeout(() => resolve('expired'), Math.max(0, drainMs));
  });
  const first = await Promise.race([closed.then(() => relays.drained()), expired]);
  clearTimeout(timer);
  if (first === 'expired') {
    for (const r of [...relays]) r.abort('shutdown');
    destroyExtra();
    for (const s of [...sockets]) s.destroy();
    await closed;
  }
}
