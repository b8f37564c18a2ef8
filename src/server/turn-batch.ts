/**
 * Holds finished responses until the end of the event-loop turn that computed them, so they go
 * out back to back instead of one between every two signatures.
 *
 * Issuance is CPU-bound: one turn reads every request that has arrived and signs them one after
 * another. Written as soon as each was signed, every answer found its client idle again and had
 * to wake it, and the client's next requests came back one at a time. Written together, the
 * answers wake a client once and its next requests arrive together. On the bench VM a write that
 * wakes an idle peer costs tens of microseconds inside writev; held to the turn's end, the CA's
 * CPU per certificate and the load generator's per request both fell (`npm run bench`, e2e).
 *
 * Bounded, unlike Nagle's algorithm: a response waits until its turn ends, until `maxBatch - 1`
 * others are ready, or until a later one finds it held for `maxDelayMs`, whichever comes first.
 * A lone response waits only for the rest of its turn (one setImmediate hop when idle).
 */
export interface TurnBatchOptions {
  /** Responses held at most; the one that fills the batch releases it at once. */
  readonly maxBatch: number;
  /** Longest the first held response may wait for the turn to end. */
  readonly maxDelayMs: number;
  /** Runs a callback once the current turn's I/O callbacks are done (setImmediate). */
  readonly atTurnEnd?: (callback: () => void) => void;
  /** Monotonic milliseconds. */
  readonly nowMs?: () => number;
}

export interface TurnBatch {
  /** Resolves when this response may be written: at the turn's end, or sooner if the batch is full or old. */
  release(): Promise<void>;
  /** Responses held right now. */
  held(): number;
}

export function createTurnBatch(options: TurnBatchOptions): TurnBatch {
  const maxBatch = Math.max(1, Math.floor(options.maxBatch));
  const atTurnEnd = options.atTurnEnd ?? ((callback: () => void) => void setImmediate(callback));
  const nowMs = options.nowMs ?? (() => performance.now());
  let waiting: Array<() => void> = [];
  let firstHeldAt = 0;
  let scheduled = false;

  const flush = (): void => {
    const released = waiting;
    waiting = [];
    for (const resolve of released) resolve();
  };

  return {
    release() {
      return new Promise<void>((resolve) => {
        const now = nowMs();
        if (waiting.length === 0) firstHeldAt = now;
        waiting.push(resolve);
        if (waiting.length >= maxBatch || now - firstHeldAt >= options.maxDelayMs) {
          flush();
          return;
        }
        if (!scheduled) {
          scheduled = true;
          atTurnEnd(() => {
            scheduled = false;
            flush();
          });
        }
      });
    },
    held: () => waiting.length,
  };
}
