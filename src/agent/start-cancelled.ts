/**
 * Cancelling `startAgent` from outside (SIGTERM/SIGINT while the agent starts): an operator's
 * request, not a failure, so it is its own error type rather than a RAMPART_ERR_* code.
 */

/** How far start-up got when it was cancelled. */
export type StartPhase = 'before-first-certificate' | 'after-first-certificate';

/** `startAgent` was cancelled through its AbortSignal; everything it had started is stopped. */
export class AgentStartCancelled extends Error {
  constructor(readonly phase: StartPhase) {
    super(phase === 'before-first-certificate' ? 'start-up cancelled before the first certificate' : 'start-up cancelled after the first certificate, before every listener was up');
    this.name = 'AgentStartCancelled';
  }
}

/** True when `error` is the cancellation of a start-up. */
export function isStartCancelled(error: unknown): error is AgentStartCancelled {
  return error instanceof AgentStartCancelled;
}
