import type { Logger } from 'pino';
import type { ProxyMetrics } from './metrics.js';

/** What the proxy records about one application connection when it ends. */
export interface ConnectionRecord {
  readonly direction: 'inbound' | 'outbound';
  /** `mtls`: one TLS connection per app connection; `tunnel`: an HTTP/2 CONNECT stream. */
  readonly mode: 'mtls' | 'tunnel';
  /** SPIFFE ID the peer presented, when known. */
  readonly peer: string | undefined;
  /** Outbound only: the SPIFFE ID the upstream had to present. */
  readonly expectedPeer?: string | undefined;
  /** Serial of the peer's leaf, so operators can tell which certificate generation was used. */
  readonly peerSerial: string | undefined;
  readonly remote: string | undefined;
  readonly startedAt: number;
  readonly result: string;
  /** Application bytes received from the side that opened the connection. */
  readonly bytesIn: number;
  /** Application bytes sent back to it. */
  readonly bytesOut: number;
  readonly error?: string | undefined;
}

/** Writes the single log line and metric sample for a finished connection. */
export function recordConnection(logger: Logger, metrics: ProxyMetrics, rec: ConnectionRecord, now: number): void {
  metrics.connection(rec.direction, rec.result);
  const line = {
    direction: rec.direction,
    mode: rec.mode,
    peer: rec.peer,
    expectedPeer: rec.expectedPeer,
    peerSerial: rec.peerSerial,
    remote: rec.remote,
    bytesIn: rec.bytesIn,
    bytesOut: rec.bytesOut,
    durationMs: now - rec.startedAt,
    result: rec.result,
    error: rec.error,
  };
  if (rec.result === 'ok') logger.info(line, 'connection closed');
  else logger.warn(line, 'connection failed');
}
