/**
 * Lease-based leader election with client-go's semantics: a candidate takes the Lease when it
 * is free or its holder has not renewed for `leaseDuration` (judged by when *we* last saw it
 * change, so clock skew between replicas does not matter); every write is a resourceVersion
 * compare-and-swap; a leader that cannot renew within `renewDeadline` steps down.
 *
 * The step-down is a timer armed at each renewal, not a check after a call returns: a call to a
 * hung API server may never return, and a leader stuck in it would keep leading after another
 * replica took the expired Lease. Every round's calls are aborted when its time is up (a leader's
 * at its renew deadline, a candidate's after one renew deadline), so the loop always goes on.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { API_CALL_TIMEOUT_MS, abortableCall } from './abortable-call.js';
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

/**
 * How long a stopping leader tries to hand the Lease back. Best effort: without it a successor
 * waits for the Lease to expire; with the renew deadline as its bound, a 40 s deadline outlasted
 * a pod's 30 s grace period (outside QA).
 */
const RELEASE_TIMEOUT_MS = 5_000;

/** Why a round's calls were aborted: its time ran out, or the elector is stopping. */
type AbortReason = 'timed-out' | 'stopped';

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
  /** Fires `renewDeadline` after the last successful renewal and steps down. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Aborts the calls of the round in progress. */
  private inFlight: AbortController | undefined;
  /**
   * Rounds failed in a row, and the kind of the last failure. A round every 2 s used to warn every
   * 2 s for as long as an outage lasted; now each kind of failure warns once, the repeats are at
   * debug, and the end of the outage is logged once.
   */
  private failedRounds = 0;
  private lastFailureKind: string | undefined;

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
    const started = this.clock.now();
    const controller = new AbortController();
    this.inFlight = controller;
    // A leader's calls may run only until its renew deadline (the deadline timer aborts them);
    // a candidate's get one renew deadline, so a hung call cannot stall the campaign. Either way
    // one round gets at most half a renew deadline, and no longer than any other API call: a call
    // lost on a dead connection used to hold a leader's whole deadline and cost it the Lease,
    // though a new connection would have renewed it at the next round (outside QA).
    const budget = Math.min(this.renewDeadlineMs / 2, API_CALL_TIMEOUT_MS, this.leading ? this.lastRenew + this.renewDeadlineMs - started : this.renewDeadlineMs);
    const timer = setTimeout(() => controller.abort('timed-out' satisfies AbortReason), Math.max(0, budget));
    let ok = false;
    try {
      ok = await this.tryAcquireOrRenew(controller.signal, started);
      this.reached();
    } catch (e) {
      if (controller.signal.reason !== ('stopped' satisfies AbortReason)) this.logFailure(e, controller.signal.aborted);
    } finally {
      clearTimeout(timer);
      this.inFlight = undefined;
    }
    // An answer that raced its abort counts for nothing: the deadline may already have stepped
    // us down, and the next round reads the Lease afresh.
    if (!this.running || !ok || controller.signal.aborted) return;
    // Counted from when the round began: the Lease's renewTime says that moment, not the answer's.
    this.lastRenew = started;
    this.armDeadline(started + this.renewDeadlineMs - this.clock.now());
    if (!this.leading) {
      this.leading = true;
      this.opts.logger?.info({ lease: this.leaseName, identity: this.opts.identity }, 'became leader');
      this.safe(this.opts.onStartedLeading);
    }
  }

  private armDeadline(inMs: number): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = setTimeout(() => {
      this.stepDown('could not renew the Lease within the renew deadline');
      this.inFlight?.abort('timed-out' satisfies AbortReason);
    }, Math.max(0, inMs));
  }

  /** A round got its answers: ends an outage, logging it once. */
  private reached(): void {
    if (this.failedRounds > 0) {
      this.opts.logger?.info({ lease: this.leaseName, identity: this.opts.identity, failedRounds: this.failedRounds }, 'leader election: the Lease can be reached again');
    }
    this.failedRounds = 0;
    this.lastFailureKind = undefined;
  }

  /** 401/403 are refusals to fix in credentials or RBAC; the rest are outages that may pass. */
  private logFailure(e: unknown, timedOut: boolean): void {
    const base = { lease: this.leaseName, identity: this.opts.identity };
    this.failedRounds += 1;
    const f = timedOut ? undefined : classifyKubeError(e);
    const kind = f === undefined ? 'timed-out' : String(f.httpStatus ?? 'unreachable');
    const first = kind !== this.lastFailureKind;
    this.lastFailureKind = kind;
    const log = (fields: Record<string, unknown>, message: string): void => {
      if (first) this.opts.logger?.warn({ ...base, ...fields }, message);
      else this.opts.logger?.debug({ ...base, ...fields, failedRounds: this.failedRounds }, message);
    };
    if (f === undefined) {
      log({ apiServer: 'no answer in time; call aborted' }, 'leader election: cannot reach the Lease');
    } else if (f.httpStatus === 401 || f.httpStatus === 403) {
      log(
        { status: f.httpStatus, apiServer: f.summary },
        `leader election: the API server refused the Lease call (HTTP ${f.httpStatus}); check the CA's credentials and its RBAC (get, create, update on leases)`,
      );
    } else if (f.httpStatus !== undefined) {
      log({ status: f.httpStatus, apiServer: f.summary }, `leader election: the API server failed the Lease call (${f.summary})`);
    } else {
      log({ apiServer: f.summary }, 'leader election: cannot reach the Lease');
    }
  }

  private stepDown(why: string): void {
    clearTimeout(this.deadlineTimer);
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
  private async tryAcquireOrRenew(signal: AbortSignal, now: number): Promise<boolean> {
    const { coordination, namespace } = this.opts;
    const call = abortableCall(signal);
    let current: k8s.V1Lease;
    try {
      current = await coordination.readNamespacedLease({ name: this.leaseName, namespace }, call);
    } catch (e) {
      if (!isHttpStatus(e, 404)) throw e;
      try {
        this.lease = await coordination.createNamespacedLease({ namespace, body: { metadata: { name: this.leaseName, namespace }, spec: this.spec(undefined, now) } }, call);
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
    if (holder !== '' && holder !== this.opts.identity && this.observed.at + durationMs > now) {
      // Someone else holds it (an admin's edit, or a successor after our renewals failed): waiting
      // out the renew deadline would mean leading for seconds beside them, and say the wrong thing.
      this.stepDown(`the Lease is held by ${holder}`);
      return false;
    }
    try {
      this.lease = await coordination.replaceNamespacedLease({
        name: this.leaseName,
        namespace,
        body: { ...current, metadata: { ...current.metadata, resourceVersion: current.metadata?.resourceVersion }, spec: this.spec(current.spec, now) },
      }, call);
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
    // Stopping is not a missed renewal: the deadline must not report one while the Lease is handed back.
    clearTimeout(this.deadlineTimer);
    // A round stuck on a hung API server would hold up shutdown until its budget ran out.
    this.inFlight?.abort('stopped' satisfies AbortReason);
    await this.tick;
    const wasLeader = this.leading;
    if (wasLeader && opts.release !== false && this.lease !== undefined) {
      try {
        await this.opts.coordination.replaceNamespacedLease({
          name: this.leaseName,
          namespace: this.opts.namespace,
          body: { ...this.lease, spec: { ...this.lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: formatMicroTime(this.clock.now()) as unknown as k8s.V1MicroTime } },
        }, abortableCall(AbortSignal.timeout(Math.min(this.renewDeadlineMs, RELEASE_TIMEOUT_MS))));
      } catch (e) {
        this.opts.logger?.warn({ lease: this.leaseName, apiServer: classifyKubeError(e).summary }, 'could not release the Lease; a successor will take it after it expires');
      }
    }
    this.stepDown('stopped');
  }
}
