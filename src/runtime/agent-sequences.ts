/**
 * What this CA process knows of the bundle sequences agents hold: their reports (with every
 * request), when each sequence was first served here, and whether the agents are ahead of the
 * state, which means the state went back (an older backup put back while every CA was stopped).
 */
import { PropagationTracker, type PeerSightings, type PropagationStatus } from '../core/ca/propagation.js';

// Agents reporting a sequence past the state's are weighed at most this often (a scan of every
// sighting), and a minority doing so is logged at most this often.
const SEQUENCE_AHEAD_CHECK_EVERY_MS = 5_000;
const SEQUENCE_AHEAD_LOG_EVERY_MS = 600_000;
// Reports arrive with every certificate request; the ratio scans all sightings.
const RATIO_EVERY_MS = 1_000;

/** What to do about a report past the held sequence. */
export type AheadVerdict =
  | { readonly kind: 'wait' }
  /** A minority reports ahead: not believed; log it (rate-limited here). */
  | { readonly kind: 'minority' }
  /** A strict majority of the identities seen recently hold `majority`: move past it. */
  | { readonly kind: 'majority'; readonly majority: number };

export class AgentSequences {
  private readonly tracker = new PropagationTracker();
  /** When each bundle sequence was first served by this process (propagation waits one interval). */
  private readonly servedAt = new Map<number, number>();
  private aheadCheckedAt = Number.NEGATIVE_INFINITY;
  private aheadLoggedAt = Number.NEGATIVE_INFINITY;
  private ratioUpdatedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly refreshIntervalMs: number) {}

  report(agentId: string, sequence: number, now: number): void {
    this.tracker.report(agentId, sequence, now);
  }

  /** Notes that this process serves `sequence` from now on (kept from its first time). */
  served(sequence: number, now: number): void {
    if (!this.servedAt.has(sequence)) this.servedAt.set(sequence, now);
  }

  /** Whether the propagation gauge is due again (it scans every sighting); marks it done when it is. */
  ratioDue(now: number): boolean {
    if (now - this.ratioUpdatedAt < RATIO_EVERY_MS) return false;
    this.ratioUpdatedAt = now;
    return true;
  }

  /**
   * Any workload can report any number, so one identity or a few are not believed: a single SVID
   * moved the sequence 1,000 a minute, and could then hide a real restore behind a lead too large
   * to trust (outside QA). Only what a strict majority of the identities seen in the last two
   * refresh intervals hold counts, weighed at most every 5 s.
   */
  aheadOf(held: number, now: number): AheadVerdict {
    if (now - this.aheadCheckedAt < SEQUENCE_AHEAD_CHECK_EVERY_MS) return { kind: 'wait' };
    this.aheadCheckedAt = now;
    const majority = this.tracker.heldByMajority(now - 2 * this.refreshIntervalMs) ?? 0;
    if (majority > held) return { kind: 'majority', majority };
    if (now - this.aheadLoggedAt < SEQUENCE_AHEAD_LOG_EVERY_MS) return { kind: 'wait' };
    this.aheadLoggedAt = now;
    return { kind: 'minority' };
  }

  /** Propagation of bundle sequence `targetSequence` (or later) among agents seen recently. */
  status(targetSequence: number, now: number, peers: readonly PeerSightings[]): PropagationStatus {
    return this.tracker.status(targetSequence, this.firstServedAt(targetSequence, now), now, this.refreshIntervalMs, peers);
  }

  /** This process's sightings for the other replicas, judged against the newest sequence. */
  share(replica: string, newestSequence: number, now: number): PeerSightings {
    return this.tracker.share(replica, newestSequence, now, this.refreshIntervalMs);
  }

  /**
   * When this process first served `targetSequence` or a later one. After a restart, or when the
   * bundle moved on (a retire while a root is prepared), the exact sequence may never have been
   * served here; the earliest later one still starts the clock instead of restarting it forever.
   */
  private firstServedAt(targetSequence: number, now: number): number {
    let earliest = Number.POSITIVE_INFINITY;
    for (const [sequence, at] of this.servedAt) if (sequence >= targetSequence && at < earliest) earliest = at;
    return Number.isFinite(earliest) ? earliest : now;
  }
}
