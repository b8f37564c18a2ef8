/** The rotation status report admins read (`rampart root status`, DESIGN section 6). */
import type { PropagationStatus } from '../core/ca/propagation.js';
import { activeRoot, automaticSchedule, dueStep, intermediateRenewalAt, retireableAt } from '../core/ca/rotation.js';
import type { CaState } from '../core/ports.js';

export interface RotationStatus {
  readonly trustDomain: string;
  readonly sequence: number;
  readonly roots: ReadonlyArray<{
    pem: string;
    phase: string;
    notAfter: string;
    fingerprint: string;
    generation: number;
    plugged: boolean;
    retireableAt?: string;
    propagation?: PropagationStatus;
  }>;
  /**
   * The active root's intermediate; for a plugged-in one `notAfter` is the supplied chain's first
   * expiry and `renewAt` is null, because only the operator can replace it.
   */
  readonly intermediate: { notAfter: string; renewAt: string | null; plugged: boolean } | null;
  /** The automatic schedule for the active root; a plugged-in root has no `prepareAt`. */
  readonly schedule: { prepareAt: string | null; activateAt: string } | null;
  /** Whether the CA takes the schedule's steps itself (`--auto-rotate`); if not, they are advice. */
  readonly autoRotate: boolean;
  readonly nextStep: string | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

/** `propagationOf` judges a prepared root's spread among agents from the sequence it was added at. */
export function rotationStatus(state: CaState, now: number, autoRotate: boolean, propagationOf: (targetSequence: number) => PropagationStatus): RotationStatus {
  const active = activeRoot(state);
  const schedule = active ? automaticSchedule(active) : null;
  return {
    trustDomain: state.trustDomain,
    sequence: state.sequence,
    roots: state.roots.map((r) => ({
      pem: r.certPem,
      phase: r.phase,
      notAfter: iso(r.notAfter),
      fingerprint: r.fingerprint,
      generation: r.generation,
      plugged: r.plugged,
      ...(r.phase === 'retiring' ? { retireableAt: iso(retireableAt(r)) } : {}),
      ...(r.phase === 'prepared' ? { propagation: propagationOf(r.addedAtSequence) } : {}),
    })),
    intermediate: active ? { notAfter: iso(active.intermediate.notAfter), renewAt: isoOrNull(intermediateRenewalAt(active)), plugged: active.plugged } : null,
    schedule: schedule ? { prepareAt: isoOrNull(schedule.prepareAt), activateAt: iso(schedule.activateAt) } : null,
    autoRotate,
    nextStep: autoRotate ? dueStep(state, now) : null,
  };
}
