/**
 * The synchronous JWS/claims checks behind the jwks authenticator, for the cases the
 * authenticator tests do not reach: key selection rules, header refusals and signature shape.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, type JWK } from 'jose';
import { candidateKeys, checkClaims, checkHeader, decodePayload, JwtRejection, verifyJwsSignature } from '../../src/authn/jwt-verify.js';
import { ISSUER, NOW, makeKey, projectedClaims, sign } from './authn-jwt-helpers.js';

const policy = { issuer: ISSUER, audience: 'rampart-ca', clockToleranceSeconds: 60, nowMs: NOW };

function rejection(reason: JwtRejection['reason']) {
  return (err: unknown): boolean => err instanceof JwtRejection && err.reason === reason;
}

test('picks keys by kid, kty/curve, use, alg and key_ops', () => {
  const ec = makeKey('ES256', 'ec');
  const rsa = makeKey('RS256', 'rsa');
  const encOnly = { ...makeKey('ES256', 'enc').jwk, use: 'enc' };
  const wrongAlg = { ...makeKey('ES256', 'alg').jwk, alg: 'ES384' };
  const noVerify = { ...makeKey('ES256', 'ops').jwk, use: undefined, key_ops: ['encrypt'] };
  const p384 = { ...(generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' }) as JWK), kid: 'p384' };
  const set = { keys: [ec.jwk, rsa.jwk, encOnly, wrongAlg, noVerify, p384] };
  assert.equal(candidateKeys(set, 'ES256', 'ec').length, 1);
  assert.equal(candidateKeys(set, 'RS256', 'ec').length, 0, 'an EC key never verifies RS256');
  assert.equal(candidateKeys(set, 'ES256', undefined).length, 1, 'only the P-256 signing key without restrictions');
  for (const kid of ['enc', 'alg', 'ops', 'p384']) assert.equal(candidateKeys(set, 'ES256', kid).length, 0, kid);
});

test('skips RSA keys shorter than 2048 bits and keys that do not import', () => {
  const short = { ...(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }) as JWK), kid: 'short' };
  const broken = { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'broken' };
  assert.equal(candidateKeys({ keys: [short, broken] }, 'RS256', undefined).length, 0);
  assert.equal(candidateKeys({ keys: [short, broken] }, 'ES256', 'broken').length, 0);
});

test('without a kid every candidate is tried', async () => {
  const a = makeKey('ES256', 'a');
  const b = makeKey('ES256', 'b');
  const token = await new SignJWT(projectedClaims()).setProtectedHeader({ alg: 'ES256' }).sign(b.privateKey);
  const keys = candidateKeys({ keys: [{ ...a.jwk, kid: undefined }, { ...b.jwk, kid: undefined }] }, 'ES256', undefined);
  assert.equal(keys.length, 2);
  verifyJwsSignature(token, 'ES256', keys);
  assert.throws(() => verifyJwsSignature(token, 'ES256', keys.slice(0, 1)), rejection('signature'));
  assert.throws(() => verifyJwsSignature(token, 'ES256', []), rejection('no-key'));
});

test('an ES256 signature must be 64 raw bytes (not DER)', async () => {
  const ec = makeKey('ES256', 'ec');
  const token = await sign(ec);
  const [h, p, s] = token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  const der = Buffer.concat([Buffer.from([0x30, 68, 0x02, 32]), sig.subarray(0, 32), Buffer.from([0x02, 32]), sig.subarray(32)]);
  const keys = candidateKeys({ keys: [ec.jwk] }, 'ES256', 'ec');
  verifyJwsSignature(token, 'ES256', keys);
  assert.throws(() => verifyJwsSignature(`${h}.${p}.${der.toString('base64url')}`, 'ES256', keys), rejection('signature'));
});

test('refuses crit and b64 headers and non-object payloads', () => {
  assert.throws(() => checkHeader({ alg: 'ES256', crit: ['exp'] }), rejection('malformed'));
  assert.throws(() => checkHeader({ alg: 'ES256', b64: false }), rejection('malformed'));
  checkHeader({ alg: 'ES256', kid: 'x', typ: 'JWT' });
  for (const payload of ['[]', '"x"', 'null', 'not json']) {
    assert.throws(() => decodePayload(`e30.${Buffer.from(payload).toString('base64url')}.x`), rejection('malformed'), payload);
  }
});

test('claims: aud as a string or array, exp/nbf edges with tolerance, iat and sub types', () => {
  const now = Math.floor(NOW / 1000);
  checkClaims(projectedClaims({ aud: 'rampart-ca' }), policy);
  assert.throws(() => checkClaims(projectedClaims({ aud: 'rampart-ca-2' }), policy), /"aud"/);
  assert.throws(() => checkClaims(projectedClaims({ aud: [] }), policy), /"aud"/);
  checkClaims(projectedClaims({ exp: now - 59 }), policy);
  assert.throws(() => checkClaims(projectedClaims({ exp: now - 60 }), policy), /"exp" claim timestamp/);
  assert.throws(() => checkClaims(projectedClaims({ exp: '9999999999' as unknown as number }), policy), /"exp" claim must be a number/);
  checkClaims(projectedClaims({ nbf: now + 60 }), policy);
  assert.throws(() => checkClaims(projectedClaims({ nbf: now + 61 }), policy), /"nbf" claim timestamp/);
  assert.throws(() => checkClaims(projectedClaims({ iat: 'yesterday' as unknown as number }), policy), /"iat"/);
  const { sub: _sub, ...noSub } = projectedClaims();
  assert.throws(() => checkClaims(noSub, policy), /"sub"/);
  assert.throws(() => checkClaims(projectedClaims({ iss: 'https://other' }), policy), /"iss"/);
});
