/** Leaf lifetime policy (DESIGN section 3): default 1 h, clamped to [min, max], never past the signer. */
import { BadRequestError } from '../errors.js';

export interface TtlPolicy {
  readonly defaultTtlMs: number;
  readonly minTtlMs: number;
  readonly maxTtlMs: number;
}

export const DEFAULT_TTL_POLICY: TtlPolicy = { defaultTtlMs: 3_600_000, minTtlMs: 300_000, maxTtlMs: 86_400_000 };

/** Backdating that absorbs clock skew between the CA and relying parties. */
export const LEAF_BACKDATE_MS = 60_000;

/** Checks that a policy is self-consistent; returns it. */
export function validateTtlPolicy(policy: TtlPolicy): TtlPolicy {
  if (!(policy.minTtlMs > 0 && policy.minTtlMs <= policy.defaultTtlMs && policy.defaultTtlMs <= policy.maxTtlMs)) {
    throw new BadRequestError('RAMPART_ERR_TTL_INVALID', 'ttl policy must satisfy 0 < min-ttl <= default-ttl <= max-ttl');
  }
  return policy;
}

/**
 * The TTL granted for a request: the default when none is asked, otherwise the request clamped
 * into [min, max] (clamped, not refused; the response says what was granted).
 */
export function grantTtlMs(policy: TtlPolicy, requestedSeconds: unknown): number {
  if (requestedSeconds === undefined || requestedSeconds === null) return policy.defaultTtlMs;
  if (typeof requestedSeconds !== 'number' || !Number.isInteger(requestedSeconds) || requestedSeconds <= 0) {
    throw new BadRequestError('RAMPART_ERR_TTL_INVALID', 'ttlSeconds must be a positive whole number of seconds');
  }
  return Math.min(policy.maxTtlMs, Math.max(policy.minTtlMs, requestedSeconds * 1000));
}

/** Validity window of a leaf: backdated start, end at min(now + ttl, signer notAfter). */
export function leafValidity(now: number, ttlMs: number, signerNotAfter: number): { notBefore: number; notAfter: number } {
  return { notBefore: now - LEAF_BACKDATE_MS, notAfter: Math.min(now + ttlMs, signerNotAfter) };
}
