/**
 * Cancelling a `rampart ca` start from outside: SIGTERM or SIGINT before the API first listens
 * (Ctrl-C, systemd or Kubernetes stopping a CA that is still starting its workers). An operator's
 * request, not a failure, so it is its own error type rather than a RAMPART_ERR_* code; the start
 * is undone like a failed one (failed-start.ts), since nothing was served from what it created.
 */

/** The start was cancelled by `signal`; whatever it had started is stopped again. */
export class CaStartCancelled extends Error {
  constructor(readonly signal: string) {
    super(`start cancelled by ${signal}`);
    this.name = 'CaStartCancelled';
  }
}

/** True when `error` is the cancellation of a start. */
export function isCaStartCancelled(error: unknown): error is CaStartCancelled {
  return error instanceof CaStartCancelled;
}

/** The cancellation `signal` stands for: its reason names the OS signal (cli/commands/ca.ts). */
export function cancellationOf(signal: AbortSignal): CaStartCancelled {
  return new CaStartCancelled(typeof signal.reason === 'string' ? signal.reason : 'a stop request');
}

/** Throws {@link CaStartCancelled} once `signal` is aborted; a step boundary of the start calls it. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw cancellationOf(signal);
}
