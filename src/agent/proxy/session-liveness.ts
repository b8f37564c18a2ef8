import type { H2Session } from './h2/session.js';

/** How often a tunnel session is checked, and how long its peer has to answer. */
export interface LivenessOptions {
  /** A PING goes out this often on every session (default 30 s). */
  readonly intervalMs: number;
  /** A session whose peer has not answered a PING within this long is destroyed. */
  readonly timeoutMs: number;
}

export const DEFAULT_PING_INTERVAL_MS = 30_000;

/** Probes one session on demand (e.g. when a stream waits too long for its answer). */
export interface SessionLiveness {
  probe(): void;
}

/**
 * A pooled session can outlive its peer without a FIN or RST ever arriving: the peer's node
 * lost power, a NAT or conntrack entry expired, a network partitioned. TCP only notices after
 * minutes of retransmissions, and every application connection opened on the session in the
 * meantime would hang. HTTP/2 PING is answered by the peer's HTTP/2 stack itself, so an
 * unanswered PING means the peer (or the path to it) is gone: the session is destroyed, which
 * resets its streams and lets the pool open a fresh one.
 */
export function watchSession(session: H2Session, o: LivenessOptions): SessionLiveness {
  let deadline: NodeJS.Timeout | undefined;
  const probe = (): void => {
    if (deadline !== undefined || session.destroyed) return;
    deadline = setTimeout(() => {
      if (!session.destroyed) session.destroy(new Error(`tunnel peer did not answer an HTTP/2 PING within ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    deadline.unref();
    const answered = (): void => {
      clearTimeout(deadline);
      deadline = undefined;
    };
    try {
      // The callback also runs (with an error) when the session closes first.
      if (!session.ping(answered)) answered();
    } catch {
      // The session is already closing; its close handler reports why.
      answered();
    }
  };
  const interval = setInterval(probe, o.intervalMs);
  interval.unref();
  session.once('close', () => {
    clearInterval(interval);
    if (deadline !== undefined) clearTimeout(deadline);
  });
  return { probe };
}
