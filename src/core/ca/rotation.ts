/**
 * Root rotation as pure state transitions (DESIGN section 4). Each function takes the current
 * state and `now` and returns the next state (one atomic write for the caller) or throws a
 * ConflictError that says why the step is not allowed and when it will be.
 */
import { ConflictError } from '../errors.js';
import { createIntermediate, createRoot, type IssuedCa } from '../pki/ca-certs.js';
import type { CaState, IntermediateRecord, RootRecord } from '../ports.js';
import { formatDuration } from '../clock.js';

/** Lifetimes and schedule knobs for the CA's own certificates. */
export interface CaLifetimes {
  readonly rootTtlMs: number;
  readonly intermediateTtlMs: number;
  readonly rootCurve?: 'P-256' | 'P-384';
}

export const DEFAULT_LIFETIMES: CaLifetimes = { rootTtlMs: 365 * 86_400_000, intermediateTtlMs: 30 * 86_400_000 };

/** A root + intermediate supplied from outside (Istio `cacerts`), already validated. */
export interface PluggedCa {
  readonly rootCertPem: string;
  readonly rootFingerprint: string;
  readonly rootNotBefore: number;
  readonly rootNotAfter: number;
  readonly intermediate: IntermediateRecord;
}

function notAllowed(message: string): ConflictError {
  return new ConflictError('RAMPART_ERR_ROTATION_NOT_ALLOWED', message);
}

function intermediateRecord(issued: IssuedCa): IntermediateRecord {
  return { certPem: issued.certPem, keyPem: issued.keyPem, notBefore: issued.notBefore, notAfter: issued.notAfter, chainPems: [] };
}

function newGeneratedRoot(trustDomain: string, generation: number, now: number, life: CaLifetimes, phase: RootRecord['phase'], sequence: number): RootRecord {
  const root = createRoot({ trustDomain, generation, now, ttlMs: life.rootTtlMs, ...(life.rootCurve ? { curve: life.rootCurve } : {}) });
  const intermediate = createIntermediate({ trustDomain, generation, issuerCertPem: root.certPem, issuerKeyPem: root.keyPem, now, ttlMs: life.intermediateTtlMs });
  return {
    fingerprint: root.fingerprint,
    generation,
    phase,
    certPem: root.certPem,
    keyPem: root.keyPem,
    notBefore: root.notBefore,
    notAfter: root.notAfter,
    plugged: false,
    addedAtSequence: sequence,
    preparedAt: now,
    ...(phase === 'active' ? { activatedAt: now } : {}),
    intermediate: intermediateRecord(intermediate),
  };
}

function pluggedRoot(plugged: PluggedCa, generation: number, now: number, phase: RootRecord['phase'], sequence: number): RootRecord {
  return {
    fingerprint: plugged.rootFingerprint,
    generation,
    phase,
    certPem: plugged.rootCertPem,
    keyPem: null,
    notBefore: plugged.rootNotBefore,
    notAfter: plugged.rootNotAfter,
    plugged: true,
    addedAtSequence: sequence,
    preparedAt: now,
    ...(phase === 'active' ? { activatedAt: now } : {}),
    intermediate: plugged.intermediate,
  };
}

/** First state of a new CA: one active root (generated, or the plugged-in one). */
export function bootstrapState(trustDomain: string, now: number, life: CaLifetimes, plugged?: PluggedCa): CaState {
  const root = plugged ? pluggedRoot(plugged, 1, now, 'active', 1) : newGeneratedRoot(trustDomain, 1, now, life, 'active', 1);
  return { schemaVersion: 1, trustDomain, sequence: 1, nextGeneration: 2, roots: [root], updatedAt: now };
}

/** The root whose intermediate signs now. */
export function activeRoot(state: CaState): RootRecord | undefined {
  return state.roots.find((r) => r.phase === 'active');
}

/** Adds a new root (generated, or plugged in) to the bundle in phase `prepared`. */
export function prepareRoot(state: CaState, now: number, life: CaLifetimes, plugged?: PluggedCa): CaState {
  const pending = state.roots.find((r) => r.phase === 'prepared');
  if (pending) {
    throw notAllowed(`root ${pending.fingerprint.slice(0, 16)} was already prepared at ${new Date(pending.preparedAt).toISOString()}; activate it before preparing another`);
  }
  if (plugged && state.roots.some((r) => r.fingerprint === plugged.rootFingerprint)) {
    throw notAllowed(`the plugged-in root ${plugged.rootFingerprint.slice(0, 16)} is already in the trust bundle`);
  }
  // A plugged-in CA's root key is offline: a root generated here would sign under a key the
  // operator never chose, beside the chain they supplied (outside QA).
  if (!plugged && activeRoot(state)?.plugged === true) {
    throw notAllowed('this CA signs under a plugged-in CA (--plugged-ca) and does not create roots: put the next root and its intermediate into the plugged-in CA directory as new files, and the CA prepares that root from them');
  }
  const sequence = state.sequence + 1;
  const root = plugged ? pluggedRoot(plugged, state.nextGeneration, now, 'prepared', sequence) : newGeneratedRoot(state.trustDomain, state.nextGeneration, now, life, 'prepared', sequence);
  return { ...state, sequence, nextGeneration: state.nextGeneration + 1, roots: [...state.roots, root], updatedAt: now };
}

/**
 * Records on the active root the longest leaf TTL the CA may grant from now on, so that retiring
 * the root later waits for the longest leaf it ever signed, even if a restart lowered --max-ttl in
 * between. Not a bundle change, so the sequence stays. Returns the same state when the root
 * already records at least that much.
 */
export function recordLeafTtlCeiling(state: CaState, maxLeafTtlMs: number, now: number): CaState {
  const active = activeRoot(state);
  if (!active || (active.maxLeafTtlMs ?? 0) >= maxLeafTtlMs) return state;
  return { ...state, roots: state.roots.map((r) => (r === active ? { ...r, maxLeafTtlMs } : r)), updatedAt: now };
}

/**
 * Moves the bundle sequence past one an agent reports holding, when that is beyond the state's
 * own: the state went back (an older backup restored, an edit by hand), and the next bundle
 * change would otherwise reuse a number agents and HTTP caches already hold with other content,
 * so they would keep the old bundle and the propagation check would count them as up to date
 * (outside QA). The roots stay as they are. Returns the same state when nothing is ahead of it.
 */
export function sequencePastReported(state: CaState, reportedSequence: number, now: number): CaState {
  if (reportedSequence <= state.sequence) return state;
  return { ...state, sequence: reportedSequence + 1, updatedAt: now };
}

/** Whether the prepared root has reached every agent (computed by the propagation tracker). */
export interface PropagationVerdict {
  readonly propagated: boolean;
  readonly reason: string;
  /** Not propagated only because slow pollers get one refresh interval: every agent seen holds it. */
  readonly onlyWaitingForSlowPollers?: boolean;
}

/**
 * Makes the prepared root's intermediate the signer; the previously active root goes `retiring`.
 * Refused (unless `force`) until the new bundle has propagated.
 */
export function activateRoot(state: CaState, now: number, options: { propagation: PropagationVerdict; force: boolean; maxLeafTtlMs: number }): CaState {
  const prepared = state.roots.find((r) => r.phase === 'prepared');
  if (!prepared) throw notAllowed('no root is prepared; run `rampart root prepare` first');
  if (!options.force && !options.propagation.propagated) {
    // Every agent seen holds it: the wait for slow pollers is the only reason (the soak read
    // "may not have reached every agent" before "3 of 3 hold it" as a contradiction).
    const lead = options.propagation.onlyWaitingForSlowPollers === true ? 'the new trust bundle has reached every agent seen so far' : 'the new trust bundle may not have reached every agent yet';
    throw notAllowed(`${lead}: ${options.propagation.reason}; retry then, or use --force`);
  }
  if (prepared.notAfter <= now) throw notAllowed(`the prepared root expired at ${new Date(prepared.notAfter).toISOString()}; prepare a new root`);
  if (prepared.intermediate.notAfter <= now) throw notAllowed(`the prepared root's intermediate expired at ${new Date(prepared.intermediate.notAfter).toISOString()}; renew it or prepare a new root`);
  const roots = state.roots.map((r): RootRecord => {
    if (r === prepared) return { ...r, phase: 'active', activatedAt: now, maxLeafTtlMs: options.maxLeafTtlMs };
    // The ceiling recorded while it signed may be higher than today's: a restart can lower --max-ttl.
    if (r.phase === 'active') return { ...r, phase: 'retiring', signingEndedAt: now, maxLeafTtlMs: Math.max(r.maxLeafTtlMs ?? 0, options.maxLeafTtlMs) };
    return r;
  });
  return { ...state, sequence: state.sequence + 1, roots, updatedAt: now };
}

/**
 * Extra wait before a retiring root leaves the bundle. Relying parties whose clocks run behind
 * still accept a leaf for a while after its notAfter (the CA backdates leaves by 60 s for the same
 * skew), and other replicas adopt an activation a moment after it is written.
 */
export const RETIRE_MARGIN_MS = 5 * 60_000;

/**
 * When a retiring root may be removed: once every leaf it could have signed has expired. A leaf
 * ends at the latest `signingEndedAt + maxLeafTtl`, and never after its intermediate (the last one
 * this root had, since retiring roots are not renewed) or the root itself, so an early root expiry
 * lets the root go sooner.
 */
export function retireableAt(root: RootRecord): number {
  const lastLeafEnd = root.signingEndedAt === undefined ? root.notAfter : root.signingEndedAt + (root.maxLeafTtlMs ?? 0);
  return Math.min(lastLeafEnd, root.intermediate.notAfter, root.notAfter) + RETIRE_MARGIN_MS;
}

/** Removes retiring roots whose leaves have all expired (or all retiring roots with `force`). */
export function retireRoots(state: CaState, now: number, options: { force: boolean }): CaState {
  const retiring = state.roots.filter((r) => r.phase === 'retiring');
  if (retiring.length === 0) throw notAllowed('no root is retiring; activate a prepared root first');
  const removable = retiring.filter((r) => options.force || now >= retireableAt(r));
  if (removable.length === 0) {
    const soonest = Math.min(...retiring.map(retireableAt));
    throw notAllowed(`leaves issued under the retiring root may be valid until ${new Date(soonest).toISOString()} (in ${formatDuration(soonest - now)}); retire then, or use --force`);
  }
  const roots = state.roots.filter((r) => !removable.includes(r));
  if (roots.length === 0) throw notAllowed('retiring would leave the trust bundle empty');
  return { ...state, sequence: state.sequence + 1, roots, updatedAt: now };
}

/** True when an intermediate has used 2/3 of its life and should be renewed. */
export function intermediateRenewalDue(intermediate: IntermediateRecord, now: number): boolean {
  return now >= intermediate.notBefore + ((intermediate.notAfter - intermediate.notBefore) * 2) / 3;
}

/**
 * Renews the intermediates of the active and prepared roots that are due. Returns the same
 * state object when nothing is due (or the root key is offline), so callers can skip the write.
 */
export function renewIntermediates(state: CaState, now: number, life: CaLifetimes): CaState {
  let changed = false;
  const roots = state.roots.map((r): RootRecord => {
    if (r.phase === 'retiring' || r.keyPem === null || !intermediateRenewalDue(r.intermediate, now)) return r;
    // Already clamped to the root's end: a renewal could not last longer, and near the end it would
    // re-trigger on every tick with ever shorter lives. Rotation, not renewal, is the cure here.
    if (r.notAfter <= now || r.intermediate.notAfter >= Math.floor(r.notAfter / 1000) * 1000) return r;
    changed = true;
    const issued = createIntermediate({ trustDomain: state.trustDomain, generation: r.generation, issuerCertPem: r.certPem, issuerKeyPem: r.keyPem, now, ttlMs: life.intermediateTtlMs });
    return { ...r, intermediate: intermediateRecord(issued) };
  });
  return changed ? { ...state, roots, updatedAt: now } : state;
}

/**
 * The operator renewed a plugged-in root's intermediate (new `ca-cert.pem`/`ca-key.pem` under the
 * same `root-cert.pem`): sign with the supplied one from now on. Its root key is offline, so this
 * is the only way such an intermediate is ever renewed. The bundle does not change, and leaves
 * already issued keep chaining to the same root. Unchanged state when nothing differs.
 */
export function replacePluggedIntermediate(state: CaState, plugged: PluggedCa, now: number): CaState {
  const supplied = plugged.intermediate;
  const sameChain = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((pem, i) => pem === b[i]);
  let changed = false;
  const roots = state.roots.map((r): RootRecord => {
    if (r.fingerprint !== plugged.rootFingerprint || !r.plugged || r.phase === 'retiring') return r;
    if (r.intermediate.certPem === supplied.certPem && r.intermediate.keyPem === supplied.keyPem && sameChain(r.intermediate.chainPems, supplied.chainPems)) return r;
    if (supplied.notAfter <= now) return r;
    changed = true;
    return { ...r, intermediate: supplied };
  });
  return changed ? { ...state, roots, updatedAt: now } : state;
}

/** Times of the automatic schedule for the active root (DESIGN section 4). */
export function rotationSchedule(root: RootRecord): { prepareAt: number; activateAt: number } {
  const life = root.notAfter - root.notBefore;
  return {
    prepareAt: root.notAfter - Math.min(life / 2, 30 * 86_400_000),
    activateAt: root.notAfter - Math.min(life / 6, 7 * 86_400_000),
  };
}

/**
 * The automatic schedule as the CA follows it for the active root. A plugged-in root's successor
 * comes from the operator (new files under --plugged-ca), never from a generated root, so it has
 * no prepare time; a root prepared meanwhile is still activated on time.
 */
export function automaticSchedule(root: RootRecord): { prepareAt: number | null; activateAt: number } {
  const { prepareAt, activateAt } = rotationSchedule(root);
  return { prepareAt: root.plugged ? null : prepareAt, activateAt };
}

/**
 * When the CA renews a root's intermediate by itself (at 2/3 of its life), or null when it cannot:
 * a plugged-in root's key is offline, so the operator supplies each new intermediate.
 */
export function intermediateRenewalAt(root: RootRecord): number | null {
  if (root.keyPem === null) return null;
  const { notBefore, notAfter } = root.intermediate;
  return notBefore + ((notAfter - notBefore) * 2) / 3;
}

/** The step the automatic schedule wants now, if any. */
export type ScheduledStep = 'prepare' | 'activate' | 'retire' | null;

/**
 * Retire first (it only shrinks the bundle), then activate a prepared root once the active one
 * reaches its activation time, then prepare; never prepare while an older root is still retiring,
 * so the bundle holds at most three roots, nor after a plugged-in root (automaticSchedule).
 */
export function dueStep(state: CaState, now: number): ScheduledStep {
  if (state.roots.some((r) => r.phase === 'retiring' && now >= retireableAt(r))) return 'retire';
  const active = activeRoot(state);
  if (!active) return null;
  const schedule = automaticSchedule(active);
  const prepared = state.roots.find((r) => r.phase === 'prepared');
  if (prepared) return now >= schedule.activateAt ? 'activate' : null;
  if (state.roots.some((r) => r.phase === 'retiring')) return null;
  return schedule.prepareAt !== null && now >= schedule.prepareAt ? 'prepare' : null;
}
