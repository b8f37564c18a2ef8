/**
 * Capped doubling backoff, shared by the CA's retry loops (worker restarts, Kubernetes watches).
 * Jitter is taken off rather than added, so `maxMs` is a real bound; with jitter at most 0.5 each
 * delay is still no shorter than the ceiling before it, so the spacing keeps growing, and loops
 * that failed together (replicas losing one API server, workers reading one broken file) do not
 * retry in step.
 */
export interface DoublingDelay {
  readonly firstMs: number;
  readonly maxMs: number;
  /** Up to this fraction is taken off each delay at random (0..1). */
  readonly jitter: number;
  /** Uniform [0, 1) draws; injectable so tests can pin them. */
  readonly random?: () => number;
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function doublingDelay(attempt: number, o: DoublingDelay): number {
  // Past the cap the exponent no longer matters; bounding it keeps 2 ** n finite however long a loop fails.
  const ceiling = Math.min(o.maxMs, o.firstMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling * (1 - o.jitter * (o.random ?? Math.random)()));
}
