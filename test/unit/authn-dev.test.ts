import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { ManualClock } from '../../src/core/clock.js';
import { BadRequestError, StateError } from '../../src/core/errors.js';
import {
  DEV_ISSUER,
  DEV_JWKS_FILE,
  DEV_KEY_FILE,
  createDevAuthenticator,
  ensureDevIssuer,
  mintDevToken,
} from '../../src/authn/dev.js';
import { NOW, assertRejected, tempDir } from './authn-jwt-helpers.js';

const run = promisify(execFile);
let root: string;
let cleanup: () => Promise<void>;
let counter = 0;

before(async () => {
  ({ dir: root, cleanup } = await tempDir('rampart-authn-dev-'));
});
after(() => cleanup());

/** A fresh (not yet existing) state dir per test. */
function stateDir(): string {
  counter += 1;
  return join(root, `state-${counter}`);
}

test('ensureDevIssuer creates a 0600 PKCS#8 P-256 key and a 0644 JWKS, then reuses them', async () => {
  const dir = stateDir();
  const first = await ensureDevIssuer(dir);
  const keyPath = join(dir, DEV_KEY_FILE);
  assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, DEV_JWKS_FILE))).mode & 0o777, 0o644);
  const pem = await readFile(keyPath, 'utf8');
  // PKCS#8 PEM (the label is spelled out in pieces so no tracked file looks like a key).
  assert.ok(pem.startsWith(`-----BEGIN ${'PRIVATE'} KEY-----\n`));
  const { stdout } = await run('openssl', ['pkey', '-in', keyPath, '-noout', '-text']);
  assert.match(stdout, /prime256v1|P-256/);
  const jwks = JSON.parse(await readFile(join(dir, DEV_JWKS_FILE), 'utf8')) as { keys: Array<Record<string, unknown>> };
  assert.equal(jwks.keys.length, 1);
  assert.deepEqual(
    { kty: jwks.keys[0]?.['kty'], crv: jwks.keys[0]?.['crv'], alg: jwks.keys[0]?.['alg'], kid: jwks.keys[0]?.['kid'], d: jwks.keys[0]?.['d'] },
    { kty: 'EC', crv: 'P-256', alg: 'ES256', kid: first.kid, d: undefined },
  );
  const second = await ensureDevIssuer(dir);
  assert.equal(second.kid, first.kid);
  assert.equal(await readFile(keyPath, 'utf8'), pem);
});

test('concurrent ensureDevIssuer calls in one process agree on one key and leave no temp files', async () => {
  const dir = stateDir();
  const results = await Promise.all(Array.from({ length: 6 }, () => ensureDevIssuer(dir)));
  assert.equal(new Set(results.map((r) => r.kid)).size, 1);
  assert.deepEqual((await readdir(dir)).sort(), [DEV_JWKS_FILE, DEV_KEY_FILE].sort());
});

test('ensureDevIssuer removes key and JWKS temp files of a writer that died mid-write, and keeps those of a live one', async () => {
  const dir = stateDir();
  await ensureDevIssuer(dir);
  const dead = spawn('true');
  await once(dead, 'exit');
  const live = spawn('sleep', ['30']);
  try {
    const deadKey = `${DEV_KEY_FILE}.${dead.pid}.0123456789ab.tmp`;
    const deadJwks = `${DEV_JWKS_FILE}.${dead.pid}.0123456789ab.tmp`;
    const liveKey = `${DEV_KEY_FILE}.${live.pid}.0123456789ab.tmp`;
    const unrelated = `notes.${dead.pid}.0123456789ab.tmp`;
    for (const name of [deadKey, deadJwks, liveKey, unrelated]) await writeFile(join(dir, name), 'leftover', { mode: 0o600 });
    await ensureDevIssuer(dir);
    assert.deepEqual((await readdir(dir)).sort(), [DEV_JWKS_FILE, DEV_KEY_FILE, liveKey, unrelated].sort());
  } finally {
    live.kill();
  }
});

test('two processes racing to create the dev issuer agree on one key', async () => {
  const dir = stateDir();
  const module = fileURLToPath(new URL('../../src/authn/dev.ts', import.meta.url));
  const script = `const { ensureDevIssuer } = await import(${JSON.stringify(module)}); console.log((await ensureDevIssuer(${JSON.stringify(dir)})).kid);`;
  const child = () => run(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script]);
  const [a, b] = await Promise.all([child(), child()]);
  const kid = (await ensureDevIssuer(dir)).kid;
  assert.equal(a.stdout.trim(), kid);
  assert.equal(b.stdout.trim(), kid);
  assert.deepEqual((await readdir(dir)).sort(), [DEV_JWKS_FILE, DEV_KEY_FILE].sort());
});

test('rewrites a JWKS left over from a deleted key', async () => {
  const dir = stateDir();
  const old = await ensureDevIssuer(dir);
  await unlink(join(dir, DEV_KEY_FILE));
  const fresh = await ensureDevIssuer(dir);
  assert.notEqual(fresh.kid, old.kid);
  assert.match(await readFile(join(dir, DEV_JWKS_FILE), 'utf8'), new RegExp(fresh.kid));
  assert.equal((await stat(join(dir, DEV_JWKS_FILE))).mode & 0o777, 0o644);
});

test('refuses a corrupt dev issuer key with a coded error', async () => {
  const dir = stateDir();
  await ensureDevIssuer(dir);
  await writeFile(join(dir, DEV_KEY_FILE), 'not a key');
  await assert.rejects(ensureDevIssuer(dir), (err: unknown) => err instanceof StateError && err.code === 'RAMPART_ERR_STATE_CORRUPT');
});

test('mintDevToken produces a token shaped like a Kubernetes projected token', async () => {
  const dir = stateDir();
  const token = await mintDevToken({
    stateDir: dir,
    namespace: 'shop',
    serviceAccount: 'cart',
    ttlSeconds: 600,
    podName: 'cart-0',
    podUid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427',
    clock: new ManualClock(NOW),
  });
  const header = decodeProtectedHeader(token);
  assert.deepEqual(header, { alg: 'ES256', kid: (await ensureDevIssuer(dir)).kid });
  const claims = decodeJwt(token);
  const iat = Math.floor(NOW / 1000);
  assert.deepEqual(Object.keys(claims).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'kubernetes.io', 'nbf', 'sub']);
  assert.equal(claims.iss, DEV_ISSUER);
  assert.equal(claims.sub, 'system:serviceaccount:shop:cart');
  assert.deepEqual(claims.aud, ['rampart-ca']);
  assert.deepEqual([claims.iat, claims.nbf, claims.exp], [iat, iat, iat + 600]);
  const k8s = claims['kubernetes.io'] as { namespace: string; serviceaccount: { name: string; uid: string }; pod: { name: string; uid: string } };
  assert.equal(k8s.namespace, 'shop');
  assert.equal(k8s.serviceaccount.name, 'cart');
  assert.match(k8s.serviceaccount.uid, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.deepEqual(k8s.pod, { name: 'cart-0', uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427' });
});

test('mintDevToken leaves out the pod claim when no pod is named', async () => {
  const claims = decodeJwt(await mintDevToken({ stateDir: stateDir(), namespace: 'default', serviceAccount: 'web' }));
  assert.equal((claims['kubernetes.io'] as Record<string, unknown>)['pod'], undefined);
});

test('mintDevToken refuses names that are not SPIFFE path segments and bad TTLs', async () => {
  const dir = stateDir();
  for (const [namespace, serviceAccount] of [['', 'sa'], ['..', 'sa'], ['ns', 'a/b'], ['ns', 'a:b'], ['ns ', 'sa']] as const) {
    await assert.rejects(mintDevToken({ stateDir: dir, namespace, serviceAccount }), (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_SPIFFE_ID_INVALID');
  }
  // Kubernetes name limits: a namespace is a DNS label (63), a service account a DNS subdomain (253).
  for (const [namespace, serviceAccount] of [['n'.repeat(64), 'sa'], ['ns', 's'.repeat(254)]] as const) {
    await assert.rejects(mintDevToken({ stateDir: dir, namespace, serviceAccount }), (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_SPIFFE_ID_INVALID' && /Kubernetes allows at most/.test(err.message));
  }
  await mintDevToken({ stateDir: dir, namespace: 'n'.repeat(63), serviceAccount: 's'.repeat(253) });
  for (const ttlSeconds of [0, -5, 1.5, Number.NaN, 10 ** 12]) {
    await assert.rejects(mintDevToken({ stateDir: dir, namespace: 'ns', serviceAccount: 'sa', ttlSeconds }), (err: unknown) => err instanceof BadRequestError && err.code === 'RAMPART_ERR_TTL_INVALID');
  }
});

test('the dev authenticator accepts its own tokens and reports pod info', async () => {
  const dir = stateDir();
  const clock = new ManualClock(NOW);
  const auth = createDevAuthenticator({ stateDir: dir, trustDomain: 'cluster.local', clock });
  assert.equal(auth.name, 'dev');
  const token = await mintDevToken({ stateDir: dir, namespace: 'shop', serviceAccount: 'cart', podName: 'cart-0', podUid: 'u-1', clock });
  assert.deepEqual(await auth.authenticate({ bearerToken: token }), {
    trustDomain: 'cluster.local',
    namespace: 'shop',
    serviceAccount: 'cart',
    podName: 'cart-0',
    podUid: 'u-1',
  });
  assert.equal(await auth.authenticate({}), null);
});

test('the dev authenticator creates the issuer itself when the state dir is new', async () => {
  const dir = stateDir();
  const auth = createDevAuthenticator({ stateDir: dir, trustDomain: 'cluster.local', clock: new ManualClock(NOW) });
  const token = 'eyJhbGciOiJFUzI1NiJ9.e30.c2ln';
  await assertRejected(auth.authenticate({ bearerToken: token }), token, /.+/);
  assert.deepEqual((await readdir(dir)).sort(), [DEV_JWKS_FILE, DEV_KEY_FILE].sort());
});

test('the dev authenticator rejects tokens from another state dir, audience or time', async () => {
  const dir = stateDir();
  const clock = new ManualClock(NOW);
  const auth = createDevAuthenticator({ stateDir: dir, trustDomain: 'cluster.local', clock });
  await ensureDevIssuer(dir);

  const foreign = await mintDevToken({ stateDir: stateDir(), namespace: 'shop', serviceAccount: 'cart', clock });
  await assertRejected(auth.authenticate({ bearerToken: foreign }), foreign, /no applicable key/);

  const otherAudience = await mintDevToken({ stateDir: dir, namespace: 'shop', serviceAccount: 'cart', audience: 'vault', clock });
  await assertRejected(auth.authenticate({ bearerToken: otherAudience }), otherAudience, /"aud"/);

  const shortLived = await mintDevToken({ stateDir: dir, namespace: 'shop', serviceAccount: 'cart', ttlSeconds: 60, clock });
  clock.advance(121_000);
  await assertRejected(auth.authenticate({ bearerToken: shortLived }), shortLived, /"exp"/);
});
