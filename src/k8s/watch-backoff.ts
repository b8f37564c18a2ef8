/**
 * How long a Kubernetes watch waits before it lists or watches again after a failure, and which of
 * its failures are worth a warning. Retried once a second for as long as an API server outage
 * lasts, every watch of every replica adds a request and a warning line per second; so the delay
 * doubles from `firstMs` up to `maxMs`, and only the first failure of an outage is a warning.
 * Both start over once a watch is established again. The root-cert publisher paces its failed
 * ConfigMap writes with it too, a write that succeeds again counting as established.
 */

import { doublingDelay } from '../core/backoff.js';

/** Options of {@link WatchBackoff}. */
export interface WatchBackoffOptions {
  readonly firstMs: number;
  readonly maxMs: number;
  /** Uniform [0, 1) draws for the jitter; injectable so tests can pin them. */
  readonly random?: () => number;
}

/** What to do about one failure. */
export interface WatchFailure {
  readonly delayMs: number;
  /** The first failure since the watch was last established: log it at warn, later ones at debug. */
  readonly first: boolean;
}

// Up to half of each delay is taken off at random (see doublingDelay).
const JITTER = 0.5;

export class WatchBackoff {
  private failures = 0;

  constructor(private readonly options: WatchBackoffOptions) {}

  /** Records a failed list or watch and returns the delay before the next attempt. */
  failed(): WatchFailure {
    const delayMs = doublingDelay(this.failures, { ...this.options, jitter: JITTER });
    this.failures += 1;
    return { delayMs, first: this.failures === 1 };
  }

  /** The delay after a stream the server ended cleanly (its watch timeout): not a failure. */
  get closedMs(): number {
    return this.options.firstMs;
  }

  /** Records an established watch; returns how many failures it ends (0: there was no outage). */
  established(): number {
    const ended = this.failures;
    this.failures = 0;
    return ended;
  }
}
