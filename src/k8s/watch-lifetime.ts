/**
 * How long one watch stream may live, as client-go's reflector bounds it. The watch asks the API
 * server to end it after a random time between the configured minimum and twice that
 * (`timeoutSeconds`; random so that replicas do not all re-establish at once), and the watcher
 * aborts it itself a margin past that, should the server's end never arrive. A stream whose NAT
 * entry or load-balancer flow was dropped, or whose proxy froze, gets no FIN or RST: unbounded, it
 * stayed open and silent for good, and the replica behind it stale with it (outside review F1, F2).
 */

/** Default lower bound of a watch's life: 5 minutes, as client-go's reflector. */
export const DEFAULT_WATCH_TIMEOUT_MS = 5 * 60_000;

/** The API server's own end of a watch may come this much late at most, before the watcher ends it. */
const MAX_MARGIN_MS = 30_000;
const MIN_MARGIN_MS = 1000;

/** One watch's bounds. */
export interface WatchLifetime {
  /** What the watch asks the API server for. */
  readonly timeoutSeconds: number;
  /** When the watcher aborts the stream itself, in ms from its start: a server past this is not ending it. */
  readonly deadlineMs: number;
}

/** Draws one watch's life; `minMs` is rounded down to whole seconds, at least 1. */
export function drawWatchLifetime(minMs: number = DEFAULT_WATCH_TIMEOUT_MS, random: () => number = Math.random): WatchLifetime {
  const minSeconds = Math.max(1, Math.floor(minMs / 1000));
  const timeoutSeconds = Math.floor(minSeconds * (1 + Math.min(Math.max(random(), 0), 0.999)));
  const marginMs = Math.min(MAX_MARGIN_MS, Math.max(MIN_MARGIN_MS, timeoutSeconds * 100));
  return { timeoutSeconds, deadlineMs: timeoutSeconds * 1000 + marginMs };
}
