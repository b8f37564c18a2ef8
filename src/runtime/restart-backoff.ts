/**
 * How long the cluster primary waits before it replaces a signing worker that exited, one per
 * worker slot. A worker that cannot start (a config file broken after the CA started, say) fails
 * again the moment it is forked: replaced at once, it would be re-forked about once a second for
 * as long as the cause lasts, each start taking CPU from the workers that serve and adding error
 * lines. The delay doubles from `firstMs` up to `maxMs` and starts over once a worker in the slot
 * has served for `resetAfterMs`: a crash after a healthy run is not part of a loop.
 */
import { doublingDelay } from '../core/backoff.js';

export interface RestartBackoffOptions {
  readonly firstMs: number;
  readonly maxMs: number;
  readonly resetAfterMs: number;
  /** Up to this fraction is taken off each delay at random (0..1). */
  readonly jitter: number;
  readonly random?: () => number;
}

export class RestartBackoff {
  private restarts = 0;

  constructor(private readonly options: RestartBackoffOptions) {}

  /** The delay before replacing a worker that served for `servedMs` (undefined: it never listened). */
  next(servedMs: number | undefined): number {
    if (servedMs !== undefined && servedMs >= this.options.resetAfterMs) this.restarts = 0;
    return doublingDelay(this.restarts++, this.options);
  }
}
