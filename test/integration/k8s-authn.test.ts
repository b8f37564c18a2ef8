import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import pino from 'pino';
import * as k8s from '@kubernetes/client-node';
import { startKubeApiServer, type KubeApiServer } from '../helpers/kube-api-server/index.js';
import { KubernetesAuthenticator, type KubernetesAuthenticatorOptions } from '../../src/authn/kubernetes.js';
import { AuthenticationError, UnavailableError, type RampartError } from '../../src/core/errors.js';
import { ManualClock } from '../../src/core/clock.js';

let api: KubeApiServer;
const logger = pino({ level: 'silent' });

before(async () => {
  api = await startKubeApiServer();
});
after(async () => {
  await api.close();
});

function authenticator(extra: Partial<KubernetesAuthenticatorOptions> = {}, server: KubeApiServer = api) {
  return new KubernetesAuthenticator({ api: server.kubeConfig().makeApiClient(k8s.AuthenticationV1Api), trustDomain: 'cluster.local', logger, ...extra });
}

const mint = (o: Partial<Parameters<KubeApiServer['mintServiceAccountToken']>[0]> = {}) =>
  api.mintServiceAccountToken({ namespace: 'shop', serviceAccount: 'web', audiences: ['rampart-ca'], ...o });

function isCode(code: string) {
  return (e: unknown) => (e as RampartError).code === code;
}

test('a valid projected token yields the workload identity, then is served from the cache', async () => {
  const registry = new Registry();
  const authn = authenticator({ registry });
  const token = await mint({ podName: 'web-7d9', podUid: '0b7c' });
  const before = api.tokenReviews.total;
  const id = await authn.authenticate({ bearerToken: token });
  assert.deepEqual(id, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'web', podName: 'web-7d9', podUid: '0b7c' });
  assert.deepEqual(await authn.authenticate({ bearerToken: token }), id);
  assert.equal(api.tokenReviews.total - before, 1, 'the second call is a cache hit');
  const review = api.requests.filter((r) => r.resource === 'tokenreviews').at(-1);
  assert.deepEqual([review?.verb, review?.apiGroup], ['create', 'authentication.k8s.io']);
  const metrics = await registry.getMetricsAsJSON();
  const byName = (n: string) => metrics.find((m) => m.name === n)?.values ?? [];
  assert.equal(byName('rampart_ca_tokenreview_cache_hits_total')[0]?.value, 1);
  assert.equal(byName('rampart_ca_tokenreview_requests_total').find((v) => v.labels['result'] === 'authenticated')?.value, 1);
});

test('no bearer token: null, so the next authenticator in the chain can try', async () => {
  assert.equal(await authenticator().authenticate({}), null);
});

test('expired, wrong audience, forged signature and garbage tokens are AuthenticationErrors', async () => {
  const authn = authenticator();
  const good = await mint();
  const [h, p] = good.split('.');
  const cases: Record<string, string> = {
    expired: await mint({ expiresInSeconds: -1 }),
    'wrong audience': await mint({ audiences: ['someone-else'] }),
    'api server audience': await mint({ audiences: [api.issuerUrl] }),
    'forged signature': `${h}.${p}.${Buffer.from('x'.repeat(256)).toString('base64url')}`,
    'jwt-shaped garbage': 'aaaa.bbbb.cccc',
    garbage: 'not a token at all',
  };
  for (const [what, token] of Object.entries(cases)) {
    await assert.rejects(authn.authenticate({ bearerToken: token }), (e: unknown) => {
      assert.ok(e instanceof AuthenticationError, what);
      assert.equal(e.code, 'RAMPART_ERR_UNAUTHENTICATED');
      assert.ok(!e.message.includes(token) && !e.detail.includes(token), 'the token never appears in the error');
      return true;
    });
  }
});

test('an authenticated user that is not a service account is refused', async () => {
  // A server whose own audiences include rampart-ca accepts a static token in a review.
  const wide = await startKubeApiServer({ apiAudiences: ['rampart-ca'] });
  try {
    const authn = authenticator({}, wide);
    // Claims shaped like a projected token's, so the review is asked for; the server maps it to a person.
    const claims = { aud: ['rampart-ca'], exp: Math.floor(Date.now() / 1000) + 3600, sub: 'system:serviceaccount:shop:web' };
    const staticToken = `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2lnbmF0dXJl`;
    wide.addToken(staticToken, 'alice');
    await assert.rejects(authn.authenticate({ bearerToken: staticToken }), (e: unknown) => e instanceof AuthenticationError && /not a service account/.test(e.detail));
    assert.equal(wide.tokenReviews.authenticated, 1, 'the API server did authenticate it');
  } finally {
    await wide.close();
  }
});

test('tokens whose own claims no review would pass cost no API call, and a refused review is remembered for 10 s (outside security QA: junk tokens used up the shared budget)', async () => {
  const registry = new Registry();
  const clock = new ManualClock(Date.now());
  const authn = authenticator({ registry, clock });
  const jwt = (claims: Record<string, unknown>): string => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${Buffer.from('sig').toString('base64url')}`;
  const exp = Math.floor(clock.now() / 1000) + 600;
  const sub = 'system:serviceaccount:shop:web';
  const cases: Array<[string, RegExp]> = [
    ['eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA', /audience is not rampart-ca/],
    [jwt({ aud: 'someone-else', exp, sub }), /audience is not rampart-ca/],
    [jwt({ aud: ['x', 'rampart-ca'], sub }), /no expiry/],
    [jwt({ aud: 'rampart-ca', exp: exp - 3600, sub }), /expired/],
    [jwt({ aud: 'rampart-ca', exp, sub: 'alice' }), /subject is not a service account/],
    ['eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.AAAA', /not a JWT with JSON claims/],
  ];
  const before = api.tokenReviews.total;
  for (const [token, detail] of cases) {
    await assert.rejects(authn.authenticate({ bearerToken: token }), (e: unknown) => e instanceof AuthenticationError && detail.test(e.detail), token);
  }
  assert.equal(api.tokenReviews.total, before, 'no review was asked for');
  const refusedLocally = (await registry.getMetricsAsJSON()).find((m) => m.name === 'rampart_ca_tokenreview_requests_total')?.values.find((v) => v.labels['result'] === 'refused_locally');
  assert.equal(refusedLocally?.value, cases.length);
  // Claims that pass, a signature that does not: one review, then refused from memory until 10 s have passed.
  const forged = jwt({ aud: 'rampart-ca', exp, sub });
  for (let i = 0; i < 3; i++) await assert.rejects(authn.authenticate({ bearerToken: forged }), AuthenticationError);
  assert.equal(api.tokenReviews.total, before + 1);
  clock.advance(10_001);
  await assert.rejects(authn.authenticate({ bearerToken: forged }), AuthenticationError);
  assert.equal(api.tokenReviews.total, before + 2);
});

test('an address whose tokens the API server refused 10 times in a minute gets no more reviews until the minute ends; other addresses are served (outside QA: plausible claims with made-up signatures took the shared budget)', async () => {
  const clock = new ManualClock(Date.now());
  const authn = authenticator({ clock });
  const forged = (i: number): string => {
    const claims = { aud: ['rampart-ca'], exp: Math.floor(clock.now() / 1000) + 600, iss: api.issuerUrl, sub: 'system:serviceaccount:shop:web' };
    return `eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${Buffer.from(`made-up-${i}`).toString('base64url')}`;
  };
  const before = api.tokenReviews.total;
  for (let i = 0; i < 10; i++) await assert.rejects(authn.authenticate({ bearerToken: forged(i), peerAddress: '10.0.0.66' }), AuthenticationError);
  assert.equal(api.tokenReviews.total, before + 10);
  await assert.rejects(authn.authenticate({ bearerToken: forged(10), peerAddress: '10.0.0.66' }), (e: unknown) => isCode('RAMPART_ERR_RATE_LIMITED')(e) && (e as RampartError).retryAfterSeconds === 60);
  assert.equal(api.tokenReviews.total, before + 10, 'no review for the eleventh');
  // Another pod is served as usual.
  assert.equal((await authn.authenticate({ bearerToken: await mint({ serviceAccount: 'other-pod' }), peerAddress: '10.0.0.7' }))?.serviceAccount, 'other-pod');
  clock.advance(60_000);
  await assert.rejects(authn.authenticate({ bearerToken: forged(11), peerAddress: '10.0.0.66' }), AuthenticationError);
  assert.equal(api.tokenReviews.total, before + 12, 'reviewed again once the minute is over');
});

test('concurrent reviews of one token share a single API call', async () => {
  const authn = authenticator();
  const token = await mint({ serviceAccount: 'burst' });
  const before = api.tokenReviews.total;
  const ids = await Promise.all(Array.from({ length: 8 }, () => authn.authenticate({ bearerToken: token })));
  assert.ok(ids.every((i) => i?.serviceAccount === 'burst'));
  assert.equal(api.tokenReviews.total - before, 1);
});

test('the cache lasts until the token expires, and at most maxCacheMs', async () => {
  const clock = new ManualClock(Date.now());
  const authn = authenticator({ clock, maxCacheMs: 5 * 60_000 });
  const shortLived = await mint({ expiresInSeconds: 120 });
  const longLived = await mint({ expiresInSeconds: 3600 });
  await authn.authenticate({ bearerToken: shortLived });
  await authn.authenticate({ bearerToken: longLived });
  const start = api.tokenReviews.total;
  clock.advance(119_000);
  await authn.authenticate({ bearerToken: shortLived });
  await authn.authenticate({ bearerToken: longLived });
  assert.equal(api.tokenReviews.total, start, 'both still cached');
  clock.advance(2_000);
  await authn.authenticate({ bearerToken: shortLived }); // past its exp on our clock: reviewed again
  assert.equal(api.tokenReviews.total, start + 1);
  clock.advance(180_000);
  await authn.authenticate({ bearerToken: longLived }); // 5 min cap reached
  assert.equal(api.tokenReviews.total, start + 2);
});

test('a deleted ServiceAccount: its token is refused once the cached review runs out (at most maxCacheMs)', async () => {
  const core = api.kubeConfig().makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: 'short-lived' } } });
  const clock = new ManualClock(Date.now());
  const authn = authenticator({ clock, maxCacheMs: 5 * 60_000 });
  const token = await mint({ namespace: 'short-lived', serviceAccount: 'batch' });
  assert.equal((await authn.authenticate({ bearerToken: token }))?.serviceAccount, 'batch');
  await core.deleteNamespacedServiceAccount({ name: 'batch', namespace: 'short-lived' });
  assert.equal((await authn.authenticate({ bearerToken: token }))?.serviceAccount, 'batch', 'still cached');
  clock.advance(5 * 60_000 + 1_000);
  await assert.rejects(authn.authenticate({ bearerToken: token }), (e: unknown) => e instanceof AuthenticationError && /serviceaccounts "batch" not found/.test(e.detail));
});

test('outage: cached identities keep working, new tokens get 503 BACKEND_UNAVAILABLE, recovery after comeBack', async () => {
  const authn = authenticator();
  const cached = await mint({ serviceAccount: 'cached' });
  const fresh = await mint({ serviceAccount: 'fresh' });
  await authn.authenticate({ bearerToken: cached });
  await api.goDown();
  try {
    assert.equal((await authn.authenticate({ bearerToken: cached }))?.serviceAccount, 'cached');
    await assert.rejects(authn.authenticate({ bearerToken: fresh }), (e: unknown) => e instanceof UnavailableError && e.code === 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE' && e.category === 'unavailable');
  } finally {
    await api.comeBack();
  }
  assert.equal((await authn.authenticate({ bearerToken: fresh }))?.serviceAccount, 'fresh');
});

test('API server 5xx and missing RBAC are BACKEND_UNAVAILABLE, not the caller\'s fault', async () => {
  const authn = authenticator();
  api.injectFault({ resource: 'tokenreviews', status: 500 });
  await assert.rejects(authn.authenticate({ bearerToken: await mint() }), isCode('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE'));
  api.injectFault({ resource: 'tokenreviews', status: 403 });
  await assert.rejects(authn.authenticate({ bearerToken: await mint({ serviceAccount: 'x' }) }), isCode('RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE'));
});

test('over the client rate: RATE_LIMITED with retryAfterSeconds, and the API server is not called', async () => {
  const clock = new ManualClock(Date.now());
  const authn = authenticator({ clock, rate: { perSecond: 1, burst: 2 } });
  const tokens = await Promise.all(['a', 'b', 'c'].map((sa) => mint({ serviceAccount: sa })));
  await authn.authenticate({ bearerToken: tokens[0] as string });
  await authn.authenticate({ bearerToken: tokens[1] as string });
  const before = api.tokenReviews.total;
  await assert.rejects(authn.authenticate({ bearerToken: tokens[2] as string }), (e: unknown) => {
    assert.ok(e instanceof UnavailableError);
    assert.equal(e.code, 'RAMPART_ERR_RATE_LIMITED');
    assert.equal(e.retryAfterSeconds, 1);
    return true;
  });
  assert.equal(api.tokenReviews.total, before);
  assert.equal((await authn.authenticate({ bearerToken: tokens[0] as string }))?.serviceAccount, 'a', 'cache hits are not rate limited');
  clock.advance(1000);
  assert.equal((await authn.authenticate({ bearerToken: tokens[2] as string }))?.serviceAccount, 'c');
});
