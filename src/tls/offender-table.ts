/**
 * The client-chain guard's memory of offending addresses: at most `max` entries, the least
 * recently used forgotten first, each forgotten `ttlMs` after it was last written.
 *
 * A Map kept in order of use, rather than lru-cache: the guard sits in every agent's inbound,
 * and lru-cache costs each of them memory before anyone offends. Its module reads the global
 * `performance` when it loads, which makes node load perf_hooks and its histogram and timing
 * modules (about 200 KiB of resident memory per process), and an LRUCache allocates its arrays
 * for all `max` entries when it is made (about 370 KB for 10,000 with a ttl). An empty Map costs
 * neither, and the guard needs only get, set and a walk over the live values.
 */
interface Entry<V> {
  readonly value: V;
  readonly writtenAt: number;
}

export class OffenderTable<V> {
  // A Map iterates in insertion order: each use re-inserts its key, so the first key is the least recently used.
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
    private readonly now: () => number,
  ) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`an offender table holds at least 1 entry, not ${max}`);
    if (!(ttlMs > 0)) throw new RangeError(`an offender table's ttl must be a positive number of milliseconds, not ${ttlMs}`);
  }

  /** The value for `key` unless it expired; a hit counts as a use. */
  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (this.expired(entry, this.now())) return undefined;
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Writes `value` for `key` as its most recent use, with a fresh ttl; forgets the least recently used beyond `max`. */
  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, { value, writtenAt: this.now() });
    if (this.entries.size > this.max) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
  }

  /** The values that have not expired, least recently used first. */
  *values(): IterableIterator<V> {
    const at = this.now();
    for (const entry of this.entries.values()) if (!this.expired(entry, at)) yield entry.value;
  }

  /** Entries held, expired ones not yet dropped included (bounded by `max`). */
  get size(): number {
    return this.entries.size;
  }

  private expired(entry: Entry<V>, at: number): boolean {
    return at - entry.writtenAt > this.ttlMs;
  }
}
