/**
 * The agent's trust bundle (DESIGN section 7): taken from every certificate response and kept
 * current by a long-poll that presents the SVID and reports the held sequence, so the CA can
 * judge propagation. Newer bundles from the poll are handed to `onNewer`.
 */
import type { Logger } from 'pino';
import type { CaClient } from '../client/ca-client.js';
import { isRampartError } from '../core/errors.js';
import type { AgentMetrics } from './agent-metrics.js';
import { ensureNewline } from './pem-text.js';
import { retryDelay } from './renewal-policy.js';

export interface BundleFollowerOptions {
  /** Client for the long-poll; presents the agent's SVID. */
  readonly client: CaClient;
  readonly logger: Logger;
  readonly metrics: AgentMetrics;
  readonly random: () => number;
  readonly retry?: { readonly baseMs?: number; readonly maxMs?: number };
  /** How long each long-poll waits at the CA (default 20 s). */
  readonly waitSeconds?: number;
  /** Called with each newer bundle the poll brings, after it is held. */
  readonly onNewer: (pem: string) => Promise<void>;
}

const DEFAULT_WAIT_S = 20;

export class BundleFollower {
  private heldPem: string | null = null;
  private heldSequence = 0;
  private loop: Promise<void> | null = null;
  private sleeping: { wake: () => void } | null = null;
  private stopped = false;

  constructor(private readonly o: BundleFollowerOptions) {}

  /** The held bundle PEM, or null before the first. */
  get pem(): string | null {
    return this.heldPem;
  }

  /** The held bundle sequence (0 before the first). */
  get sequence(): number {
    return this.heldSequence;
  }

  /** Holds `pem` if it is at least as new as the held one (certificate responses carry one). */
  offer(pem: string, sequence: number): void {
    if (sequence < this.heldSequence) return;
    // An activation moves the sequence without changing which roots the bundle holds; it is logged
    // too, or a reader following a rotation through the agents' logs misses that step.
    if (this.heldPem !== null && (pem !== this.heldPem || sequence > this.heldSequence)) {
      this.o.logger.info({ event: 'trust-bundle-updated', from: this.heldSequence, to: sequence, rootsChanged: pem !== this.heldPem }, 'trust bundle updated');
    }
    this.heldPem = pem;
    this.heldSequence = Math.max(this.heldSequence, sequence);
    this.o.metrics.bundleSequence(this.heldSequence);
  }

  /** Starts the long-poll once (after the first certificate: the poll presents it). */
  start(): void {
    this.loop ??= this.follow();
  }

  /** Ends the poll; the caller closes the client, which ends a poll in flight. */
  stop(): void {
    this.stopped = true;
    this.sleeping?.wake();
  }

  /** Resolves once the poll has ended. */
  async whenStopped(): Promise<void> {
    await this.loop?.catch(() => undefined);
  }

  private async follow(): Promise<void> {
    let failures = 0;
    const wait = this.o.waitSeconds ?? DEFAULT_WAIT_S;
    while (!this.stopped) {
      try {
        const bundle = await this.o.client.trustBundle({ after: this.heldSequence, waitSeconds: wait, bundleSequence: this.heldSequence });
        if (this.stopped) return;
        failures = 0;
        if (bundle.sequence > this.heldSequence && bundle.roots.length > 0) {
          const pem = bundle.roots.map((r) => ensureNewline(r.pem)).join('');
          this.offer(pem, bundle.sequence);
          await this.o.onNewer(pem);
        }
      } catch (err) {
        if (this.stopped) return;
        failures++;
        const delay = retryDelay({ failures, random: this.o.random(), retryAfterSeconds: isRampartError(err) ? err.retryAfterSeconds : undefined, ...(this.o.retry ?? {}) });
        // One warning per outage; the certificate loop already reports a CA that is down.
        (failures === 1 ? this.o.logger.warn.bind(this.o.logger) : this.o.logger.debug.bind(this.o.logger))(
          { event: 'bundle-poll-failed', code: isRampartError(err) ? err.code : 'RAMPART_ERR_INTERNAL', error: err instanceof Error ? err.message : String(err), retryInMs: delay },
          'trust bundle long-poll failed; retrying',
        );
        await this.sleep(delay);
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleeping = null;
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleeping = { wake };
    });
  }
}
