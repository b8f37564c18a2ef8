/**
 * Lease-based leader election with client-go's semantics: a candidate takes the Lease when it
 * is free or its holder has not renewed for `leaseDuration` (judged by when *we* last saw it
 * change, so clock skew between replicas does not matter); every write is a resourceVersion
 * compare-and-swap; a leader that cannot renew within `renewDeadline` steps down.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { classifyKubeError, isHttpStatus } from './api-errors.js';
import { formatMicroTime } from './micro-time.js';

/** Default Lease name (DESIGN section 9). */
export const LEADER_LEASE_NAME = 'rampart-ca-leader';

/** Options of {@link LeaderElector}. */
export interface LeaderElectorOptions {
  readonly coordination: k8s.CoordinationV1Api;
  readonly namespace: string;
  /** This replica's identity (pod name). */
  readonly identity: string;
  readonly leaseName?: string;
  /** How long a Lease holds without renewal. Default 15 s. */
  readonly leaseDurationMs?: number;
  /** A leader that cannot renew for this long steps down. Default 10 s; must be < leaseDuration. */
  readonly renewDeadlineMs?: number;
  /** Pause between acquire/renew attempts. Default 2 s. */
  readonly retryPeriodMs?: number;
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly onStartedLeading?: () => void;
  readonly onStoppedLeading?: () => void;
  /** Called when the observed holder changes (including to ourselves). */
  readonly onNewLeader?: (identity: string) => void;
}

interface Observed {
  readonly holder: string;
  readonly renewTime: string;
  readonly at: number;
}

/** Runs the election loop until `stop()`. */
export class LeaderElector {
  private readonly leaseName: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly clock: Clock;
  private leading = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private observed: Observed | undefined;
  private lastRenew = 0;
  private lastLeader: string | undefined;
  private lease: k8s.V1Lease | undefined;
  private tick: Promise<void> = Promise.resolve();

  constructor(private readonly opts: LeaderElectorOptions) {
    this.leaseName = opts.leaseName ?? LEADER_LEASE_NAME;
    this.leaseDurationMs = opts.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    this.clock = opts.clock ?? systemClock;
    if (!(this.leaseDurationMs > this.renewDeadlineMs && this.renewDeadlineMs > this.retryPeriodMs && this.retryPeriodMs > 0)) {
      throw new RangeError('leader election needs leaseDuration > renewDeadline > retryPeriod > 0');
    }
    if (this.leaseDurationMs < 1000) throw new RangeError('leaseDuration must be at least 1 s (the Lease stores whole seconds)');
  }

  /** True while this replica holds the Lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder last observed, if any. */
  get leader(): string | undefined {
    return this.lastLeader;
  }

  /** Starts campaigning. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  private schedule(delay: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.tick = this.attempt().finally(() => this.schedule(this.retryPeriodMs));
    }, delay);
  }

  private async attempt(): Promise<void> {
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew();
    } catch (e) {
      this.opts.logger?.warn({ lease: this.leaseName, apiServer: classifyKubeError(e).summary }, 'leader election: cannot reach the Lease');
    }
    if (!this.running) return;
    const now = this.clock.now();
    if (ok) {
      this.lastRenew = now;
      if (!this.leading) {
        this.leading = true;
        this.opts.logger?.info({ lease: this.leaseName, identity: this.opts.identity }, 'became leader');
        this.safe(this.opts.onStartedLeading);
      }
    } else if (this.leading && now - this.lastRenew >= this.renewDeadlineMs) {
      this.stepDown('could not renew the Lease within the renew deadline');
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.opts.logger?.warn({ lease: this.leaseName, identity: this.opts.identity, why }, 'stopped leading');
    this.safe(this.opts.onStoppedLeading);
  }

  private safe(fn: (() => void) | undefined): void {
    try {
      fn?.();
    } catch (e) {
      this.opts.logger?.error({ err: e instanceof Error ? e.message : String(e) }, 'leader election callback threw');
    }
  }

  private noteLeader(holder: string): void {
    if (holder !== '' && holder !== this.lastLeader) {
      this.lastLeader = holder;
      if (this.opts.onNewLeader !== undefined) this.safe(() => this.opts.onNewLeader?.(holder));
    }
  }

  private spec(previous: k8s.V1LeaseSpec | undefined, now: number): k8s.V1LeaseSpec {
    const takeover = previous?.holderIdentity !== this.opts.identity;
    const stamp = formatMicroTime(now) as unknown as k8s.V1MicroTime;
    return {
      holderIdentity: this.opts.identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      acquireTime: takeover ? stamp : (previous?.acquireTime ?? stamp),
      renewTime: stamp,
      // As client-go counts: every acquisition by a non-holder, a released Lease's included.
      leaseTransitions: (previous?.leaseTransitions ?? 0) + (takeover && previous !== undefined ? 1 : 0),
    };
  }

  /** One client-go style round. True when we hold the Lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const { coordination, namespace } = this.opts;
    const now = this.clock.now();
    let current: k8s.V1Lease;
    try {
      current = await coordination.readNamespacedLease({ name: this.leaseName, namespace });
    } catch (e) {
      if (!isHttpStatus(e, 404)) throw e;
      try {
        this.lease = await coordination.createNamespacedLease({ namespace, body: { metadata: { name: this.leaseName, namespace }, spec: this.spec(undefined, now) } });
      } catch (err) {
        if (isHttpStatus(err, 409)) return false;
        throw err;
      }
      this.observed = { holder: this.opts.identity, renewTime: String(this.lease.spec?.renewTime ?? ''), at: now };
      this.noteLeader(this.opts.identity);
      return true;
    }
    const holder = current.spec?.holderIdentity ?? '';
    const renewTime = String(current.spec?.renewTime ?? '');
    if (this.observed === undefined || this.observed.holder !== holder || this.observed.renewTime !== renewTime) {
      this.observed = { holder, renewTime, at: now };
    }
    this.noteLeader(holder);
    const durationMs = (current.spec?.leaseDurationSeconds ?? Math.ceil(this.leaseDurationMs / 1000)) * 1000;
    if (holder !== '' && holder !== this.opts.identity && this.observed.at + durationMs > now) return false;
    try {
      this.lease = await coordination.replaceNamespacedLease({
        name: this.leaseName,
        namespace,
        body: { ...current, metadata: { ...current.metadata, resourceVersion: current.metadata?.resourceVersion }, spec: this.spec(current.spec, now) },
      });
    } catch (e) {
      if (isHttpStatus(e, 409)) return false;
      throw e;
    }
    this.observed = { holder: this.opts.identity, renewTime: String(this.lease.spec?.renewTime ?? ''), at: now };
    this.noteLeader(this.opts.identity);
    return true;
  }

  /**
   * Stops campaigning. With `release` (default) a leader hands the Lease back at once so a
   * successor need not wait out the lease duration; `release: false` simulates a crash.
   */
  async stop(opts: { release?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.timer);
    await this.tick;
    const wasLeader = this.leading;
    if (wasLeader && opts.release !== false && this.lease !== undefined) {
      try {
        await this.opts.coordination.replaceNamespacedLease({
          name: this.leaseName,
          namespace: this.opts.namespace,
          body: { ...this.lease, spec: { ...this.lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: formatMicroTime(this.clock.now()) as unknown as k8s.V1MicroTime } },
        });
      } catch (e) {
        this.opts.logger?.warn({ lease: this.leaseName, apiServer: classifyKubeError(e).summary }, 'could not release the Lease; a successor will take it after it expires');
      }
    }
    this.stepDown('stopped');
  }
}
