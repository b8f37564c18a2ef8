/** PINGs of ours that may wait for an answer at once. */
const MAX_PENDING_PINGS = 10;

/**
 * Our PINGs still waiting for their ACK. Each is known by its payload, which carries a counter so
 * that no two waiting PINGs look alike, and the peer echoes it back unchanged (RFC 9113 section 6.7).
 */
export class PingTracker {
  private readonly pending = new Map<string, (error?: Error) => void>();
  private counter = 0;

  /** The payload for a new PING whose ACK runs `answered`; undefined when too many wait already. */
  start(answered: (error?: Error) => void): Buffer | undefined {
    if (this.pending.size >= MAX_PENDING_PINGS) return undefined;
    const payload = Buffer.alloc(8);
    payload.writeUInt32BE(++this.counter, 4);
    this.pending.set(payload.toString('hex'), answered);
    return payload;
  }

  /** A PING ACK arrived; one that answers no PING of ours changes nothing. */
  acknowledged(payload: Buffer): void {
    const key = payload.toString('hex');
    const answered = this.pending.get(key);
    this.pending.delete(key);
    answered?.();
  }

  /** The session ended first: every waiting PING is answered with `error`. */
  failAll(error: Error): void {
    for (const answered of this.pending.values()) answered(error);
    this.pending.clear();
  }
}
