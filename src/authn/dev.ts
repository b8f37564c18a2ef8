/**
 * The `dev` authenticator, Rampart's embedded default: the `jwks` authenticator pointed at a
 * local issuer whose key lives in the CA state directory, plus a minter (`rampart token`) that
 * issues tokens shaped exactly like Kubernetes projected service-account tokens.
 */
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../core/clock.js';
import { BadRequestError, ConfigError, UnavailableError } from '../core/errors.js';
import { validatePathSegment, type WorkloadIdentity } from '../core/identity.js';
import type { AuthenticationRequest, Authenticator } from '../core/ports.js';
import { DEFAULT_AUDIENCE, createJwksAuthenticator } from './jwks.js';
import { MAX_NAMESPACE_CHARS, MAX_SERVICE_ACCOUNT_CHARS } from './jwt-claims.js';
import { DEV_JWKS_FILE, ensureDevIssuer } from './jwt-dev-issuer.js';

export { DEV_JWKS_FILE, DEV_KEY_FILE, ensureDevIssuer, type DevIssuer } from './jwt-dev-issuer.js';

/** `iss` of every dev token; never a real host, so a dev token can never pass as a cluster's. */
export const DEV_ISSUER = 'https://rampart.dev.local';
/** Default lifetime of a minted dev token, in seconds. */
export const DEFAULT_DEV_TOKEN_TTL_SECONDS = 3600;
/** Longest dev token lifetime: long enough for any demo, short enough that a leaked one does not live forever. */
export const MAX_DEV_TOKEN_TTL_SECONDS = 366 * 24 * 3600;

/** Options for {@link mintDevToken}. */
export interface MintDevTokenOptions {
  readonly stateDir: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** Default `rampart-ca`. */
  readonly audience?: string;
  /** Default 3600. */
  readonly ttlSeconds?: number;
  readonly podName?: string;
  readonly podUid?: string;
  readonly clock?: Clock;
}


// Kubernetes' own limits, which the authenticators also apply to every token's names.
function kubernetesName(name: string, what: string, max: number): string {
  if (name.length > max) throw new BadRequestError('RAMPART_ERR_SPIFFE_ID_INVALID', `the ${what} name is ${name.length} characters long; Kubernetes allows at most ${max}`);
  return name;
}

/** A stable UUID-shaped uid per service account, as a real cluster would have one. */
function serviceAccountUid(namespace: string, serviceAccount: string): string {
  const h = createHash('sha256').update(`rampart-dev:${namespace}/${serviceAccount}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/**
 * Mints a dev token for `system:serviceaccount:<namespace>:<serviceAccount>`, creating the dev
 * issuer in `stateDir` if needed. Throws BadRequestError (RAMPART_ERR_SPIFFE_ID_INVALID) for a
 * namespace or service account that is not a SPIFFE path segment, BadRequestError
 * (RAMPART_ERR_TTL_INVALID) for a bad TTL and ConfigError for other bad options.
 */
export async function mintDevToken(options: MintDevTokenOptions): Promise<string> {
  const namespace = kubernetesName(validatePathSegment(options.namespace), 'namespace', MAX_NAMESPACE_CHARS);
  const serviceAccount = kubernetesName(validatePathSegment(options.serviceAccount), 'service account', MAX_SERVICE_ACCOUNT_CHARS);
  const audience = options.audience ?? DEFAULT_AUDIENCE;
  if (audience.length === 0) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'the token audience must not be empty');
  const ttl = options.ttlSeconds ?? DEFAULT_DEV_TOKEN_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_DEV_TOKEN_TTL_SECONDS) {
    throw new BadRequestError('RAMPART_ERR_TTL_INVALID', `token TTL must be a whole number of seconds from 1 to ${MAX_DEV_TOKEN_TTL_SECONDS}`);
  }
  if (options.podUid !== undefined && options.podName === undefined) {
    throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'a pod uid needs a pod name too');
  }
  if (options.podName?.length === 0) throw new ConfigError('RAMPART_ERR_CONFIG_INVALID', 'the pod name must not be empty');

  const issuer = await ensureDevIssuer(options.stateDir);
  const iat = Math.floor((options.clock ?? systemClock).now() / 1000);
  const kubernetes: Record<string, unknown> = {
    namespace,
    serviceaccount: { name: serviceAccount, uid: serviceAccountUid(namespace, serviceAccount) },
  };
  if (options.podName !== undefined) kubernetes['pod'] = { name: options.podName, uid: options.podUid ?? randomUUID() };
  return new SignJWT({ 'kubernetes.io': kubernetes })
    .setProtectedHeader({ alg: 'ES256', kid: issuer.kid })
    .setIssuer(DEV_ISSUER)
    .setSubject(`system:serviceaccount:${namespace}:${serviceAccount}`)
    .setAudience([audience])
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(issuer.privateKey);
}

/** Options for {@link createDevAuthenticator}. */
export interface DevAuthenticatorOptions {
  readonly stateDir: string;
  readonly trustDomain: string;
  /** Default `rampart-ca`. */
  readonly audience?: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
}

/**
 * Creates the `dev` authenticator: verifies dev tokens against `<stateDir>/dev-issuer.jwks.json`,
 * creating the issuer on first use (call {@link ensureDevIssuer} at startup to do it eagerly).
 */
export function createDevAuthenticator(options: DevAuthenticatorOptions): Authenticator {
  const inner = createJwksAuthenticator({
    name: 'dev',
    issuer: DEV_ISSUER,
    trustDomain: options.trustDomain,
    source: { kind: 'file', path: join(options.stateDir, DEV_JWKS_FILE) },
    // A local file is cheap to re-read; pick up a re-created issuer key quickly.
    minRefreshIntervalMs: 1_000,
    ...(options.audience === undefined ? {} : { audience: options.audience }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  let ready: Promise<unknown> | undefined;
  return {
    name: 'dev',
    async authenticate(request: AuthenticationRequest): Promise<WorkloadIdentity | null> {
      if (request.bearerToken === undefined || request.bearerToken.length === 0) return null;
      ready ??= ensureDevIssuer(options.stateDir).catch((err: unknown) => {
        ready = undefined;
        // Callers should see 503 (retry later), not a config error, while the state dir is unusable.
        throw new UnavailableError('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE', `dev token issuer unavailable: ${(err as Error).message}`, { cause: err });
      });
      await ready;
      return inner.authenticate(request);
    },
  };
}
