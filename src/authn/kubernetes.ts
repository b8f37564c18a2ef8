/**
 * The `kubernetes` authenticator: asks the API server to review a projected service-account
 * token (TokenReview, audience `rampart-ca`), and turns `system:serviceaccount:<ns>:<sa>` into a
 * workload identity. Positive answers are cached by SHA-256 of the token so the API server sees
 * one review per token per few minutes, and calls to it are rate limited on our side.
 */
import { digestText } from '../core/digest.js';
import { decodeJwt } from 'jose';
import { LRUCache } from 'lru-cache';
import type * as k8s from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { AuthenticationError, UnavailableError, isRampartError } from '../core/errors.js';
import { systemClock, type Clock } from '../core/clock.js';
import { validatePathSegment, validateTrustDomain, type WorkloadIdentity } from '../core/identity.js';
import type { AuthenticationRequest, Authenticator } from '../core/ports.js';
import { classifyKubeError } from '../k8s/api-errors.js';
import { timedCall } from '../k8s/abortable-call.js';
import { ReviewRateLimiter, type ReviewRateOptions } from './kubernetes-rate-limiter.js';

/** Audience Rampart's projected tokens carry. */
export const KUBERNETES_DEFAULT_AUDIENCE = 'rampart-ca';

/** Options of {@link KubernetesAuthenticator}. */
export interface KubernetesAuthenticatorOptions {
  /** client-node AuthenticationV1Api (see `createKubeClients(...).authentication`). */
  readonly api: k8s.AuthenticationV1Api;
  readonly trustDomain: string;
  /** Audiences asked for in the review; the answer must grant one of them. Default `['rampart-ca']`. */
  readonly audiences?: readonly string[];
  readonly clock?: Clock;
  readonly logger?: Logger;
  readonly registry?: Registry;
  /** Cached identities at most. Default 10,000. */
  readonly cacheSize?: number;
  /** Longest a positive review is reused. Default 5 minutes. */
  readonly maxCacheMs?: number;
  /** Default 50/s, burst 100, 16 concurrent. */
  readonly rate?: Partial<ReviewRateOptions>;
  /** Give up waiting for one review after this long (the API server may hang rather than refuse). Default 10 s. */
  readonly reviewTimeoutMs?: number;
}

interface CachedIdentity {
  readonly identity: WorkloadIdentity;
  readonly expiresAt: number;
}

const USERNAME = /^system:serviceaccount:([^:]+):([^:]+)$/;
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const POD_NAME = 'authentication.kubernetes.io/pod-name';
const POD_UID = 'authentication.kubernetes.io/pod-uid';

// Clock skew allowed on a token's exp before the API server is even asked (as for `jwks`).
const EXP_SKEW_MS = 60_000;
// A token the API server refused is refused again from memory for this long, so a client
// retrying one in a loop costs one review, not one a request.
const REFUSED_CACHE_MS = 10_000;
// An address whose tokens the API server refused this many times within the window gets no more
// reviews of new tokens until the window ends. Tokens with plausible claims and made-up
// signatures each cost a review, and a flood of them from one pod took the budget all pods
// share (outside QA); a genuine agent's token is almost never refused.
const REFUSED_REVIEWS_PER_ADDRESS = 10;
const REFUSED_REVIEWS_WINDOW_MS = 60_000;

/**
 * What a token's own claims already rule out, or null: the projected service-account tokens
 * Rampart takes name one of its audiences, carry an expiry still ahead, and have a
 * service-account subject. The claims are read, not trusted; the API server judges the token.
 * Anyone can send JWT-shaped junk, and each one cost a TokenReview out of the budget every pod
 * shares, so a flood of them left new pods with 429 (outside security QA).
 */
export function claimsProblem(token: string, audiences: readonly string[], nowMs: number): string | null {
  let claims: ReturnType<typeof decodeJwt>;
  try {
    claims = decodeJwt(token);
  } catch {
    return 'token is not a JWT with JSON claims';
  }
  const aud = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
  if (!aud.some((a) => audiences.includes(a))) return `token audience is not ${audiences.join(' or ')} (mount a projected service-account token with that audience)`;
  if (typeof claims.exp !== 'number') return 'token has no expiry (exp); mount a projected service-account token';
  if (claims.exp * 1000 + EXP_SKEW_MS < nowMs) return 'token has expired';
  if (typeof claims.sub !== 'string' || !USERNAME.test(claims.sub)) return 'token subject is not a service account';
  return null;
}

function counter(registry: Registry | undefined, name: string, help: string, labelNames: string[]): Counter<string> {
  const existing = registry?.getSingleMetric(name);
  if (existing instanceof Counter) return existing as Counter<string>;
  return new Counter({ name, help, labelNames, registers: registry === undefined ? [] : [registry] });
}

/** TokenReview-backed authenticator with a bounded positive cache and client-side rate limits. */
export class KubernetesAuthenticator implements Authenticator {
  readonly name = 'kubernetes';
  private readonly audiences: readonly string[];
  private readonly clock: Clock;
  private readonly maxCacheMs: number;
  private readonly timeoutMs: number;
  private readonly cache: LRUCache<string, CachedIdentity>;
  private readonly refused: LRUCache<string, { detail: string; until: number }>;
  private readonly refusedByAddress: LRUCache<string, { count: number; since: number }>;
  private readonly inflight = new Map<string, Promise<CachedIdentity>>();
  private readonly limiter: ReviewRateLimiter;
  private readonly reviews: Counter<string>;
  private readonly cacheHits: Counter<string>;

  constructor(private readonly opts: KubernetesAuthenticatorOptions) {
    validateTrustDomain(opts.trustDomain);
    this.audiences = opts.audiences ?? [KUBERNETES_DEFAULT_AUDIENCE];
    if (this.audiences.length === 0) throw new RangeError('the kubernetes authenticator needs at least one audience');
    this.clock = opts.clock ?? systemClock;
    this.maxCacheMs = opts.maxCacheMs ?? 5 * 60_000;
    this.timeoutMs = opts.reviewTimeoutMs ?? 10_000;
    this.cache = new LRUCache({ max: opts.cacheSize ?? 10_000 });
    this.refused = new LRUCache({ max: opts.cacheSize ?? 10_000 });
    this.refusedByAddress = new LRUCache({ max: opts.cacheSize ?? 10_000 });
    this.limiter = new ReviewRateLimiter({ perSecond: 50, burst: 100, maxConcurrent: 16, ...opts.rate }, this.clock);
    this.reviews = counter(opts.registry, 'rampart_ca_tokenreview_requests_total', 'TokenReview calls to the Kubernetes API server by result; rate_limited and refused_locally (claims no review would pass) made no call.', ['result']);
    this.cacheHits = counter(opts.registry, 'rampart_ca_tokenreview_cache_hits_total', 'Service-account tokens accepted from the review cache without calling the API server.', []);
  }

  /** Returns null without a bearer token; see {@link Authenticator.authenticate}. */
  async authenticate(request: AuthenticationRequest): Promise<WorkloadIdentity | null> {
    const token = request.bearerToken;
    if (token === undefined || token === '') return null;
    const key = digestText('sha256', token, 'hex');
    const now = this.clock.now();
    const cached = this.cache.get(key);
    if (cached !== undefined) {
      if (cached.expiresAt > now) {
        this.cacheHits.inc();
        return cached.identity;
      }
      this.cache.delete(key);
    }
    // Not even shaped like a JWT, or claims no review would pass: refuse here rather than spend an API call on it.
    if (!JWT_SHAPE.test(token)) throw this.reject(key, 'token is not a JWT');
    const problem = claimsProblem(token, this.audiences, now);
    if (problem !== null) {
      this.reviews.inc({ result: 'refused_locally' });
      throw this.reject(key, problem);
    }
    const refused = this.refused.get(key);
    if (refused !== undefined && refused.until > now) throw new AuthenticationError(refused.detail);
    let pending = this.inflight.get(key);
    if (pending === undefined) {
      this.checkAddress(request.peerAddress, now);
      pending = this.review(token, key, request.peerAddress).finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    return (await pending).identity;
  }

  /** Refuses (429) a new review for an address whose tokens were refused too often of late. */
  private checkAddress(address: string | undefined, now: number): void {
    if (address === undefined) return;
    const record = this.refusedByAddress.get(address);
    if (record === undefined || now - record.since >= REFUSED_REVIEWS_WINDOW_MS || record.count < REFUSED_REVIEWS_PER_ADDRESS) return;
    this.reviews.inc({ result: 'rate_limited' });
    const retryAfterSeconds = Math.max(1, Math.ceil((record.since + REFUSED_REVIEWS_WINDOW_MS - now) / 1000));
    throw new UnavailableError('RAMPART_ERR_RATE_LIMITED', `the Kubernetes API server refused ${record.count} tokens from this address within a minute; no more are reviewed from it for ${retryAfterSeconds}s`, { retryAfterSeconds });
  }

  private countRefusal(address: string | undefined): void {
    if (address === undefined) return;
    const now = this.clock.now();
    const record = this.refusedByAddress.get(address);
    if (record === undefined || now - record.since >= REFUSED_REVIEWS_WINDOW_MS) this.refusedByAddress.set(address, { count: 1, since: now });
    else record.count++;
  }

  private reject(key: string, detail: string): AuthenticationError {
    this.opts.logger?.info({ authenticator: this.name, tokenSha256Prefix: key.slice(0, 12), reason: detail }, 'service-account token rejected');
    return new AuthenticationError(detail);
  }

  private async review(token: string, key: string, address: string | undefined): Promise<CachedIdentity> {
    let release: () => void;
    try {
      release = await this.limiter.acquire();
    } catch (e) {
      this.reviews.inc({ result: 'rate_limited' });
      throw e;
    }
    let status: k8s.V1TokenReviewStatus | undefined;
    try {
      status = (await this.callApi(token)).status;
    } catch (e) {
      if (isRampartError(e)) throw e;
      const failure = classifyKubeError(e);
      this.reviews.inc({ result: 'error' });
      this.opts.logger?.warn({ authenticator: this.name, apiServer: failure.summary, status: failure.httpStatus }, 'TokenReview failed; the Kubernetes API server is unavailable or refused the CA');
      throw new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', 'the Kubernetes API server could not review the token; retry shortly', { retryAfterSeconds: 1 });
    } finally {
      release();
    }
    if (status?.authenticated !== true) {
      this.reviews.inc({ result: 'rejected' });
      // The API server's reason names the failed check, never the token itself.
      const detail = `TokenReview rejected the token: ${(status?.error ?? 'no reason given').slice(0, 300)}`;
      this.refused.set(key, { detail, until: this.clock.now() + REFUSED_CACHE_MS });
      this.countRefusal(address);
      throw this.reject(key, detail);
    }
    const granted = status.audiences ?? [];
    if (!granted.some((a) => this.audiences.includes(a))) {
      this.reviews.inc({ result: 'rejected' });
      throw this.reject(key, `TokenReview granted audiences ${JSON.stringify(granted)}, none of ${JSON.stringify(this.audiences)}`);
    }
    const identity = this.identityOf(status, key);
    this.reviews.inc({ result: 'authenticated' });
    const entry: CachedIdentity = { identity, expiresAt: this.cacheUntil(token) };
    if (entry.expiresAt > this.clock.now()) this.cache.set(key, entry);
    return entry;
  }

  private async callApi(token: string): Promise<k8s.V1TokenReview> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.reviews.inc({ result: 'error' });
        this.opts.logger?.warn({ authenticator: this.name, timeoutMs: this.timeoutMs }, 'TokenReview timed out');
        reject(new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', 'the Kubernetes API server did not answer the token review in time; retry shortly', { retryAfterSeconds: 1 }));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([
        // The timeout answers the caller; the signal also ends the request, or it would hold a socket.
        this.opts.api.createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...this.audiences] } } }, timedCall(this.timeoutMs)),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  private identityOf(status: k8s.V1TokenReviewStatus, key: string): WorkloadIdentity {
    const username = status.user?.username ?? '';
    const m = USERNAME.exec(username);
    if (m === null) {
      this.reviews.inc({ result: 'rejected' });
      throw this.reject(key, `authenticated user "${username.slice(0, 100)}" is not a service account`);
    }
    const [, namespace, serviceAccount] = m as unknown as [string, string, string];
    try {
      validatePathSegment(namespace);
      validatePathSegment(serviceAccount);
    } catch {
      this.reviews.inc({ result: 'rejected' });
      throw this.reject(key, 'service-account name cannot form a SPIFFE ID');
    }
    const podName = status.user?.extra?.[POD_NAME]?.[0];
    const podUid = status.user?.extra?.[POD_UID]?.[0];
    return {
      trustDomain: this.opts.trustDomain,
      namespace,
      serviceAccount,
      ...(podName === undefined || podName === '' ? {} : { podName }),
      ...(podUid === undefined || podUid === '' ? {} : { podUid }),
    };
  }

  /** min(token exp, now + maxCacheMs). The exp claim is read, not trusted: the review vouched for the token. */
  private cacheUntil(token: string): number {
    const cap = this.clock.now() + this.maxCacheMs;
    try {
      const exp = decodeJwt(token).exp;
      return typeof exp === 'number' ? Math.min(exp * 1000, cap) : cap;
    } catch {
      return cap;
    }
  }
}
