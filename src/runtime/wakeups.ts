/** Long-poll waiters: each waits until woken or until its timeout, whichever comes first. */
export class Wakeups {
  private readonly waiters = new Set<() => void>();

  /** Resolves on the next `wakeAll()`, after `timeoutMs`, or when `signal` aborts (a server stopping). */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
  }

  wakeAll(): void {
    for (const wake of [...this.waiters]) wake();
  }
}
