/**
 * At most `perWindow` log lines of one kind per window; the rest are counted and summed up in
 * one line when the window ends. A flood of connections that fail their TLS handshake wrote one
 * warning each (9,000 lines in half a minute in outside QA): an attacker's way to fill a disk.
 */
export class LogBudget {
  private windowStart = -Infinity;
  private used = 0;
  private suppressed = 0;
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly perWindow: number,
    private readonly windowMs: number,
    private readonly now: () => number,
    /** Writes the summary of a window in which `suppressed` lines were not written. */
    private readonly summarize: (suppressed: number, windowMs: number) => void,
  ) {}

  /** True when this occurrence may be logged one by one; false when it is only counted. */
  take(): boolean {
    const at = this.now();
    if (at - this.windowStart >= this.windowMs) {
      this.flush();
      this.windowStart = at;
      this.used = 0;
    }
    if (this.used < this.perWindow) {
      this.used++;
      return true;
    }
    this.suppressed++;
    // Said when the window ends, even if the flood stopped with it.
    this.flushTimer ??= setTimeout(() => this.flush(), Math.max(0, this.windowStart + this.windowMs - at)).unref();
    return false;
  }

  /** Writes the pending summary, if any (also on shutdown). */
  flush(): void {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.suppressed === 0) return;
    const count = this.suppressed;
    this.suppressed = 0;
    this.summarize(count, this.windowMs);
  }
}
