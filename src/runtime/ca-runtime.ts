/**
 * The running CA: owns the current state and signing context, persists every change through the
 * state store with compare-and-swap, follows changes other replicas write, renews the
 * intermediate, runs the rotation schedule when it leads, and wakes bundle long-pollers.
 */
import { Wakeups } from './wakeups.js';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { ConflictError, isRampartError, StateError, UnavailableError } from '../core/errors.js';
import { issueCertificate, signingContextFor, type IssuedCertificate, type IssueRequest, type SigningContext } from '../core/ca/authority.js';
import type { TtlPolicy } from '../core/ca/policy.js';
import type { PeerSightings, PropagationStatus } from '../core/ca/propagation.js';
import {
  activateRoot,
  bootstrapState,
  dueStep,
  prepareRoot,
  recordLeafTtlCeiling,
  renewIntermediates,
  replacePluggedIntermediate,
  retireRoots,
  sequencePastReported,
  type CaLifetimes,
  type PluggedCa,
} from '../core/ca/rotation.js';
import { bundleToPem } from '../core/ca/trust-bundle.js';
import type { CaState, StateStore, StoredState, UnreadableState } from '../core/ports.js';
import type { CaMetrics } from '../observability/ca-metrics.js';
import { AgentSequences } from './agent-sequences.js';
import { rotationStatus, type RotationStatus } from './rotation-status.js';

/** Named points between the steps of a state change; tests arm one to crash the process there. */
type Step = 'prepare' | 'activate' | 'retire' | 'renew-intermediate' | 'record-leaf-ttl' | 'sequence-past-agents';
export type CrashPoint = `${'bootstrap' | Step}:${'before-save' | 'after-save'}`;

export interface CaRuntimeOptions {
  readonly store: StateStore;
  readonly trustDomain: string;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: CaMetrics;
  readonly ttlPolicy: TtlPolicy;
  readonly lifetimes: CaLifetimes;
  readonly plugged?: PluggedCa;
  /** The plugged-in CA directory as it is now (followed on every tick, on the leader). */
  readonly pluggedSource?: (now: number) => PluggedCa | undefined;
  /** How often agents refresh the bundle; propagation is judged against it. */
  readonly bundleRefreshIntervalMs: number;
  /** Whether the automatic rotation schedule runs (only on the leader). */
  readonly autoRotate: boolean;
  readonly isLeader: () => boolean;
  /** The other CA replicas' agent sightings (Kubernetes); none with a single CA process. */
  readonly propagationPeers?: () => readonly PeerSightings[];
  /** Called at each step boundary; the CLI wires RAMPART_CRASH_AT to it. */
  readonly crashPoint?: (point: CrashPoint) => void;
}

type Listener = (context: SigningContext) => void;

/** A state change met stored content that does not decode; the watch will write the held state back. */
class StoredStateUnreadable extends Error {}

// The file store's watch polls every 2 s; a step waits up to 5 s for the write-back.
const UNREADABLE_WAIT_MS = 250;
const UNREADABLE_WAITS = 20;

export class CaRuntime {
  private stored: StoredState | null = null;
  private context: SigningContext | null = null;
  // Sequence whose bundle the store last published; -1 until the first one is.
  private publishedSequence = -1;
  private readonly listeners = new Set<Listener>();
  private readonly waiters = new Wakeups();
  private lastWaitLog: { at: number; reason: string } | undefined;
  private readonly agents: AgentSequences;
  private unwatch: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private mutating: Promise<unknown> = Promise.resolve();
  /** A plugged-in root that could not be prepared, so the refusal is logged once. */
  private pluggedRefused: string | undefined;
  private wroteFirstState = false;

  constructor(private readonly options: CaRuntimeOptions) {
    this.agents = new AgentSequences(options.bundleRefreshIntervalMs);
  }

  /** Loads or creates the state and starts following changes. */
  async start(): Promise<void> {
    let stored = await this.options.store.load();
    if (stored === null) {
      const state = bootstrapState(this.options.trustDomain, this.options.clock.now(), this.options.lifetimes, this.options.plugged);
      this.crash('bootstrap:before-save');
      try {
        const revision = await this.options.store.save(state, null);
        stored = { state, revision };
        this.wroteFirstState = true;
        // A plugged-in CA's root is the operator's, not created here: start-ca.ts logs plugged-ca-loaded.
        if (this.options.plugged === undefined) {
          this.options.logger.info({ event: 'root-created', fingerprint: state.roots[0]?.fingerprint, phase: 'active', sequence: state.sequence }, 'created the first root and signing intermediate');
        }
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        stored = await this.options.store.load();
        if (stored === null) throw err;
      }
      this.crash('bootstrap:after-save');
    }
    if (stored.state.trustDomain !== this.options.trustDomain) {
      throw new StateError('RAMPART_ERR_STATE_CORRUPT', `the stored CA state is for trust domain "${stored.state.trustDomain}" but --trust-domain is "${this.options.trustDomain}"; use another state directory or the matching trust domain`);
    }
    await this.adopt(stored);
    // Before the first certificate: this CA may grant leaves up to its --max-ttl under the active root.
    await this.mutate('record-leaf-ttl', (s, now) => recordLeafTtlCeiling(s, this.options.ttlPolicy.maxTtlMs, now), true);
    this.unwatch = this.options.store.watch((next) => {
      if (next !== null && !this.isBehind(next)) {
        void this.adopt(next).catch((err: unknown) => this.options.logger.error({ err }, 'could not adopt CA state written by another replica'));
        return;
      }
      void this.serialized(() => this.adoptOrRestore(next)).catch((err: unknown) => this.logRestoreFailed(err));
    }, (unreadable) => {
      void this.serialized(() => this.restoreOverUnreadable(unreadable)).catch((err: unknown) => this.logRestoreFailed(err));
    });
    await this.tick();
    this.timer = setInterval(() => void this.tick(), 5_000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unwatch?.();
    this.waiters.wakeAll();
    await this.mutating.catch(() => undefined);
  }

  /** The current signing context; throws RAMPART_ERR_NOT_READY before start. */
  current(): SigningContext {
    if (this.context === null) throw new StateError('RAMPART_ERR_NOT_READY', 'the CA has not loaded its state yet');
    return this.context;
  }

  /** Whether start() found no stored state and wrote the first one (another replica may have). */
  get createdState(): boolean {
    return this.wroteFirstState;
  }

  get ready(): boolean {
    return this.context !== null && this.context.signer.issuer.notAfter > this.options.clock.now();
  }

  state(): CaState {
    if (this.stored === null) throw new StateError('RAMPART_ERR_NOT_READY', 'the CA has not loaded its state yet');
    return this.stored.state;
  }

  /** Subscribes to signing-context changes (new intermediate, new bundle). */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  issue(request: IssueRequest): IssuedCertificate {
    return issueCertificate(this.current(), this.options.ttlPolicy, this.options.clock, request);
  }

  /** Records the bundle sequence an agent reports holding. */
  reportAgentSequence(agentId: string, sequence: number): void {
    const now = this.options.clock.now();
    this.agents.report(agentId, sequence, now);
    if (this.stored !== null && sequence > this.stored.state.sequence) this.catchUpSequence(sequence, now);
    if (this.agents.ratioDue(now)) this.updatePropagationRatio();
  }

  /**
   * Agents hold a bundle sequence this CA never reached: the state went back (a backup put back
   * while every CA was stopped). The leader moves the sequence past the one most agents hold, so
   * the next bundle change gets a number no agent has seen (rotation.ts sequencePastReported).
   */
  private catchUpSequence(reported: number, now: number): void {
    if (!this.options.isLeader()) return;
    const held = this.stored?.state.sequence ?? 0;
    const verdict = this.agents.aheadOf(held, now);
    if (verdict.kind === 'minority') {
      this.options.logger.warn({ event: 'agent-sequence-ahead', reported, sequence: held }, `an agent reports bundle sequence ${reported}, past this CA's ${held}, but most identities seen recently do not: not acted on (a workload may be sending made-up reports)`);
    }
    if (verdict.kind !== 'majority') return;
    const majority = verdict.majority;
    // Judged again on the stored state inside the step: a leader that had not yet read another
    // replica's newer write finds the agents' sequence there, and does nothing.
    this.mutate('sequence-past-agents', (s, t) => sequencePastReported(s, majority, t), true).then(
      (state) => {
        if (state.sequence !== majority + 1) return;
        this.options.logger.warn(
          { event: 'sequence-behind-agents', code: 'RAMPART_ERR_STATE_CORRUPT', reported: majority, sequence: held, next: state.sequence },
          `most agents hold bundle sequence ${majority} or later, past this CA's ${held}: the state went back (an older backup, or an edit by hand); published the current bundle as sequence ${state.sequence} so agents and caches take it, and so the next change gets a new number`,
        );
      },
      (err: unknown) => {
        this.options.logger.error({ event: 'sequence-catch-up-failed', reason: isRampartError(err) ? err.message : String(err) }, 'could not move the bundle sequence past the agents\' one; will try again on a later report');
      },
    );
  }

  /** Resolves once the bundle sequence passes `after`, or after `timeoutMs`. */
  waitForSequenceAfter(after: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.current().bundle.sequence > after) return Promise.resolve();
    return this.waiters.wait(timeoutMs, signal);
  }

  /** Propagation of bundle sequence `targetSequence` (or later) among agents seen recently. */
  propagationStatus(targetSequence: number): PropagationStatus {
    return this.agents.status(targetSequence, this.options.clock.now(), this.options.propagationPeers?.() ?? []);
  }

  /** This process's agent sightings for the other replicas, judged against the newest sequence. */
  shareSightings(replica: string): PeerSightings {
    return this.agents.share(replica, this.stored?.state.sequence ?? 0, this.options.clock.now());
  }

  /** Adds a new root to the bundle. It has no safety check to override, so no `force`. */
  async prepare(): Promise<CaState> {
    return this.mutate('prepare', (s, now) => prepareRoot(s, now, this.options.lifetimes));
  }

  /** Prepares a plugged-in CA (new root into the bundle first). */
  async preparePlugged(plugged: PluggedCa): Promise<CaState> {
    return this.mutate('prepare', (s, now) => prepareRoot(s, now, this.options.lifetimes, plugged));
  }

  async activate(force = false): Promise<CaState> {
    return this.mutate('activate', (s, now) => {
      const prepared = s.roots.find((r) => r.phase === 'prepared');
      const propagation = prepared ? this.propagationStatus(prepared.addedAtSequence) : { propagated: false, reason: 'no prepared root' };
      return activateRoot(s, now, { propagation, force, maxLeafTtlMs: this.options.ttlPolicy.maxTtlMs });
    });
  }

  async retire(force = false): Promise<CaState> {
    return this.mutate('retire', (s, now) => retireRoots(s, now, { force }));
  }

  /** A status report for admins (DESIGN section 6). */
  status(): RotationStatus {
    return rotationStatus(this.state(), this.options.clock.now(), this.options.autoRotate, (target) => this.propagationStatus(target));
  }

  /** Periodic work: intermediate renewal, automatic rotation on the leader, metrics. */
  async tick(): Promise<void> {
    try {
      await this.publishBundleFile(false);
      const state = this.state();
      const now = this.options.clock.now();
      // Only the leader writes state, so only it needs to read the plugged-in files.
      const plugged = this.options.isLeader() ? this.options.pluggedSource?.(now) : undefined;
      if (plugged !== undefined) await this.followPlugged(plugged, now);
      if (renewIntermediates(state, now, this.options.lifetimes) !== state && this.options.isLeader()) {
        await this.mutate('renew-intermediate', (s, t) => renewIntermediates(s, t, this.options.lifetimes), true);
      }
      if (this.options.autoRotate && this.options.isLeader()) {
        // dueStep never prepares after a plugged-in root: the operator supplies its successor.
        const step = dueStep(this.state(), now);
        if (step === 'prepare') await this.prepare();
        else if (step === 'activate') await this.activate(false).catch((err: unknown) => this.logNotYet(err));
        else if (step === 'retire') await this.retire(false);
      }
      this.updateMetrics();
    } catch (err) {
      this.options.logger.error({ err }, 'periodic CA maintenance failed; will retry');
    }
  }

  /**
   * The operator changed the plugged-in CA files: a new intermediate under a stored root signs
   * from now on; a new root enters the bundle as prepared (activation stays the operator's call,
   * as at start-up).
   */
  private async followPlugged(plugged: PluggedCa, now: number): Promise<void> {
    const state = this.state();
    if (!state.roots.some((r) => r.fingerprint === plugged.rootFingerprint)) {
      if (this.pluggedRefused === plugged.rootFingerprint) return;
      try {
        await this.preparePlugged(plugged);
        this.options.logger.warn({ root: plugged.rootFingerprint }, 'the plugged-in CA differs from the stored roots; it was added as a prepared root, activate it to switch');
      } catch (err) {
        this.pluggedRefused = plugged.rootFingerprint;
        this.options.logger.warn({ root: plugged.rootFingerprint, reason: isRampartError(err) ? err.message : String(err) }, 'the plugged-in CA has a new root that cannot be prepared now');
      }
      return;
    }
    if (replacePluggedIntermediate(state, plugged, now) === state) return;
    await this.mutate('renew-intermediate', (s, t) => replacePluggedIntermediate(s, plugged, t), true);
    this.options.logger.info({ event: 'plugged-intermediate-replaced', root: plugged.rootFingerprint, notAfter: new Date(plugged.intermediate.notAfter).toISOString() }, 'signing with the intermediate now in the plugged-in CA files');
  }

  private logNotYet(err: unknown): void {
    if (isRampartError(err) && err.code === 'RAMPART_ERR_ROTATION_NOT_ALLOWED') {
      // The schedule retries every tick (5 s), possibly for days: log what changed, and
      // otherwise only every ten minutes.
      const now = this.options.clock.now();
      if (this.lastWaitLog?.reason !== err.message || now - this.lastWaitLog.at >= 600_000) {
        this.lastWaitLog = { at: now, reason: err.message };
        this.options.logger.warn({ event: 'rotation-waiting', reason: err.message }, 'automatic activation is waiting for the new bundle to reach every agent');
      }
      return;
    }
    throw err;
  }

  /**
   * Applies a pure transition with compare-and-swap, re-reading and retrying when another replica
   * wrote first. Serialized within this process so concurrent admin calls do not race each other.
   */
  private async mutate(step: Step, transition: (s: CaState, now: number) => CaState, quiet = false): Promise<CaState> {
    for (let waits = 0; ; waits++) {
      try {
        return await this.serialized(() => this.attemptStep(step, transition, quiet));
      } catch (err) {
        if (!(err instanceof StoredStateUnreadable)) throw err;
        // The store's watch writes the held state back over it (restoreOverUnreadable), which is
        // queued behind this step: wait outside the queue, then take the step on what it wrote.
        if (waits >= UNREADABLE_WAITS) {
          throw new UnavailableError('RAMPART_ERR_NOT_READY', `the stored CA state changed to content that does not decode and this CA has not written its own back yet; step "${step}" was not taken, retry`, { retryAfterSeconds: 5 });
        }
        await new Promise((resolve) => setTimeout(resolve, UNREADABLE_WAIT_MS));
      }
    }
  }

  private async attemptStep(step: Step, transition: (s: CaState, now: number) => CaState, quiet: boolean): Promise<CaState> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const base = this.stored ?? (await this.options.store.load());
      if (base === null) throw new StateError('RAMPART_ERR_NOT_READY', 'no CA state');
      const next = transition(base.state, this.options.clock.now());
      if (next === base.state) return next;
      this.crash(`${step}:before-save`);
      try {
        const revision = await this.options.store.save(next, base.revision);
        this.crash(`${step}:after-save`);
        await this.adopt({ state: next, revision });
        // Bookkeeping, not rotation steps: the TTL ceiling, and a sequence moved past the agents'.
        if (step !== 'record-leaf-ttl' && step !== 'sequence-past-agents') this.options.metrics.rotationSteps.inc({ step });
        if (!quiet || step === 'renew-intermediate') this.logStep(step, base.state, next);
        return next;
      } catch (err) {
        if (!(err instanceof ConflictError) || err.code !== 'RAMPART_ERR_STATE_CONFLICT') throw err;
        await this.adoptOrRestore(await this.loadForStep());
      }
    }
    throw new ConflictError('RAMPART_ERR_STATE_CONFLICT', 'the CA state kept changing under this replica; retry');
  }

  /** Loads the stored state; content that does not decode is reported as StoredStateUnreadable. */
  private async loadForStep(): Promise<StoredState | null> {
    try {
      return await this.options.store.load();
    } catch (err) {
      if (err instanceof StateError && err.code === 'RAMPART_ERR_STATE_CORRUPT') throw new StoredStateUnreadable();
      throw err;
    }
  }

  /** Runs `fn` after every store write this process started before it. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.mutating.then(fn, fn);
    this.mutating = result.catch(() => undefined);
    return result;
  }

  /** True when `stored` is older than the state this process already holds. */
  private isBehind(stored: StoredState): boolean {
    return this.stored !== null && stored.state.sequence < this.stored.state.sequence;
  }

  /**
   * Adopts what the store holds, unless the store lost the state or went back to an older bundle
   * sequence while this process ran (a deleted Secret, an old backup put back, a replica that
   * created a second root meanwhile). Then this process writes its state back, because the
   * sequence must never decrease and every valid leaf must chain to a bundled root (DESIGN
   * section 4). To restore a backup or start over on purpose, every CA process must be stopped.
   */
  private async adoptOrRestore(fresh: StoredState | null): Promise<void> {
    const held = this.stored;
    if (fresh !== null && !this.isBehind(fresh)) {
      await this.adopt(fresh);
      return;
    }
    if (held === null) return;
    try {
      const revision = await this.options.store.save(held.state, fresh === null ? null : fresh.revision);
      this.stored = { state: held.state, revision };
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // Someone wrote meanwhile, perhaps another replica restoring the same state: take it if it is not older.
      const now = await this.options.store.load();
      if (now !== null && !this.isBehind(now)) await this.adopt(now);
      return;
    }
    this.options.logger.error(
      { event: 'state-restored', code: 'RAMPART_ERR_STATE_CORRUPT', found: fresh === null ? 'nothing' : `sequence ${fresh.state.sequence}`, restoredSequence: held.state.sequence },
      fresh === null
        ? `the CA state disappeared from the store while this CA ran; wrote bundle sequence ${held.state.sequence} back (stop every CA process before removing or restoring the state on purpose)`
        : `the CA state in the store went back from bundle sequence ${held.state.sequence} to ${fresh.state.sequence}; wrote sequence ${held.state.sequence} back (stop every CA process before restoring an old backup)`,
    );
    await this.republishBundleFile();
  }

  /**
   * The store now holds content that does not decode (a truncated file, a hand-edited or emptied
   * Secret). This process still holds the last good state and signs with it, but a CA started now
   * would refuse to start, so the good state is written back over it, compare-and-swap against the
   * unreadable revision. Content that names a newer schema is left alone: a newer Rampart wrote it
   * (a rolling upgrade), and overwriting it would undo that version's changes.
   */
  private async restoreOverUnreadable(unreadable: UnreadableState): Promise<void> {
    const held = this.stored;
    if (held === null) return;
    if (unreadable.newerSchema) {
      this.options.logger.error(
        { event: 'state-unreadable', code: 'RAMPART_ERR_STATE_CORRUPT', reason: unreadable.reason, heldSequence: held.state.sequence },
        'the CA state in the store was written by a newer Rampart version; this CA keeps signing with the state it holds and does not overwrite it (finish the upgrade)',
      );
      return;
    }
    try {
      const revision = await this.options.store.save(held.state, unreadable.revision);
      this.stored = { state: held.state, revision };
    } catch (err) {
      // Someone wrote meanwhile; the watch delivers what they wrote.
      if (err instanceof ConflictError) return;
      throw err;
    }
    this.options.logger.error(
      { event: 'state-restored', code: 'RAMPART_ERR_STATE_CORRUPT', found: 'unreadable content', reason: unreadable.reason, restoredSequence: held.state.sequence },
      `the CA state in the store changed to content that does not decode; wrote bundle sequence ${held.state.sequence} back (stop every CA process before editing the state by hand)`,
    );
    await this.republishBundleFile();
  }

  private logRestoreFailed(err: unknown): void {
    this.options.logger.error({ event: 'state-restore-failed', reason: err instanceof Error ? err.message : String(err) }, 'could not write the CA state back to the store; retrying on the next change');
  }

  private logStep(step: string, before: CaState, after: CaState): void {
    const phases = after.roots.map((r) => `${r.fingerprint.slice(0, 12)}:${r.phase}`).join(' ');
    this.options.logger.info({ event: `rotation-${step}`, sequence: after.sequence, previousSequence: before.sequence, roots: phases }, `root rotation step "${step}" done`);
  }

  /** Makes a stored state current: new signing context, bundle publication, wake-ups. */
  private async adopt(stored: StoredState): Promise<void> {
    if (this.stored && stored.state.sequence < this.stored.state.sequence) return;
    if (this.stored && this.stored.revision === stored.revision) return;
    const context = signingContextFor(stored.state);
    const previous = this.stored;
    this.stored = stored;
    this.context = context;
    this.agents.served(stored.state.sequence, this.options.clock.now());
    await this.publishBundleFile(previous === null);
    this.updateMetrics();
    for (const listener of this.listeners) listener(context);
    this.waiters.wakeAll();
  }

  /** After a write-back: whatever removed or broke the state may have taken root-cert.pem with it. */
  private async republishBundleFile(): Promise<void> {
    this.publishedSequence = -1;
    await this.publishBundleFile(false);
  }

  /**
   * Writes the current bundle for local consumers (root-cert.pem) unless that sequence is already
   * written. At start-up a failure stops the CA. Later the state change has already been saved, so
   * a failed write (a full disk, say) must not make the step look failed or skip the wake-ups:
   * it is logged and retried on every tick until it succeeds.
   */
  private async publishBundleFile(strict: boolean): Promise<void> {
    const stored = this.stored;
    const context = this.context;
    if (stored === null || context === null || this.publishedSequence === stored.state.sequence) return;
    try {
      await this.options.store.publishBundle(bundleToPem(context.bundle));
      this.publishedSequence = stored.state.sequence;
    } catch (err) {
      if (strict) throw err;
      this.options.logger.error({ event: 'bundle-publish-failed', sequence: stored.state.sequence, reason: (err as Error).message }, 'could not publish the trust bundle file; retrying every 5 s');
    }
  }

  private updateMetrics(): void {
    if (this.stored === null || this.context === null) return;
    const m = this.options.metrics;
    m.rootExpiry.reset();
    for (const r of this.stored.state.roots) m.rootExpiry.set({ fingerprint: r.fingerprint }, r.notAfter / 1000);
    m.intermediateExpiry.set(this.context.signer.issuer.notAfter / 1000);
    m.bundleSequence.set(this.stored.state.sequence);
    this.updatePropagationRatio();
  }

  /** Share of recently seen agents holding the newest sequence (1 when none were seen). */
  private updatePropagationRatio(): void {
    if (this.stored === null) return;
    this.options.metrics.propagationRatio.set(this.propagationStatus(this.stored.state.sequence).ratio);
  }

  private crash(point: CrashPoint): void {
    this.options.crashPoint?.(point);
  }
}
