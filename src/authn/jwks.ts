/**
 * The `jwks` authenticator: verifies Kubernetes projected service-account JWTs locally against
 * a JSON Web Key Set, sparing the API server a TokenReview per request (DESIGN section 5).
 */
import { digestText } from '../core/digest.js';
import { LRUCache } from 'lru-cache';
import { decodeProtectedHeader } from 'jose';
import type { JSONWebKeySet, JWSHeaderParameters, JWTPayload } from 'jose';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { AuthenticationError, ConfigError, isRampartError, UnavailableError } from '../core/errors.js';
import { validateTrustDomain, type WorkloadIdentity } from '../core/identity.js';
import type { AuthenticationRequest, Authenticator } from '../core/ports.js';
import { identityFromServiceAccountClaims } from './jwt-claims.js';
import { createJwksKeySource, type JwksCacheOptions, type JwksKeySource, type JwksSourceConfig } from './jwt-key-source.js';
import { candidateKeys, checkClaims, checkHeader, decodePayload, JWT_ALGORITHMS, JwtRejection, verifyJwsSignature, type JwtAlgorithm } from './jwt-verify.js';

export type { JwksSourceConfig, JwksCacheOptions } from './jwt-key-source.js';

export { JWT_ALGORITHMS } from './jwt-verify.js';
/** Audience projected tokens must carry unless configured otherwise. */
export const DEFAULT_AUDIENCE = 'rampart-ca';

const VERIFIED_CACHE_ENTRIES = 10_000;
const VERIFIED_CACHE_MS = 5 * 60_000;
/** Allowed clock difference for exp/nbf/iat, in seconds. */
export const DEFAULT_CLOCK_SKEW_SECONDS = 60;

// Projected tokens are ~1 KiB; anything far larger is not one and is not worth parsing.
const MAX_TOKEN_CHARS = 16 * 1024;
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Options for {@link createJwksAuthenticator}. */
export interface JwksAuthenticatorOptions extends JwksCacheOptions {
  /** Issuer the tokens must name in `iss` (for discovery, also where keys are discovered). */
  readonly issuer: string;
  /** Trust domain of the identities this authenticator vouches for. */
  readonly trustDomain: string;
  /** Where the verification keys come from. */
  readonly source: JwksSourceConfig;
  /** Audience the token must carry (default `rampart-ca`). */
  readonly audience?: string;
  /** Authenticator name reported to callers and logs (default `jwks`). */
  readonly name?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Seconds of clock skew tolerated for exp/nbf (default 60). */
  readonly clockSkewSeconds?: number;
}

function printable(value: unknown): string {
  return JSON.stringify(value ?? null).slice(0, 32);
}

/**
 * Creates the `jwks` authenticator. Returns null for requests without a bearer token; throws
 * AuthenticationError for any token that fails a check, and UnavailableError when the key set
 * cannot be loaded and none is cached. Throws ConfigError now for invalid options.
 */
export function createJwksAuthenticator(options: JwksAuthenticatorOptions): Authenticator {
  const name = options.name ?? 'jwks';
  const clock = options.clock ?? systemClock;
  const audience = options.audience ?? DEFAULT_AUDIENCE;
  const skew = options.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  const trustDomain = options.trustDomain;
  try {
    validateTrustDomain(trustDomain);
  } catch (cause) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${name} authenticator: ${(cause as Error).message}`, { cause });
  }
  if (options.issuer.length === 0) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${name} authenticator: issuer must not be empty`);
  if (audience.length === 0) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${name} authenticator: audience must not be empty`);

  const source: JwksKeySource = createJwksKeySource(options.source, {
    issuer: options.issuer,
    clock,
    ...(options.logger === undefined ? {} : { logger: options.logger }),
    ...(options.maxAgeMs === undefined ? {} : { maxAgeMs: options.maxAgeMs }),
    ...(options.minRefreshIntervalMs === undefined ? {} : { minRefreshIntervalMs: options.minRefreshIntervalMs }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.initialKeys === undefined ? {} : { initialKeys: options.initialKeys }),
  });
  // Signature with the current set; a token naming a key the set lacks triggers one reload
  // (the issuer may have rotated its signing key since the set was cached).
  // Callers learn only that the keys are unavailable; where they come from (a file path, an
  // internal URL) and why they failed is for the CA's log.
  const keysOrUnavailable = async (load: () => Promise<JSONWebKeySet>, logMessage: string): Promise<JSONWebKeySet> => {
    try {
      return await load();
    } catch (err) {
      if (!isRampartError(err) || err.code !== 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE') throw err;
      options.logger?.warn({ source: source.description, reason: err.message }, logMessage);
      throw new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', `the ${name} authenticator cannot load its issuer's signing keys now; retry later`, { retryAfterSeconds: err.retryAfterSeconds ?? 5 });
    }
  };
  const verifySignature = async (token: string, alg: JwtAlgorithm, kid: string | undefined): Promise<void> => {
    const set = await keysOrUnavailable(() => source.current(), 'JWKS cannot be loaded and no key set is cached');
    try {
      verifyJwsSignature(token, alg, candidateKeys(set, alg, kid));
    } catch (err) {
      if (!(err instanceof JwtRejection) || err.reason !== 'no-key') throw err;
      // The cached set lacks the token's key and cannot be refreshed: the issuer may have rotated
      // to that key, so the token is neither accepted nor called bad; the caller retries.
      const fresh: JSONWebKeySet = await keysOrUnavailable(() => source.refreshForUnknownKey(), 'a token names a key the cached JWKS lacks and the JWKS cannot be reloaded; answering unavailable');
      if (fresh === set) throw err;
      verifyJwsSignature(token, alg, candidateKeys(fresh, alg, kid));
    }
  };

  // Agents present the same token for up to an hour: a verified token's identity is reused
  // until min(exp, 5 min) so repeat requests skip the signature check, as the kubernetes
  // authenticator does with TokenReview. Keyed by SHA-256 so the cache never holds tokens.
  const verified = new LRUCache<string, { identity: WorkloadIdentity; until: number }>({ max: VERIFIED_CACHE_ENTRIES });

  return {
    name,
    async authenticate(request: AuthenticationRequest): Promise<WorkloadIdentity | null> {
      const token = request.bearerToken;
      if (token === undefined || token.length === 0) return null;
      const cacheKey = digestText('sha256', token, 'base64');
      const hit = verified.get(cacheKey);
      if (hit !== undefined && clock.now() < hit.until) return hit.identity;
      if (token.length > MAX_TOKEN_CHARS) throw new AuthenticationError(`token rejected: longer than ${MAX_TOKEN_CHARS} characters`);
      if (!COMPACT_JWS.test(token)) throw new AuthenticationError('token rejected: not a compact JWS (header.payload.signature)');
      let header: JWSHeaderParameters;
      try {
        header = decodeProtectedHeader(token) as JWSHeaderParameters;
      } catch {
        throw new AuthenticationError('token rejected: malformed JWS header');
      }
      // Checked before key lookup so a forged header cannot even trigger a JWKS reload.
      if (typeof header.alg !== 'string' || !(JWT_ALGORITHMS as readonly string[]).includes(header.alg)) {
        throw new AuthenticationError(`token rejected: alg ${printable(header.alg)} is not one of ${JWT_ALGORITHMS.join(', ')}`);
      }
      let payload: JWTPayload;
      try {
        checkHeader(header);
        payload = decodePayload(token);
      } catch (err) {
        throw new AuthenticationError(`token rejected: ${(err as Error).message}`);
      }
      // Another issuer's token (e.g. a cluster token meeting the dev authenticator first in the
      // chain) is refused before key lookup, so it cannot trigger JWKS reloads either.
      if (payload.iss !== options.issuer) throw new AuthenticationError('token rejected: unexpected "iss" claim value');
      let identity: WorkloadIdentity;
      try {
        // Claims before the signature: a token they refuse is refused whatever its key, so an
        // expired or misaddressed token never makes the CA reload its JWKS, and gets 401 rather
        // than 503 while the JWKS source is down. Only the signature can make a token acceptable.
        checkClaims(payload, { issuer: options.issuer, audience, clockToleranceSeconds: skew, nowMs: clock.now() });
        identity = identityFromServiceAccountClaims(payload, trustDomain);
        await verifySignature(token, header.alg as JwtAlgorithm, typeof header.kid === 'string' ? header.kid : undefined);
      } catch (err) {
        if (isRampartError(err) || !(err instanceof JwtRejection)) throw err;
        throw new AuthenticationError(`token rejected: ${err.message}`);
      }
      if (typeof payload.exp === 'number') verified.set(cacheKey, { identity, until: Math.min(payload.exp * 1000, clock.now() + VERIFIED_CACHE_MS) });
      return identity;
    },
  };
}
