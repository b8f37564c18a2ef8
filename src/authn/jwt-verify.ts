/**
 * Synchronous JWT verification with node:crypto for the jwks (and so the dev) authenticator.
 * jose's jwtVerify goes through WebCrypto, where every signature check is a promise plus a
 * thread-pool job: about 215 µs of CPU per fresh token against 68 µs for the same check done
 * here, and a fleet of pods starting at once presents nothing but fresh tokens. jose still
 * mints dev tokens and fetches nothing; only the hot check moved.
 */
import { createPublicKey, verify as cryptoVerify, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JSONWebKeySet, JWK, JWSHeaderParameters, JWTPayload } from 'jose';

/** The only JWS algorithms accepted; never `none` and never HMAC (HS*). */
export const JWT_ALGORITHMS: readonly ['RS256', 'ES256'] = ['RS256', 'ES256'];
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** Why a token failed; `no-key` means the set holds no key for it (worth one reload). */
export class JwtRejection extends Error {
  constructor(
    readonly reason: 'no-key' | 'signature' | 'claims' | 'malformed',
    message: string,
  ) {
    super(message);
    this.name = 'JwtRejection';
  }
}

export interface JwtClaimsPolicy {
  readonly issuer: string;
  readonly audience: string;
  readonly clockToleranceSeconds: number;
  readonly nowMs: number;
}

const MIN_RSA_BITS = 2048;

interface CachedKey {
  readonly jwk: JWK;
  readonly key: KeyObject | null;
}

// One import per key per loaded set: the set object is replaced, never mutated, on reload.
const importedSets = new WeakMap<JSONWebKeySet, readonly CachedKey[]>();

function importedKeys(set: JSONWebKeySet): readonly CachedKey[] {
  let keys = importedSets.get(set);
  if (keys === undefined) {
    keys = set.keys.map((jwk) => {
      try {
        return { jwk, key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }) };
      } catch {
        return { jwk, key: null };
      }
    });
    importedSets.set(set, keys);
  }
  return keys;
}

function suits(jwk: JWK, alg: JwtAlgorithm, kid: string | undefined): boolean {
  if (kid !== undefined && jwk.kid !== kid) return false;
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  if (Array.isArray(jwk.key_ops) && !jwk.key_ops.includes('verify')) return false;
  return alg === 'RS256' ? jwk.kty === 'RSA' : jwk.kty === 'EC' && jwk.crv === 'P-256';
}

/** Keys of `set` that may have signed a token with this header, as jose's local JWKS picks them. */
export function candidateKeys(set: JSONWebKeySet, alg: JwtAlgorithm, kid: string | undefined): KeyObject[] {
  const out: KeyObject[] = [];
  for (const { jwk, key } of importedKeys(set)) {
    if (key === null || !suits(jwk, alg, kid)) continue;
    if (alg === 'RS256' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) continue;
    out.push(key);
  }
  return out;
}

/** Checks the JWS signature of a compact token against the candidates; throws JwtRejection. */
export function verifyJwsSignature(token: string, alg: JwtAlgorithm, keys: readonly KeyObject[]): void {
  if (keys.length === 0) throw new JwtRejection('no-key', 'no applicable key found in the JSON Web Key Set');
  const lastDot = token.lastIndexOf('.');
  const signingInput = Buffer.from(token.slice(0, lastDot), 'latin1');
  const signature = Buffer.from(token.slice(lastDot + 1), 'base64url');
  if (alg === 'ES256' && signature.length !== 64) throw new JwtRejection('signature', 'signature verification failed');
  for (const key of keys) {
    let ok = false;
    try {
      ok = alg === 'ES256' ? cryptoVerify('sha256', signingInput, { key, dsaEncoding: 'ieee-p1363' }, signature) : cryptoVerify('sha256', signingInput, key, signature);
    } catch {
      ok = false;
    }
    if (ok) return;
  }
  throw new JwtRejection('signature', 'signature verification failed');
}

/** Decodes the payload of a compact JWS into a JSON object; throws JwtRejection('malformed'). */
export function decodePayload(token: string): JWTPayload {
  const first = token.indexOf('.');
  const second = token.indexOf('.', first + 1);
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(token.slice(first + 1, second), 'base64url').toString('utf8'));
  } catch {
    throw new JwtRejection('malformed', 'malformed JWT payload');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new JwtRejection('malformed', 'JWT payload is not a JSON object');
  return value as JWTPayload;
}

/** Refuses headers that ask for processing this verifier does not do. */
export function checkHeader(header: JWSHeaderParameters): void {
  if (header.crit !== undefined) throw new JwtRejection('malformed', '"crit" header parameters are not supported');
  if (header.b64 !== undefined) throw new JwtRejection('malformed', 'the "b64" header parameter is not supported');
}

function claims(message: string): JwtRejection {
  return new JwtRejection('claims', message);
}

/** The registered-claim checks jose's jwtVerify made for us (iss, aud, exp, nbf, iat, sub). */
export function checkClaims(payload: JWTPayload, policy: JwtClaimsPolicy): void {
  const now = Math.floor(policy.nowMs / 1000);
  const tolerance = policy.clockToleranceSeconds;
  if (payload.iss !== policy.issuer) throw claims('unexpected "iss" claim value');
  const aud = payload.aud;
  const audOk = typeof aud === 'string' ? aud === policy.audience : Array.isArray(aud) && aud.includes(policy.audience);
  if (!audOk) throw claims('unexpected "aud" claim value');
  if (payload.exp === undefined) throw claims('missing required "exp" claim');
  if (typeof payload.exp !== 'number' || !Number.isFinite(payload.exp)) throw claims('"exp" claim must be a number');
  if (payload.exp <= now - tolerance) throw claims('"exp" claim timestamp check failed');
  if (payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number' || !Number.isFinite(payload.nbf)) throw claims('"nbf" claim must be a number');
    if (payload.nbf > now + tolerance) throw claims('"nbf" claim timestamp check failed');
  }
  if (payload.iat !== undefined && (typeof payload.iat !== 'number' || !Number.isFinite(payload.iat))) throw claims('"iat" claim must be a number');
  if (typeof payload.sub !== 'string') throw claims('missing required "sub" claim');
}
