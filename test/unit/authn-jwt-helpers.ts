/**
 * Test helpers for the JWT authenticator tests: real keys generated at test time and tokens
 * shaped like Kubernetes projected service-account tokens.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { SignJWT, type JWK, type JWTPayload } from 'jose';
import { AuthenticationError } from '../../src/core/errors.js';

export const ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const NOW = Date.UTC(2026, 0, 1, 12, 0, 0);

export interface TestKey {
  readonly alg: 'RS256' | 'ES256';
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly jwk: JWK;
}

/** Generates a signing key and its public JWK (RSA 2048 or P-256). */
export function makeKey(alg: 'RS256' | 'ES256', kid: string): TestKey {
  const pair = alg === 'RS256' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = { ...(pair.publicKey.export({ format: 'jwk' }) as JWK), kid, alg, use: 'sig' };
  return { alg, kid, privateKey: pair.privateKey, publicKey: pair.publicKey, jwk };
}

/** Claims of a projected token for ns/sa issued at NOW, valid 1 h. */
export function projectedClaims(overrides: JWTPayload = {}): JWTPayload {
  const iat = Math.floor(NOW / 1000);
  return {
    iss: ISSUER,
    sub: 'system:serviceaccount:shop:cart',
    aud: ['rampart-ca'],
    iat,
    nbf: iat,
    exp: iat + 3600,
    'kubernetes.io': {
      namespace: 'shop',
      serviceaccount: { name: 'cart', uid: '5c1a3f1e-0000-4000-8000-000000000001' },
      pod: { name: 'cart-7d9f', uid: '5c1a3f1e-0000-4000-8000-000000000002' },
    },
    ...overrides,
  };
}

/** Signs claims with a key, header {alg, kid}. */
export function sign(key: TestKey, claims: JWTPayload = projectedClaims(), kid: string = key.kid): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid }).sign(key.privateKey);
}

/** A temp directory removed by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a JWKS file holding these keys' public halves. */
export async function writeJwks(path: string, keys: readonly TestKey[]): Promise<void> {
  await writeFile(path, JSON.stringify({ keys: keys.map((k) => k.jwk) }));
}

/** Asserts the promise rejects with AuthenticationError whose detail matches and never leaks the token. */
export async function assertRejected(promise: Promise<unknown>, token: string, detail: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof AuthenticationError, `expected AuthenticationError, got ${String(err)}`);
    assert.equal(err.code, 'RAMPART_ERR_UNAUTHENTICATED');
    assert.match(err.detail, detail);
    assert.ok(!err.detail.includes(token) && !err.message.includes(token), 'the token must not appear in the error');
    return true;
  });
}
