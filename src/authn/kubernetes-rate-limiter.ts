/**
 * Client-side protection of the API server: a token bucket on review starts and a cap on
 * reviews in flight. Times come from the injected Clock so tests need no sleeps.
 */
import { UnavailableError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';

/** Limits for calls to the API server. */
export interface ReviewRateOptions {
  /** Sustained reviews per second. */
  readonly perSecond: number;
  /** Reviews allowed in a burst above the sustained rate. */
  readonly burst: number;
  /** Reviews in flight at once; more wait in line. */
  readonly maxConcurrent: number;
}

/** Token bucket plus semaphore. */
export class ReviewRateLimiter {
  private tokens: number;
  private last: number;
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly opts: ReviewRateOptions, private readonly clock: Clock) {
    if (!(opts.perSecond > 0) || !(opts.burst >= 1) || !(opts.maxConcurrent >= 1)) {
      throw new RangeError('review rate limits must be positive (perSecond > 0, burst >= 1, maxConcurrent >= 1)');
    }
    this.tokens = opts.burst;
    this.last = clock.now();
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = Math.max(0, now - this.last) / 1000;
    this.tokens = Math.min(this.opts.burst, this.tokens + elapsed * this.opts.perSecond);
    this.last = now;
  }

  /**
   * Takes one token or throws UnavailableError RAMPART_ERR_RATE_LIMITED with the seconds until
   * one is available; then waits for a concurrency slot. Call the returned release when done.
   */
  async acquire(): Promise<() => void> {
    this.refill();
    if (this.tokens < 1) {
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - this.tokens) / this.opts.perSecond));
      throw new UnavailableError('RAMPART_ERR_RATE_LIMITED', `too many token reviews in flight to the Kubernetes API server; retry in ${retryAfterSeconds}s`, { retryAfterSeconds });
    }
    this.tokens -= 1;
    if (this.active >= this.opts.maxConcurrent) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter, so `active` stays the same.
      if (next !== undefined) next();
      else this.active -= 1;
    };
  }

  /** Reviews currently running (for tests and diagnostics). */
  get inFlight(): number {
    return this.active;
  }
}
