import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import { ManualClock } from '../../src/core/clock.js';
import type { Logger } from 'pino';
import { ConfigError, UnavailableError } from '../../src/core/errors.js';
import { createJwksAuthenticator } from '../../src/authn/jwks.js';
import { readJwksFileNow } from '../../src/authn/jwt-key-source.js';
import { ISSUER, NOW, assertRejected, makeKey, projectedClaims, sign, tempDir, writeJwks, type TestKey } from './authn-jwt-helpers.js';

let dir: string;
let cleanup: () => Promise<void>;
let rsa: TestKey;
let ec: TestKey;
let jwksPath: string;

before(async () => {
  ({ dir, cleanup } = await tempDir('rampart-authn-jwks-'));
  rsa = makeKey('RS256', 'rsa-1');
  ec = makeKey('ES256', 'ec-1');
  jwksPath = join(dir, 'jwks.json');
  await writeJwks(jwksPath, [rsa, ec]);
});
after(() => cleanup());

function authenticator(clock = new ManualClock(NOW), path = jwksPath) {
  return createJwksAuthenticator({ issuer: ISSUER, trustDomain: 'cluster.local', source: { kind: 'file', path }, clock });
}

function b64(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

test('accepts an RS256 projected token from a JWKS file and reads pod info', async () => {
  const identity = await authenticator().authenticate({ bearerToken: await sign(rsa) });
  assert.deepEqual(identity, {
    trustDomain: 'cluster.local',
    namespace: 'shop',
    serviceAccount: 'cart',
    podName: 'cart-7d9f',
    podUid: '5c1a3f1e-0000-4000-8000-000000000002',
  });
});

test('accepts an ES256 token without the kubernetes.io claim', async () => {
  const claims = projectedClaims({ sub: 'system:serviceaccount:default:web' });
  delete claims['kubernetes.io'];
  const identity = await authenticator().authenticate({ bearerToken: await sign(ec, claims) });
  assert.deepEqual(identity, { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: 'web' });
});

test('returns null when the request carries no bearer token', async () => {
  assert.equal(await authenticator().authenticate({}), null);
  assert.equal(await authenticator().authenticate({ bearerToken: '' }), null);
});

test('tolerates 60 s of clock skew on exp', async () => {
  const clock = new ManualClock(NOW + 3600_000 + 30_000);
  const identity = await authenticator(clock).authenticate({ bearerToken: await sign(rsa) });
  assert.equal(identity?.serviceAccount, 'cart');
});

test('rejects an expired token', async () => {
  const clock = new ManualClock(NOW + 3600_000 + 61_000);
  const token = await sign(rsa);
  await assertRejected(authenticator(clock).authenticate({ bearerToken: token }), token, /"exp"/);
});

test('rejects a token that is not yet valid', async () => {
  const iat = Math.floor(NOW / 1000);
  const token = await sign(rsa, projectedClaims({ nbf: iat + 120, iat: iat + 120, exp: iat + 3600 }));
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /"nbf"/);
});

test('rejects a token for another audience', async () => {
  const token = await sign(rsa, projectedClaims({ aud: ['https://kubernetes.default.svc'] }));
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /"aud"/);
});

test('rejects a token from another issuer', async () => {
  const token = await sign(rsa, projectedClaims({ iss: 'https://evil.example' }));
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /"iss"/);
});

test('rejects alg none', async () => {
  const token = `${b64({ alg: 'none', kid: rsa.kid })}.${b64(projectedClaims())}.`;
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /alg "none"/);
});

test('rejects HS256 signed with the public key as the HMAC secret', async () => {
  const secret = rsa.publicKey.export({ format: 'pem', type: 'spki' });
  const input = `${b64({ alg: 'HS256', kid: rsa.kid })}.${b64(projectedClaims())}`;
  const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /alg "HS256"/);
});

test('rejects a bad signature (right kid, wrong key)', async () => {
  const impostor = makeKey('ES256', ec.kid);
  const token = await sign(impostor);
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /signature/);
});

test('rejects a token whose payload was altered after signing', async () => {
  const [h, , s] = (await sign(rsa)).split('.');
  // A consistent forgery: subject and kubernetes.io claim both name another workload, so only the signature can tell.
  const forged = projectedClaims({
    sub: 'system:serviceaccount:kube-system:admin',
    'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'admin', uid: '5c1a3f1e-0000-4000-8000-000000000003' } },
  });
  const token = `${h}.${b64(forged)}.${s}`;
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /signature/);
});

test('rejects malformed tokens', async () => {
  for (const token of ['not-a-jwt', 'a.b', 'a.b.c.d', 'eyJhbGciOiJSUzI1NiJ9.%%%.sig', '!!!.e30.x']) {
    await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /compact JWS|malformed/);
  }
  const junkHeader = `${Buffer.from('not json').toString('base64url')}.${b64(projectedClaims())}.c2ln`;
  await assertRejected(authenticator().authenticate({ bearerToken: junkHeader }), junkHeader, /malformed/);
});

test('rejects a subject that is not a service account', async () => {
  for (const sub of ['system:node:worker-1', 'alice', 'system:serviceaccount:shop', 'system:serviceaccount:shop:cart:x', 'system:serviceaccount:..:cart']) {
    const token = await sign(rsa, projectedClaims({ sub }));
    await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /subject|segment/);
  }
});

test('rejects a validly signed token whose namespace or service account is over Kubernetes\' limits (63, 253 characters)', async () => {
  const claimsFor = (namespace: string, serviceAccount: string) =>
    projectedClaims({ sub: `system:serviceaccount:${namespace}:${serviceAccount}`, 'kubernetes.io': { namespace, serviceaccount: { name: serviceAccount, uid: 'x' } } });
  for (const [namespace, serviceAccount, what] of [['n'.repeat(64), 'cart', /namespace is 64 characters long; Kubernetes allows at most 63/], ['shop', 's'.repeat(254), /service account is 254 characters long; Kubernetes allows at most 253/]] as const) {
    const token = await sign(rsa, claimsFor(namespace, serviceAccount));
    await assertRejected(authenticator().authenticate({ bearerToken: token }), token, what);
  }
  const longest = await authenticator().authenticate({ bearerToken: await sign(rsa, claimsFor('n'.repeat(63), 's'.repeat(253))) });
  assert.deepEqual([longest?.namespace.length, longest?.serviceAccount.length], [63, 253]);
});

test('rejects a token whose kubernetes.io claim contradicts its subject', async () => {
  const token = await sign(rsa, projectedClaims({ 'kubernetes.io': { namespace: 'kube-system', serviceaccount: { name: 'cart', uid: 'x' } } }));
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /disagrees/);
});

test('rejects a token without exp', async () => {
  const claims = projectedClaims();
  delete claims.exp;
  const token = await sign(rsa, claims);
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /"exp"/);
});

test('rejects a token signed by a key the JWKS does not hold', async () => {
  const stranger = makeKey('ES256', 'stranger');
  const token = await sign(stranger);
  await assertRejected(authenticator().authenticate({ bearerToken: token }), token, /no applicable key|JWKS/);
});

test('reloads the JWKS for an unknown kid, at most once per refresh interval', async () => {
  const path = join(dir, 'rotating.json');
  await writeJwks(path, [rsa]);
  const clock = new ManualClock(NOW);
  const auth = authenticator(clock, path);
  assert.ok(await auth.authenticate({ bearerToken: await sign(rsa) }));

  const next = makeKey('ES256', 'ec-next');
  await writeJwks(path, [rsa, next]);
  // Right after the first load the cooldown holds: the new key is not seen yet.
  const early = await sign(next);
  await assertRejected(auth.authenticate({ bearerToken: early }), early, /no applicable key/);
  clock.advance(11_000);
  const identity = await auth.authenticate({ bearerToken: await sign(next) });
  assert.equal(identity?.namespace, 'shop');
});

test('refuses a key set carrying private key material', async () => {
  const path = join(dir, 'private.json');
  await writeFile(path, JSON.stringify({ keys: [rsa.privateKey.export({ format: 'jwk' })] }));
  const token = await sign(rsa);
  const logged: Array<Record<string, unknown>> = [];
  const logger = { warn: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
  const auth = createJwksAuthenticator({ issuer: ISSUER, trustDomain: 'cluster.local', source: { kind: 'file', path }, clock: new ManualClock(NOW), logger });
  await assert.rejects(auth.authenticate({ bearerToken: token }), UnavailableError);
  assert.match(String(logged[0]?.['reason']), /private or symmetric key material/);
  assert.throws(() => readJwksFileNow(path), /private or symmetric key material/, 'and refused at start-up');
});

test('answers UnavailableError when the JWKS file is missing and nothing is cached; the path and cause go to the log only', async () => {
  const token = await sign(rsa);
  const absent = join(dir, 'absent.json');
  const logged: Array<Record<string, unknown>> = [];
  const logger = { warn: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
  const auth = createJwksAuthenticator({ issuer: ISSUER, trustDomain: 'cluster.local', source: { kind: 'file', path: absent }, clock: new ManualClock(NOW), logger });
  await assert.rejects(auth.authenticate({ bearerToken: token }), (err: unknown) => {
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
    assert.ok(!err.message.includes(token));
    assert.ok(!err.message.includes(absent), `no server path for callers: ${err.message}`);
    assert.match(err.message, /cannot load its issuer's signing keys now; retry later/);
    return true;
  });
  assert.equal(logged.length, 1);
  assert.equal(logged[0]?.['source'], absent);
  assert.match(String(logged[0]?.['reason']), /ENOENT/);
});

test('a JWKS file replaced by a FIFO or by a file over 256 KiB is refused at once, not waited on or read whole; the reason goes to the log', { timeout: 30_000 }, async () => {
  const fifo = join(dir, 'fifo.json');
  const huge = join(dir, 'huge.json');
  execFileSync('mkfifo', [fifo]);
  await writeFile(huge, '');
  await truncate(huge, 300 * 1024);
  // Liveness, not timing: opening the write end releases a read that blocked on the FIFO (the old
  // behaviour), which then fails the assertions below instead of hanging the process.
  const release = setTimeout(() => closeSync(openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)), 20_000);
  try {
    for (const [path, reason] of [[fifo, /is a FIFO, not a regular file/], [huge, /is larger than 262144 bytes/]] as const) {
      const logged: Array<Record<string, unknown>> = [];
      const logger = { warn: (fields: Record<string, unknown>) => logged.push(fields) } as unknown as Logger;
      const auth = createJwksAuthenticator({ issuer: ISSUER, trustDomain: 'cluster.local', source: { kind: 'file', path }, clock: new ManualClock(NOW), logger });
      await assert.rejects(auth.authenticate({ bearerToken: await sign(rsa) }), (err: unknown) => err instanceof UnavailableError && err.code === 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
      assert.match(String(logged[0]?.['reason']), reason, path);
    }
  } finally {
    clearTimeout(release);
  }
});

test('readJwksFileNow: a missing, non-JSON or keyless --jwks-file is a config error at start-up', async () => {
  assert.doesNotThrow(() => readJwksFileNow(jwksPath));
  const notJson = join(dir, 'not-json.json');
  const keyless = join(dir, 'keyless.json');
  await writeFile(notJson, 'garbage');
  await writeFile(keyless, JSON.stringify({ keys: 'x' }));
  for (const [path, why] of [[join(dir, 'absent.json'), /cannot be read \(ENOENT\)/], [notJson, /is not JSON/], [keyless, /is unusable: expected a JSON object with a "keys" array/]] as const) {
    assert.throws(() => readJwksFileNow(path), (err: unknown) => err instanceof ConfigError && err.code === 'RAMPART_ERR_CONFIG_INVALID' && why.test(err.message) && err.message.startsWith(`--jwks-file ${path}`), path);
  }
});

test('keeps the cached key set when a later reload fails', async () => {
  const path = join(dir, 'flaky.json');
  await writeJwks(path, [rsa]);
  const clock = new ManualClock(NOW);
  const auth = authenticator(clock, path);
  assert.ok(await auth.authenticate({ bearerToken: await sign(rsa) }));
  await writeFile(path, 'garbage');
  clock.advance(6 * 60_000);
  assert.ok(await auth.authenticate({ bearerToken: await sign(rsa, projectedClaims({ exp: Math.floor(clock.now() / 1000) + 600 })) }));
});

test('a verified token is reused from the cache, but never past its exp', async () => {
  const path = join(dir, 'jwks-cache.json');
  await writeJwks(path, [ec]);
  const clock = new ManualClock(NOW);
  const auth = authenticator(clock, path);
  const token = await sign(ec);
  assert.equal((await auth.authenticate({ bearerToken: token }))?.serviceAccount, 'cart');
  // The key set no longer holds the signing key: only the cache can vouch now.
  await writeJwks(path, [rsa]);
  clock.advance(60_000);
  assert.equal((await auth.authenticate({ bearerToken: token }))?.serviceAccount, 'cart');
  // Past exp (and its skew) the cache does not answer: the token is checked again and refused.
  await writeJwks(path, [ec]);
  clock.set(NOW + 3600_000 + 61_000);
  await assertRejected(auth.authenticate({ bearerToken: token }), token, /exp/);
});
