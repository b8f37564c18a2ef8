/**
 * Keeps the agent's output directory holding the newest credentials (DESIGN section 7). A write
 * that fails (a full disk, an entry in the way) is retried with backoff until one succeeds, and
 * until then {@link OutputKeeper.staleReason} says why, so /readyz does not report ready while
 * the application reads an old certificate from disk.
 */
import type { Logger } from 'pino';
import type { Credentials as OutputFiles } from './output-reader.js';
import { readCredentials } from './output-reader.js';
import { writeCredentials } from './output-writer.js';
import { retryDelay } from './renewal-policy.js';

/** Options of {@link OutputKeeper}. */
export interface OutputKeeperOptions {
  readonly outDir: string;
  readonly logger: Logger;
  /** Wall clock, ms since the epoch (names the generation directories). */
  readonly now: () => number;
  /** Uniform [0, 1) draws for the retry jitter. */
  readonly random: () => number;
  /** Retry backoff bounds (default 1 s doubling to 60 s). */
  readonly retry?: { readonly baseMs?: number; readonly maxMs?: number };
  /** How often the directory is checked against what was written (default 10 s). */
  readonly checkMs?: number;
}

const DEFAULT_CHECK_MS = 10_000;

function sameFiles(a: OutputFiles, b: OutputFiles): boolean {
  return a.certChainPem === b.certChainPem && a.keyPem === b.keyPem && a.rootCertPem === b.rootCertPem;
}

/** Writes each generation of files to the output directory and retries one that failed. */
export class OutputKeeper {
  private latest: OutputFiles | null = null;
  private failure: string | null = null;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;
  private checkTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: OutputKeeperOptions) {}

  /** Writes `files`, which supersede any earlier ones (and their pending retry). */
  async write(files: OutputFiles): Promise<void> {
    this.latest = files;
    this.cancelRetry();
    this.checkTimer ??= setInterval(() => void this.check(), this.options.checkMs ?? DEFAULT_CHECK_MS).unref();
    await this.attempt(files);
  }

  /** Why the directory does not hold the newest files, or null when it does (or nothing was written yet). */
  staleReason(): string | null {
    return this.failure === null ? null : `the output directory ${this.options.outDir} does not hold the current certificate: ${this.failure}`;
  }

  /** Stops retrying and waits for a write in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.cancelRetry();
    if (this.checkTimer !== null) clearInterval(this.checkTimer);
    this.checkTimer = null;
    await Promise.all([...this.inFlight]);
  }

  /**
   * Between writes something else may remove or change the files (a cleanup job, an operator):
   * the application would then read nothing, or not what the agent serves, until the next
   * renewal, up to half a certificate's life, while /readyz said ready (outside QA). They are
   * compared with what was written and, if they differ, written again.
   */
  private async check(): Promise<void> {
    const held = this.latest;
    if (this.stopped || held === null || this.failure !== null || this.inFlight.size > 0) return;
    let why: string | null = null;
    try {
      if (!sameFiles(await readCredentials(this.options.outDir), held)) why = 'the files differ from those the agent wrote';
    } catch (error) {
      // readCredentials' own words fit a reader before the first certificate ("not obtained
      // yet"), not files the agent wrote and something then removed (outside QA).
      why = (error as { code?: unknown }).code === 'RAMPART_ERR_NOT_READY' ? 'the ..data link or the files it names were removed' : error instanceof Error ? error.message : String(error);
    }
    // A write may have started meanwhile; it brings the directory up to date itself.
    if (why === null || this.stopped || held !== this.latest || this.inFlight.size > 0) return;
    this.options.logger.warn({ event: 'output-restored', outDir: this.options.outDir, reason: why }, 'the output directory no longer held the current certificate (removed or changed by something else); writing it again');
    await this.attempt(held);
  }

  private attempt(files: OutputFiles): Promise<void> {
    const run = writeCredentials(this.options.outDir, files, { logger: this.options.logger, now: this.options.now }).then(
      () => this.succeeded(files),
      (error: unknown) => this.failed(files, error),
    );
    this.inFlight.add(run);
    void run.finally(() => this.inFlight.delete(run));
    return run;
  }

  private succeeded(files: OutputFiles): void {
    // Writes run in order, so only the outcome for the newest files tells the state of the disk.
    if (files !== this.latest) return;
    if (this.failure !== null) this.options.logger.info({ event: 'output-write-recovered', outDir: this.options.outDir }, 'the output directory holds the current certificate again');
    this.failure = null;
    this.failures = 0;
  }

  private failed(files: OutputFiles, error: unknown): void {
    if (files !== this.latest) return;
    const message = error instanceof Error ? error.message : String(error);
    this.failure = message;
    this.failures++;
    const retryInMs = retryDelay({ failures: this.failures, random: this.options.random(), ...(this.options.retry ?? {}) });
    this.options.logger.error(
      { event: 'output-write-failed', outDir: this.options.outDir, error: message, failures: this.failures, retryInMs: this.stopped ? undefined : retryInMs },
      'cannot write the output directory; the proxy still uses the new certificate; not ready until a write succeeds',
    );
    if (this.stopped) return;
    this.cancelRetry();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.stopped && this.latest !== null) void this.attempt(this.latest);
    }, retryInMs);
    this.retryTimer.unref();
  }

  private cancelRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }
}
