/** Long-poll waiters: each waits until woken or until its timeout, whichever comes first. */
export class Wakeups {
  private readonly waiters = new Set<() => void>();

  /** Resolves on the next `wakeAll()` or after `timeoutMs`. */
  wait(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }
}
