/**
 * Tracks which trust-bundle sequence each agent holds (reported on every request), so `activate`
 * waits until a prepared root has reached every agent seen recently, by this CA process and by
 * the other replicas (whose sightings arrive as {@link PeerSightings}).
 */
import type { PropagationVerdict } from './rotation.js';
import { identityOfAgent, SightingStore } from './sighting-store.js';

/** One agent that held an older bundle than the replica's newest when it was last seen. */
export interface BehindSighting {
  readonly agent: string;
  readonly sequence: number;
  readonly lastSeen: number;
}

/**
 * What one CA replica shares of its sightings. Agents talk to whichever replica the Service picks,
 * so a replica judging propagation alone would miss every agent the others serve.
 */
export interface PeerSightings {
  readonly replica: string;
  readonly updatedAt: number;
  /** Agents the replica saw within its horizon. */
  readonly agentsSeen: number;
  /** Of those, the ones below the replica's newest sequence, most behind first, at most {@link MAX_SHARED_BEHIND}. */
  readonly behind: readonly BehindSighting[];
  /** Behind agents left out of `behind` by the cap; counted as behind whatever the target. */
  readonly behindOmitted: number;
}

/** Keeps a replica's shared sightings well under a ConfigMap's 1 MiB with long SPIFFE IDs. */
export const MAX_SHARED_BEHIND = 2_000;

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

// Identities named in a propagation reason, most agents behind first.
const BEHIND_IDENTITIES_NAMED = 3;

/**
 * Who is behind, by identity: an operator deciding whether to force needs to know, and any
 * workload can report made-up agents that hold the gate shut (outside security QA).
 */
function behindByIdentity(behind: ReadonlySet<string>, omitted: number): string {
  const counts = new Map<string, number>();
  for (const agent of behind) {
    const identity = identityOfAgent(agent);
    counts.set(identity, (counts.get(identity) ?? 0) + 1);
  }
  const named = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, BEHIND_IDENTITIES_NAMED);
  const parts = named.map(([identity, n]) => `${identity} (${n} agent${n === 1 ? '' : 's'})`);
  if (counts.size > named.length) parts.push(`${counts.size - named.length} more identities`);
  if (omitted > 0) parts.push(`${omitted} agents other replicas did not list`);
  return parts.join(', ');
}

/** In-memory record of agent sightings, bounded and fair (sighting-store.ts). */
export class PropagationTracker {
  private readonly sightings: SightingStore<Sighting>;

  constructor(maxAgents = 100_000) {
    this.sightings = new SightingStore(maxAgents);
  }

  /** Records that `agentId` holds `sequence` at `now`. */
  report(agentId: string, sequence: number, now: number): void {
    const existing = this.sightings.get(agentId);
    this.sightings.put(agentId, { sequence: Math.max(existing?.sequence ?? 0, sequence), lastSeen: now });
  }

  /**
   * Propagated when every agent seen within two refresh intervals holds `targetSequence`, and at
   * least one refresh interval has passed since the sequence was published (`publishedAt`), so
   * agents that poll slowly have had their chance to show up. `peers` are the other replicas'
   * sightings: an agent any of them saw behind within the horizon counts as behind, even if it
   * has since moved to this replica and caught up there; it stops counting once that sighting
   * leaves the horizon, so an agent changing replicas delays activation by at most two intervals
   * and never lets it through early. A peer silent for longer than the horizon is left out.
   */
  status(targetSequence: number, publishedAt: number, now: number, refreshIntervalMs: number, peers: readonly PeerSightings[] = []): PropagationStatus {
    const horizon = now - 2 * refreshIntervalMs;
    let seen = 0;
    const behind = new Set<string>();
    for (const [agent, s] of this.sightings.entries()) {
      if (s.lastSeen < horizon) continue;
      seen++;
      if (s.sequence < targetSequence) behind.add(agent);
    }
    let omitted = 0;
    let replicas = 1;
    for (const peer of peers) {
      if (peer.updatedAt < horizon) continue;
      replicas++;
      seen += peer.agentsSeen;
      omitted += peer.behindOmitted;
      for (const b of peer.behind) if (b.lastSeen >= horizon && b.sequence < targetSequence) behind.add(b.agent);
    }
    const behindCount = behind.size + omitted;
    // An agent seen by two replicas counts on each, so the total can only grow past the truth.
    seen = Math.max(seen, behindCount);
    const upToDate = seen - behindCount;
    const waited = now - publishedAt >= refreshIntervalMs;
    const ratio = seen === 0 ? 1 : upToDate / seen;
    let reason = `${upToDate} of ${seen} agents seen recently${replicas > 1 ? ` by ${replicas} CA replicas` : ''} hold bundle sequence ${targetSequence}`;
    if (behindCount > 0) reason += ` (behind: ${behindByIdentity(behind, omitted)})`;
    // Both times, so the wait's end is not read as the publication time (outside QA did).
    // With every agent seen up to date, the wait is the whole reason; "3 of 3 hold it" alone read
    // as a refusal without one (soak finding).
    const published = new Date(publishedAt).toISOString();
    const until = new Date(publishedAt + refreshIntervalMs).toISOString();
    if (!waited && behindCount === 0) reason += `, but agents that poll slowly may not have asked yet: it was published at ${published} and they get one refresh interval, until ${until}`;
    else if (!waited) reason += `; it was published at ${published} and agents that poll slowly get one refresh interval, until ${until}`;
    return { propagated: waited && behindCount === 0, onlyWaitingForSlowPollers: !waited && behindCount === 0 && seen > 0, reason, agentsSeen: seen, agentsUpToDate: upToDate, ratio, targetSequence };
  }

  /** This process's sightings as shared with the other replicas: who was behind `newestSequence`. */
  share(replica: string, newestSequence: number, now: number, refreshIntervalMs: number): PeerSightings {
    const horizon = now - 2 * refreshIntervalMs;
    let seen = 0;
    const behind: BehindSighting[] = [];
    for (const [agent, s] of this.sightings.entries()) {
      if (s.lastSeen < horizon) continue;
      seen++;
      if (s.sequence < newestSequence) behind.push({ agent, sequence: s.sequence, lastSeen: s.lastSeen });
    }
    behind.sort((a, b) => a.sequence - b.sequence || a.agent.localeCompare(b.agent));
    return { replica, updatedAt: now, agentsSeen: seen, behind: behind.slice(0, MAX_SHARED_BEHIND), behindOmitted: Math.max(0, behind.length - MAX_SHARED_BEHIND) };
  }

  /**
   * The highest bundle sequence that a strict majority of the identities (SPIFFE IDs) seen since
   * `horizon` hold, each counted once at the newest sequence any of its agents reported; null when
   * none were seen. One identity, or a few, cannot move it however many agents they invent.
   */
  heldByMajority(horizon: number): number | null {
    const newest = new Map<string, number>();
    for (const [agent, s] of this.sightings.entries()) {
      if (s.lastSeen < horizon) continue;
      const identity = identityOfAgent(agent);
      newest.set(identity, Math.max(newest.get(identity) ?? 0, s.sequence));
    }
    if (newest.size === 0) return null;
    const sequences = [...newest.values()].sort((a, b) => b - a);
    return sequences[Math.floor(sequences.length / 2)] as number;
  }

  /** Drops sightings older than `horizonMs` (housekeeping). */
  prune(now: number, horizonMs: number): void {
    for (const [id, s] of this.sightings.entries()) if (s.lastSeen < now - horizonMs) this.sightings.delete(id);
  }
}
