/**
 * Where the JWT verification keys come from (a file, a URL, or OIDC issuer discovery) and how
 * they are cached: loaded on first use, reloaded when older than `maxAgeMs`, reloaded early when
 * a token names an unknown `kid` (at most once per `minRefreshIntervalMs`, so garbage tokens
 * cannot turn the CA into a request amplifier against the issuer), and kept when a reload fails.
 * A kept set still verifies the tokens it has keys for, but it cannot settle an unknown `kid`:
 * while the latest load failed, such a token is answered "unavailable" (503, retry), not 401.
 */
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet, JWK } from 'jose';
import type { Logger } from 'pino';
import type { Clock } from '../core/clock.js';
import { ConfigError, UnavailableError } from '../core/errors.js';
import { fetchJson, JWKS_MAX_BYTES } from './jwt-fetch.js';
import { FileTooLarge, NotRegularFile, readRegularFile } from '../files/read-regular-file.js';

/** Where to read the key set from. */
export type JwksSourceConfig =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'url'; readonly url: string; readonly caFile?: string }
  /** `<issuer>/.well-known/openid-configuration` -> `jwks_uri`; issuer defaults to the verified one. */
  | { readonly kind: 'discovery'; readonly issuer?: string; readonly caFile?: string }
  /** A key set held in memory and never reloaded: the warm-up's throwaway issuer (runtime/issue-path-warm-up.ts). */
  | { readonly kind: 'static'; readonly keys: JSONWebKeySet };

/** Cache tuning for {@link JwksKeySource}. */
export interface JwksCacheOptions {
  /** Reload a key set older than this (default 5 min). */
  readonly maxAgeMs?: number;
  /** Never reload more often than this, whatever tokens arrive (default 10 s). */
  readonly minRefreshIntervalMs?: number;
  /** Per-request timeout for URL and discovery sources (default 5 s). */
  readonly timeoutMs?: number;
  /**
   * A key set just read from the source (see {@link readJwksFileNow}), counted as its first
   * load: the source is not read again until it is stale or a token names a key it lacks.
   */
  readonly initialKeys?: JSONWebKeySet;
}

/** A cached key set with rate-limited reloads. */
export interface JwksKeySource {
  /** Human description for logs (path or URL, never secrets). */
  readonly description: string;
  /** The key set, loading or reloading it when missing or stale. */
  current(): Promise<JSONWebKeySet>;
  /**
   * Reloads now unless a load was tried within the rate limit; returns the key set to use.
   * Rejects with the load's UnavailableError when the latest load failed (now or within the
   * rate limit), even with a set cached: a key missing from a set that may be out of date says
   * nothing about the token.
   */
  refreshForUnknownKey(): Promise<JSONWebKeySet>;
}

const DEFAULT_MAX_AGE_MS = 5 * 60_000;
const DEFAULT_MIN_REFRESH_MS = 10_000;
// Members that only private or symmetric keys carry: a verification key set must have none.
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;

function invalidSet(description: string, why: string): UnavailableError {
  return new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', `JWKS from ${description} is unusable: ${why}`, {
    retryAfterSeconds: 5,
  });
}

/**
 * Checks a loaded document is a JWKS and keeps only public RSA and EC keys. Symmetric (`oct`)
 * keys are dropped so no HMAC key can ever verify a token, whatever the token's header says.
 */
export function sanitizeJwks(doc: unknown, description: string): JSONWebKeySet {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) {
    throw invalidSet(description, 'expected a JSON object with a "keys" array');
  }
  const keys: JWK[] = [];
  for (const key of (doc as { keys: unknown[] }).keys) {
    if (typeof key !== 'object' || key === null) continue;
    const jwk = key as Record<string, unknown>;
    if (PRIVATE_MEMBERS.some((m) => m in jwk)) throw invalidSet(description, 'it contains private or symmetric key material');
    if (jwk['kty'] !== 'RSA' && jwk['kty'] !== 'EC') continue;
    if (jwk['use'] !== undefined && jwk['use'] !== 'sig') continue;
    keys.push(jwk as JWK);
  }
  if (keys.length === 0) throw invalidSet(description, 'it holds no RSA or EC signing keys');
  return { keys };
}

/**
 * Reads a configured JWKS file at start-up: a typo in --jwks-file must stop the CA with a config
 * error, not surface later as a 503 on every token. Returns the usable key set, for the key
 * source to start from (`initialKeys`) so the file is read once, not again on the first token.
 * Throws ConfigError.
 */
export function readJwksFileNow(path: string, setting = '--jwks-file'): JSONWebKeySet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${setting} ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${setting} ${path} is not JSON`);
  }
  try {
    return sanitizeJwks(doc, path);
  } catch (err) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `${setting} ${(err as Error).message.replace(/^JWKS from /, '')}`);
  }
}

function readCaFile(caFile: string | undefined): string | undefined {
  if (caFile === undefined) return undefined;
  try {
    return readFileSync(caFile, 'utf8');
  } catch (cause) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', `cannot read the JWKS CA bundle ${caFile}: ${(cause as Error).message}`, { cause });
  }
}

function discoveryUrl(issuer: string): string {
  return `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}

/** Builds the loader for one source; it returns the raw document. */
function makeLoader(config: JwksSourceConfig, verifiedIssuer: string, timeoutMs: number | undefined): { description: string; load: () => Promise<unknown> } {
  if (config.kind === 'static') {
    const keys = config.keys;
    return { description: 'in-memory key set', load: () => Promise.resolve(keys) };
  }
  if (config.kind === 'file') {
    return {
      description: config.path,
      load: async () => {
        let text: string;
        try {
          // As large a document as a JWKS URL may send; a FIFO swapped in would otherwise hold
          // every later reload (and a libuv thread) for good.
          text = await readRegularFile(config.path, JWKS_MAX_BYTES);
        } catch (cause) {
          const why = cause instanceof NotRegularFile || cause instanceof FileTooLarge ? cause.message : `cannot be read: ${(cause as Error).message}`;
          throw new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', `JWKS file ${config.path} ${why}`, { cause });
        }
        try {
          return JSON.parse(text) as unknown;
        } catch (cause) {
          throw new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', `JWKS file ${config.path} is not JSON`, { cause });
        }
      },
    };
  }
  const caPem = readCaFile(config.caFile);
  const fetchOptions = { ...(caPem === undefined ? {} : { caPem }), ...(timeoutMs === undefined ? {} : { timeoutMs }) };
  if (config.kind === 'url') {
    return { description: config.url, load: () => fetchJson(config.url, fetchOptions) };
  }
  const issuer = config.issuer ?? verifiedIssuer;
  const discovery = discoveryUrl(issuer);
  let jwksUri: string | undefined;
  return {
    description: discovery,
    load: async () => {
      if (jwksUri === undefined) {
        const doc = await fetchJson(discovery, fetchOptions);
        const meta = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
        // OIDC Discovery 1.0 section 4.3: the document must name the issuer it was fetched for.
        if (meta['issuer'] !== issuer) throw invalidSet(discovery, `its "issuer" is not ${issuer}`);
        const uri = meta['jwks_uri'];
        if (typeof uri !== 'string' || !/^https?:\/\//.test(uri)) throw invalidSet(discovery, 'it has no http(s) "jwks_uri"');
        jwksUri = uri;
      }
      try {
        return await fetchJson(jwksUri, fetchOptions);
      } catch (err) {
        // The issuer may have moved its keys: rediscover on the next attempt.
        jwksUri = undefined;
        throw err;
      }
    },
  };
}

/**
 * Creates a cached key source. Throws ConfigError at once when a configured CA file is
 * unreadable; network and file errors surface later, per request, as UnavailableError.
 */
export function createJwksKeySource(
  config: JwksSourceConfig,
  options: { readonly issuer: string; readonly clock: Clock; readonly logger?: Logger } & JwksCacheOptions,
): JwksKeySource {
  const { description, load } = makeLoader(config, options.issuer, options.timeoutMs);
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  const minRefreshMs = options.minRefreshIntervalMs ?? DEFAULT_MIN_REFRESH_MS;
  const clock = options.clock;
  let keys: JSONWebKeySet | undefined = options.initialKeys === undefined ? undefined : sanitizeJwks(options.initialKeys, description);
  let loadedAt = keys === undefined ? 0 : clock.now();
  let lastAttemptAt = keys === undefined ? Number.NEGATIVE_INFINITY : loadedAt;
  // Why the latest load failed; undefined once a load succeeds.
  let lastFailure: unknown;
  let inflight: Promise<JSONWebKeySet> | undefined;

  // Rejects when the load fails, cached set or not; callers decide whether the cache will do.
  const attemptLoad = (): Promise<JSONWebKeySet> => {
    // One load at a time: a burst of requests with a cold cache costs one fetch.
    inflight ??= (async () => {
      lastAttemptAt = clock.now();
      try {
        const fresh = sanitizeJwks(await load(), description);
        keys = fresh;
        loadedAt = clock.now();
        lastFailure = undefined;
        return fresh;
      } catch (err) {
        lastFailure = err;
        if (keys !== undefined) options.logger?.warn({ source: description, err: (err as Error).message }, 'JWKS reload failed; keeping the cached key set');
        throw err;
      } finally {
        inflight = undefined;
      }
    })();
    return inflight;
  };
  const reloadKeepingCache = (): Promise<JSONWebKeySet> =>
    attemptLoad().catch((err: unknown) => {
      if (keys === undefined) throw err;
      return keys;
    });

  return {
    description,
    current: () => {
      if (keys === undefined) return attemptLoad();
      if (clock.now() - loadedAt >= maxAgeMs && clock.now() - lastAttemptAt >= minRefreshMs) return reloadKeepingCache();
      return Promise.resolve(keys);
    },
    refreshForUnknownKey: () => {
      if (inflight !== undefined) return inflight;
      if (keys !== undefined && clock.now() - lastAttemptAt < minRefreshMs) {
        return lastFailure === undefined ? Promise.resolve(keys) : Promise.reject(lastFailure as Error);
      }
      return attemptLoad();
    },
  };
}
