/**
 * Agent sightings keyed `spiffeId#instance`, bounded so a flood cannot grow them forever, and
 * fair, so a flood cannot push other agents out: when full, the identity with the most instances
 * loses its least recently seen one. Any workload picks its own instance ids (the
 * Rampart-Agent-Id header); with plain least-recently-seen eviction one SVID's 100,000 made-up
 * reports pushed out an agent that still held the old bundle, and `activate` went through
 * (outside security QA). Only when every identity is down to one instance does the least
 * recently seen agent overall make way.
 */

/** The SPIFFE ID part of an agent key (`spiffeId#instance` or a bare `spiffeId`). */
export function identityOfAgent(agentKey: string): string {
  const hash = agentKey.indexOf('#');
  return hash === -1 ? agentKey : agentKey.slice(0, hash);
}

export class SightingStore<S> {
  /** Every sighting, least recently seen first. */
  private readonly all = new Map<string, S>();
  /** The same keys per identity, least recently seen first. */
  private readonly byIdentity = new Map<string, Set<string>>();
  /** The identity with the most instances, or close to it (kept as sightings come and go). */
  private heaviest: string | undefined;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.all.size;
  }

  get(agentKey: string): S | undefined {
    return this.all.get(agentKey);
  }

  /** Records `sighting` as the most recently seen, making way for it first when full. */
  put(agentKey: string, sighting: S): void {
    const identity = identityOfAgent(agentKey);
    if (this.all.has(agentKey)) this.delete(agentKey);
    else if (this.all.size >= this.max) this.evictOne();
    this.all.set(agentKey, sighting);
    let keys = this.byIdentity.get(identity);
    if (keys === undefined) this.byIdentity.set(identity, (keys = new Set()));
    keys.add(agentKey);
    if (this.heaviest === undefined || keys.size > (this.byIdentity.get(this.heaviest)?.size ?? 0)) this.heaviest = identity;
  }

  delete(agentKey: string): void {
    if (!this.all.delete(agentKey)) return;
    const identity = identityOfAgent(agentKey);
    const keys = this.byIdentity.get(identity);
    keys?.delete(agentKey);
    if (keys?.size === 0) {
      this.byIdentity.delete(identity);
      if (this.heaviest === identity) this.heaviest = undefined;
    }
  }

  entries(): IterableIterator<[string, S]> {
    return this.all.entries();
  }

  private evictOne(): void {
    if (this.heaviest === undefined) {
      for (const [identity, keys] of this.byIdentity) if (this.heaviest === undefined || keys.size > (this.byIdentity.get(this.heaviest)?.size ?? 0)) this.heaviest = identity;
    }
    const keys = this.heaviest === undefined ? undefined : this.byIdentity.get(this.heaviest);
    const victim = keys !== undefined && keys.size > 1 ? keys.values().next().value : this.all.keys().next().value;
    if (victim !== undefined) this.delete(victim);
  }
}
