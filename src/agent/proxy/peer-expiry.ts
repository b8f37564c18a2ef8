import type { PeerCertificate } from 'node:tls';
import type { Clock } from '../../core/clock.js';

/** setTimeout's ceiling (about 24.8 days); longer waits are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The peer leaf's notAfter in milliseconds, or undefined when the certificate does not say. */
export function peerNotAfter(cert: PeerCertificate | Record<string, never> | null | undefined): number | undefined {
  if (cert === null || cert === undefined || !('valid_to' in cert)) return undefined;
  const ms = Date.parse(cert.valid_to);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * Why a peer whose leaf ends at `notAfter` may not open anything more at `now`, or undefined.
 * TLS checks validity only during a full handshake; a session that lives on (a pooled tunnel,
 * a resumed TLS session) must be checked by us, or it carries an expired identity for ever.
 */
export function peerExpired(notAfter: number | undefined, now: number): string | undefined {
  if (notAfter === undefined || now < notAfter) return undefined;
  return `peer certificate expired at ${new Date(notAfter).toISOString()}`;
}

/**
 * Runs `fn` once `clock` reaches `at` (never synchronously). The wait is re-measured on the
 * clock each time a timer fires, so a long wait is split into timer-sized steps and a clock
 * that moved is honoured. Returns a cancel function.
 */
export function atTime(clock: Clock, at: number, fn: () => void): () => void {
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const wait = at - clock.now();
    timer = setTimeout(wait <= 0 ? fn : arm, Math.min(Math.max(wait, 0), MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
