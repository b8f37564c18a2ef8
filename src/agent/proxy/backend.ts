import net from 'node:net';
import type { HostPort } from './errors.js';

/** An error raised when a TCP connect does not finish within the connect timeout. */
export class ConnectTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(target: HostPort, ms: number) {
    super(`connect to ${target.host}:${target.port} timed out after ${ms} ms`);
  }
}

/**
 * Opens a half-open-capable TCP connection with a connect timeout, then switches the same
 * socket timer to the idle timeout (one timer per connection, reset by the kernel-level
 * activity Node already tracks, so no per-chunk work).
 */
export function connectTcp(target: HostPort, connectMs: number, idleMs: number, onIdle: () => void): net.Socket {
  const socket = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
  socket.setTimeout(connectMs);
  socket.once('connect', () => socket.setTimeout(idleMs));
  socket.on('timeout', () => {
    if (socket.connecting) socket.destroy(new ConnectTimeoutError(target, connectMs));
    else onIdle();
  });
  return socket;
}

/** Names a relay outcome for logs and metrics, singling out connect timeouts. */
export function classifyResult(result: string, err: Error | undefined): string {
  if (err instanceof ConnectTimeoutError) return 'connect-timeout';
  if ((err as NodeJS.ErrnoException | undefined)?.code === 'RAMPART_ERR_PEER_ID_MISMATCH') return 'upstream-id-mismatch';
  return result;
}
