/**
 * When the agent renews its certificate and how long it waits after a failure (DESIGN section 7).
 * Pure functions of their inputs: the caller supplies `now` and the random draw, so tests can
 * pin every decision without timers.
 */

/** Renew at 50 % of the certificate's lifetime, give or take this fraction of the lifetime. */
export const RENEWAL_FRACTION = 0.5;
export const RENEWAL_JITTER = 0.1;

/** Retry delays: full jitter under a ceiling that doubles from 1 s up to 60 s. */
export const BACKOFF_BASE_MS = 1_000;
export const BACKOFF_MAX_MS = 60_000;
/** Ceiling of the retry delay while the certificate held has expired: the pod is down meanwhile. */
export const EXPIRED_RETRY_MAX_MS = 5_000;
/** A Retry-After beyond this is treated as this: a CA must not park agents for hours. */
export const MAX_RETRY_AFTER_MS = 300_000;

/** The part of a certificate's validity the policy looks at, in ms since the epoch. */
export interface Validity {
  /** Start of the usable lifetime (see {@link usableFrom}). */
  readonly notBefore: number;
  readonly notAfter: number;
}

/**
 * Where the lifetime starts for renewal purposes. The CA backdates NotBefore by 60 s against
 * clock skew; measuring 50 % from that backdated instant would renew a 4 s certificate before it
 * arrived, so the moment the agent received it counts when it is later.
 */
export function usableFrom(certNotBefore: number, receivedAt: number): number {
  return Math.max(certNotBefore, receivedAt);
}

/**
 * The instant to renew: notBefore + lifetime x (50 % ± 10 %). `random` is a uniform draw in
 * [0, 1); 0 gives the 40 % point, 0.5 the middle, values near 1 the 60 % point.
 */
export function renewalTime(validity: Validity, random: number): number {
  const lifetime = Math.max(0, validity.notAfter - validity.notBefore);
  const fraction = RENEWAL_FRACTION + (clamp01(random) * 2 - 1) * RENEWAL_JITTER;
  return validity.notBefore + Math.floor(lifetime * fraction);
}

/** Ceiling of the n-th retry delay (n = 1 after the first failure): 1 s, 2 s, 4 s ... 60 s. */
export function backoffCeiling(failures: number, baseMs: number = BACKOFF_BASE_MS, maxMs: number = BACKOFF_MAX_MS): number {
  const n = Math.max(1, Math.floor(failures));
  // 2 ** 30 is far past any useful ceiling; capping the exponent keeps the number finite.
  return Math.min(maxMs, baseMs * 2 ** Math.min(n - 1, 30));
}

/** Inputs of {@link retryDelay}. */
export interface BackoffInput {
  /** Consecutive failures so far, counting the one that just happened (>= 1). */
  readonly failures: number;
  /** Uniform draw in [0, 1). */
  readonly random: number;
  /** The CA's Retry-After, in seconds, when it sent one. */
  readonly retryAfterSeconds?: number | undefined;
  /** How long the certificate held stays valid (zero or less once it has expired); undefined when none is held. */
  readonly expiresInMs?: number | undefined;
  readonly baseMs?: number;
  readonly maxMs?: number;
}

/**
 * Delay before the next attempt: full jitter (uniform in [0, ceiling]) so a fleet of agents
 * that lost the CA together does not return together; never shorter than the CA's Retry-After.
 * While a certificate is still valid the wait is at most half of what it has left (and at least
 * the base delay), so retries come closer together as it nears expiry instead of one long
 * backoff outliving it while the CA is already back; once it has expired, at most 5 s.
 */
export function retryDelay(input: BackoffInput): number {
  const ceiling = backoffCeiling(input.failures, input.baseMs, input.maxMs);
  let jittered = Math.floor(clamp01(input.random) * ceiling);
  if (input.expiresInMs !== undefined && Number.isFinite(input.expiresInMs)) {
    const cap = input.expiresInMs > 0 ? Math.max(input.baseMs ?? BACKOFF_BASE_MS, Math.floor(input.expiresInMs / 2)) : EXPIRED_RETRY_MAX_MS;
    jittered = Math.min(jittered, cap);
  }
  const retryAfter = input.retryAfterSeconds === undefined || !Number.isFinite(input.retryAfterSeconds) || input.retryAfterSeconds <= 0 ? 0 : Math.min(input.retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS);
  return Math.max(jittered, retryAfter);
}

/** Ahead of the start-up deadline by this much (at most) the agent makes its last attempt. */
export const LAST_STARTUP_ATTEMPT_LEAD_MS = 1_000;

/**
 * When the last attempt for the first certificate is made: shortly before the start-up
 * deadline, so that the answer of a CA that came back late can still arrive in time. The lead
 * is a quarter of the start-up window when that is shorter than a second.
 */
export function lastStartupAttemptAt(deadline: number, windowMs: number): number {
  return deadline - Math.min(LAST_STARTUP_ATTEMPT_LEAD_MS, Math.max(0, Math.floor(windowMs / 4)));
}

/** Inputs of {@link startupRetryAt}, all in ms since the epoch. */
export interface StartupRetryInput {
  /** When the attempt that just failed started. */
  readonly attemptedAt: number;
  /** When the backoff (see {@link retryDelay}) would make the next attempt. */
  readonly backoffUntil: number;
  /** The last attempt before the start-up deadline (see {@link lastStartupAttemptAt}). */
  readonly lastAttemptAt: number;
}

/**
 * The next attempt while start-up waits for its first certificate. The full-jitter backoff may
 * draw a wait that outlives the deadline; the agent would then sleep through the time the CA is
 * back and give up without asking again. Such a wait is cut to the last attempt instead. A
 * failure of that last attempt (or a later one) keeps its backoff: the deadline ends start-up.
 */
export function startupRetryAt(input: StartupRetryInput): number {
  if (input.backoffUntil <= input.lastAttemptAt || input.attemptedAt >= input.lastAttemptAt) return input.backoffUntil;
  return input.lastAttemptAt;
}

/** What the renewal loop should do at `now`. */
export type RenewalDecision = { readonly action: 'renew' } | { readonly action: 'wait'; readonly untilMs: number };

/** Renewal loop state the decision depends on. */
export interface RenewalState {
  /** When the held certificate is due for renewal, or null when none is held. */
  readonly renewAt: number | null;
  /** Earliest next attempt after a failure, or null when the last attempt succeeded. */
  readonly retryAt: number | null;
}

/**
 * Decides whether to ask the CA now. After a failure the backoff wins, even when the
 * certificate is past its renewal point: hammering a struggling CA helps nobody.
 */
export function decide(state: RenewalState, now: number): RenewalDecision {
  if (state.retryAt !== null) return now >= state.retryAt ? { action: 'renew' } : { action: 'wait', untilMs: state.retryAt };
  if (state.renewAt === null || now >= state.renewAt) return { action: 'renew' };
  return { action: 'wait', untilMs: state.renewAt };
}

function clamp01(x: number): number {
  if (!Number.isFinite(x) || x < 0) return 0;
  return x >= 1 ? 1 - Number.EPSILON : x;
}
