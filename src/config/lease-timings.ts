/**
 * Checks leader-election timings as client-go does (leaseDuration > renewDeadline > retryPeriod
 * > 0, and a lease of at least 1 s, as the Lease stores whole seconds), and says which setting is
 * wrong with the values in force, so a rejected pair reads as the comparison it failed.
 */
import { ConfigError } from '../core/errors.js';
import { MAX_TIMER_MS } from './values.js';

/** One timing in force: where it came from (flag or config key) and whether it was given. */
export interface LeaseTiming {
  readonly ms: number;
  /** `--renew-deadline` or `config "kubernetes.renewDeadline"`. */
  readonly name: string;
  readonly given: boolean;
}

function shown(t: LeaseTiming): string {
  return `${t.name} (${t.ms / 1000}s${t.given ? '' : ', its default'})`;
}

/** Throws RAMPART_ERR_CONFIG_INVALID naming the first rule the timings break. */
export function checkLeaseTimings(lease: LeaseTiming, renew: LeaseTiming, retry: LeaseTiming): void {
  const fail = (message: string): never => {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', message);
  };
  if (lease.ms < 1000) fail(`${shown(lease)} must be at least 1s: the Lease records its duration in whole seconds`);
  if (renew.ms >= lease.ms) fail(`${shown(renew)} must be shorter than ${shown(lease)}: a leader that cannot renew must step down before another replica may take its Lease`);
  // Both are node timers, which wait at most 2^31-1 ms: a longer one fires at once
  // (TimeoutOverflowWarning), so every Lease call was aborted as it began and the retry loop
  // called the API server every millisecond. The retry period is below the renew deadline.
  if (renew.ms > MAX_TIMER_MS) fail(`${shown(renew)} must be at most ${MAX_TIMER_MS / 1000}s (24.8 days), the longest a timer can wait`);
  if (retry.ms <= 0) fail(`${shown(retry)} must be more than zero`);
  if (retry.ms >= renew.ms) fail(`${shown(retry)} must be shorter than ${shown(renew)}: a leader needs more than one try to renew before it steps down`);
}
