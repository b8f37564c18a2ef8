/**
 * Tracks which trust-bundle sequence each agent holds (reported on every request), so `activate`
 * waits until a prepared root has reached every agent seen recently.
 */
import type { PropagationVerdict } from './rotation.js';

interface Sighting {
  sequence: number;
  lastSeen: number;
}

export interface PropagationStatus extends PropagationVerdict {
  /** Agents seen in the last two refresh intervals. */
  readonly agentsSeen: number;
  /** Of those, how many hold `targetSequence` or later. */
  readonly agentsUpToDate: number;
  readonly ratio: number;
  readonly targetSequence: number;
}

/** In-memory record of agent sightings, bounded so a flood of identities cannot grow it forever. */
export class PropagationTracker {
  private readonly sightings = new Map<string, Sighting>();

  constructor(private readonly maxAgents = 100_000) {}

  /** Records that `agentId` holds `sequence` at `now`. */
  report(agentId: string, sequence: number, now: number): void {
    const existing = this.sightings.get(agentId);
    if (existing) {
      this.sightings.delete(agentId);
      existing.sequence = Math.max(existing.sequence, sequence);
      existing.lastSeen = now;
      this.sightings.set(agentId, existing);
      return;
    }
    if (this.sightings.size >= this.maxAgents) {
      const oldest = this.sightings.keys().next().value;
      if (oldest !== undefined) this.sightings.delete(oldest);
    }
    this.sightings.set(agentId, { sequence, lastSeen: now });
  }

  /**
   * Propagated when every agent seen within two refresh intervals holds `targetSequence`, and at
   * least one refresh interval has passed since the sequence was published (`publishedAt`), so
   * agents that poll slowly have had their chance to show up.
   */
  status(targetSequence: number, publishedAt: number, now: number, refreshIntervalMs: number): PropagationStatus {
    const horizon = now - 2 * refreshIntervalMs;
    let seen = 0;
    let upToDate = 0;
    for (const s of this.sightings.values()) {
      if (s.lastSeen < horizon) continue;
      seen++;
      if (s.sequence >= targetSequence) upToDate++;
    }
    const waited = now - publishedAt >= refreshIntervalMs;
    const ratio = seen === 0 ? 1 : upToDate / seen;
    let reason = `${upToDate} of ${seen} agents seen recently hold bundle sequence ${targetSequence}`;
    // Both times, so the wait's end is not read as the publication time (outside QA did).
    if (!waited) reason += `; it was published at ${new Date(publishedAt).toISOString()} and agents that poll slowly get one refresh interval, until ${new Date(publishedAt + refreshIntervalMs).toISOString()}`;
    return { propagated: waited && upToDate === seen, reason, agentsSeen: seen, agentsUpToDate: upToDate, ratio, targetSequence };
  }

  /** Drops sightings older than `horizonMs` (housekeeping). */
  prune(now: number, horizonMs: number): void {
    for (const [id, s] of this.sightings) if (s.lastSeen < now - horizonMs) this.sightings.delete(id);
  }
}
