import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ManualClock } from '../../src/core/clock.js';
import { UnavailableError } from '../../src/core/errors.js';
import { createJwksAuthenticator } from '../../src/authn/jwks.js';
import { createKeyAndCsr } from '../../src/agent/csr.js';
import { startTestCa } from '../helpers/ca.js';
import { httpsJson } from '../helpers/https.js';
import { NOW, assertRejected, makeKey, projectedClaims, sign, tempDir, type TestKey } from '../unit/authn-jwt-helpers.js';

const run = promisify(execFile);

/** A tiny issuer: serves a JWKS and an OIDC discovery document, counting requests. */
interface Issuer {
  readonly base: string;
  readonly hits: Map<string, number>;
  keys: TestKey[];
  discoveryIssuer?: string;
  failWith?: number;
  close(): Promise<void>;
}

function handler(state: { issuer?: Issuer }) {
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const issuer = state.issuer as Issuer;
    const path = req.url ?? '/';
    issuer.hits.set(path, (issuer.hits.get(path) ?? 0) + 1);
    if (issuer.failWith !== undefined) {
      res.writeHead(issuer.failWith).end();
      return;
    }
    res.setHeader('content-type', 'application/json');
    if (path === '/keys') {
      res.end(JSON.stringify({ keys: issuer.keys.map((k) => k.jwk) }));
    } else if (path === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer: issuer.discoveryIssuer ?? issuer.base, jwks_uri: `${issuer.base}/keys`, id_token_signing_alg_values_supported: ['RS256'] }));
    } else {
      res.writeHead(404).end('{}');
    }
  };
}

async function startIssuer(server: http.Server, scheme: 'http' | 'https', keys: TestKey[]): Promise<Issuer> {
  const state: { issuer?: Issuer } = {};
  server.on('request', handler(state));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const issuer: Issuer = {
    base: `${scheme}://127.0.0.1:${port}`,
    hits: new Map(),
    keys,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  state.issuer = issuer;
  return issuer;
}

let dir: string;
let cleanup: () => Promise<void>;
let caFile: string;
let serverKey: string;
let serverCert: string;
let rsa: TestKey;
let ec: TestKey;

before(async () => {
  ({ dir, cleanup } = await tempDir('rampart-authn-remote-'));
  rsa = makeKey('RS256', 'rsa-remote');
  ec = makeKey('ES256', 'ec-remote');
  // A self-signed serving certificate made by openssl, trusted only through caFile.
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', join(dir, 'server.key'), '-out', join(dir, 'server.crt'), '-days', '1',
    '-subj', '/CN=jwks-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  caFile = join(dir, 'server.crt');
  serverCert = await readFile(caFile, 'utf8');
  serverKey = await readFile(join(dir, 'server.key'), 'utf8');
});
after(() => cleanup());

function claimsFor(issuer: Issuer) {
  return projectedClaims({ iss: issuer.base });
}

test('accepts a token verified against a JWKS URL on a real HTTP server, fetching once', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa, ec]);
  try {
    const auth = createJwksAuthenticator({
      issuer: issuer.base,
      trustDomain: 'cluster.local',
      source: { kind: 'url', url: `${issuer.base}/keys` },
      clock: new ManualClock(NOW),
    });
    const [a, b] = await Promise.all([
      auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) }),
      auth.authenticate({ bearerToken: await sign(ec, claimsFor(issuer)) }),
    ]);
    assert.equal(a?.serviceAccount, 'cart');
    assert.equal(b?.podName, 'cart-7d9f');
    assert.equal(issuer.hits.get('/keys'), 1);
  } finally {
    await issuer.close();
  }
});

test('accepts a token verified against a JWKS over HTTPS trusted through a CA file', async () => {
  const issuer = await startIssuer(https.createServer({ key: serverKey, cert: serverCert }), 'https', [ec]);
  try {
    const auth = createJwksAuthenticator({
      issuer: issuer.base,
      trustDomain: 'cluster.local',
      source: { kind: 'url', url: `${issuer.base}/keys`, caFile },
      clock: new ManualClock(NOW),
    });
    const identity = await auth.authenticate({ bearerToken: await sign(ec, claimsFor(issuer)) });
    assert.equal(identity?.namespace, 'shop');
  } finally {
    await issuer.close();
  }
});

test('refuses an HTTPS JWKS whose certificate is not trusted', async () => {
  const issuer = await startIssuer(https.createServer({ key: serverKey, cert: serverCert }), 'https', [ec]);
  try {
    const auth = createJwksAuthenticator({
      issuer: issuer.base,
      trustDomain: 'cluster.local',
      source: { kind: 'url', url: `${issuer.base}/keys` },
      clock: new ManualClock(NOW),
    });
    await assert.rejects(auth.authenticate({ bearerToken: await sign(ec, claimsFor(issuer)) }), UnavailableError);
  } finally {
    await issuer.close();
  }
});

test('accepts a token through OIDC issuer discovery over HTTPS', async () => {
  const issuer = await startIssuer(https.createServer({ key: serverKey, cert: serverCert }), 'https', [rsa]);
  try {
    const auth = createJwksAuthenticator({
      issuer: issuer.base,
      trustDomain: 'example.org',
      source: { kind: 'discovery', caFile },
      clock: new ManualClock(NOW),
    });
    const identity = await auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) });
    assert.deepEqual({ td: identity?.trustDomain, sa: identity?.serviceAccount }, { td: 'example.org', sa: 'cart' });
    assert.equal(issuer.hits.get('/.well-known/openid-configuration'), 1);
    assert.equal(issuer.hits.get('/keys'), 1);
  } finally {
    await issuer.close();
  }
});

test('refuses a discovery document that names another issuer', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  issuer.discoveryIssuer = 'https://someone-else.example';
  try {
    const auth = createJwksAuthenticator({ issuer: issuer.base, trustDomain: 'cluster.local', source: { kind: 'discovery' }, clock: new ManualClock(NOW) });
    await assert.rejects(auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) }), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.match(err.message, /issuer/);
      return true;
    });
  } finally {
    await issuer.close();
  }
});

test('picks up a rotated issuer key on an unknown kid', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  try {
    const clock = new ManualClock(NOW);
    const auth = createJwksAuthenticator({ issuer: issuer.base, trustDomain: 'cluster.local', source: { kind: 'url', url: `${issuer.base}/keys` }, clock });
    assert.ok(await auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) }));
    issuer.keys = [rsa, ec];
    clock.advance(10_000);
    assert.ok(await auth.authenticate({ bearerToken: await sign(ec, claimsFor(issuer)) }));
    assert.equal(issuer.hits.get('/keys'), 2);
    // A flood of unknown kids within the refresh interval costs no further fetches.
    const stranger = makeKey('ES256', 'stranger');
    for (let i = 0; i < 3; i++) {
      const token = await sign(stranger, claimsFor(issuer), `stranger-${i}`);
      await assertRejected(auth.authenticate({ bearerToken: token }), token, /no applicable key/);
    }
    assert.equal(issuer.hits.get('/keys'), 2);
    // Another issuer's token never reaches key lookup, so it cannot cause fetches either.
    clock.advance(10_000);
    const foreign = await sign(stranger, projectedClaims({ iss: 'https://other-cluster.example' }));
    await assertRejected(auth.authenticate({ bearerToken: foreign }), foreign, /"iss"/);
    assert.equal(issuer.hits.get('/keys'), 2);
  } finally {
    await issuer.close();
  }
});

test('an unknown kid while the JWKS URL fails is UnavailableError with Retry-After, not 401; once the URL answers it is 401 again', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  try {
    const clock = new ManualClock(NOW);
    const auth = createJwksAuthenticator({ issuer: issuer.base, trustDomain: 'cluster.local', source: { kind: 'url', url: `${issuer.base}/keys` }, clock });
    assert.ok(await auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) }));
    issuer.failWith = 503;
    clock.advance(10_000);
    const stranger = makeKey('ES256', 'rotated-in');
    const unavailable = (token: string) => (err: unknown) => {
      assert.ok(err instanceof UnavailableError, `expected UnavailableError, got ${String(err)}`);
      assert.equal(err.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
      assert.ok((err.retryAfterSeconds ?? 0) >= 1, 'a Retry-After for the caller');
      assert.ok(!err.message.includes(token) && !err.message.includes(issuer.base), err.message);
      return true;
    };
    const first = await sign(stranger, claimsFor(issuer), 'rotated-in');
    await assert.rejects(auth.authenticate({ bearerToken: first }), unavailable(first));
    assert.equal(issuer.hits.get('/keys'), 2, 'one reload was tried');
    // Within the refresh interval no new fetch is made, and the answer is still "unavailable".
    const again = await sign(stranger, claimsFor(issuer), 'rotated-in-2');
    await assert.rejects(auth.authenticate({ bearerToken: again }), unavailable(again));
    assert.equal(issuer.hits.get('/keys'), 2);
    // A token its claims already refuse (expired, another audience) is 401 whatever its key, and costs no fetch.
    const nowSeconds = Math.floor(clock.now() / 1000);
    const expired = await sign(stranger, { ...claimsFor(issuer), iat: nowSeconds - 7200, nbf: nowSeconds - 7200, exp: nowSeconds - 3600 }, 'rotated-in-3');
    await assertRejected(auth.authenticate({ bearerToken: expired }), expired, /"exp"/);
    const elsewhere = await sign(stranger, { ...claimsFor(issuer), aud: ['another-service'] }, 'rotated-in-4');
    await assertRejected(auth.authenticate({ bearerToken: elsewhere }), elsewhere, /"aud"/);
    assert.equal(issuer.hits.get('/keys'), 2);
    // A token whose key is cached is still accepted while the URL fails.
    assert.ok(await auth.authenticate({ bearerToken: await sign(rsa, projectedClaims({ iss: issuer.base, jti: 'fresh' })) }));
    // The URL answers again without the key: now the key is known not to exist.
    delete issuer.failWith;
    clock.advance(10_000);
    await assertRejected(auth.authenticate({ bearerToken: first }), first, /no applicable key/);
    assert.equal(issuer.hits.get('/keys'), 3);
    await assertRejected(auth.authenticate({ bearerToken: again }), again, /no applicable key/);
    assert.equal(issuer.hits.get('/keys'), 3);
  } finally {
    await issuer.close();
  }
});

test('through the CA: an unknown kid while nothing listens at --jwks-url answers 503 with Retry-After and a code', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  const clock = new ManualClock(Date.now());
  const ca = await startTestCa({ authn: 'jwks', 'jwks-issuer': issuer.base, 'jwks-url': `${issuer.base}/keys` }, { clock });
  try {
    const now = Math.floor(clock.now() / 1000);
    const claims = (sa: string) => projectedClaims({ iss: issuer.base, sub: `system:serviceaccount:shop:${sa}`, iat: now, nbf: now, exp: now + 3600, 'kubernetes.io': { namespace: 'shop' } });
    const post = async (token: string) => httpsJson(`${ca.apiUrl}/v1/certificates`, { ca: ca.rootCertPem(), token, body: { csr: createKeyAndCsr().csrPem } });
    assert.equal((await post(await sign(rsa, claims('cart')))).status, 200);
    await issuer.close();
    clock.advance(10_000);
    const res = await post(await sign(makeKey('ES256', 'rotated-in'), claims('cart'), 'rotated-in'));
    assert.equal(res.status, 503, res.text);
    assert.equal(res.body.error.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
    assert.match(String(res.headers['retry-after']), /^[1-9]\d*$/);
    assert.doesNotMatch(res.text, /127\.0\.0\.1|\/keys/, 'no internal URL for callers');
  } finally {
    await ca.close();
  }
});

test('answers UnavailableError when the JWKS URL fails and nothing is cached, then recovers', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  try {
    issuer.failWith = 500;
    const auth = createJwksAuthenticator({ issuer: issuer.base, trustDomain: 'cluster.local', source: { kind: 'url', url: `${issuer.base}/keys` }, clock: new ManualClock(NOW) });
    const token = await sign(rsa, claimsFor(issuer));
    await assert.rejects(auth.authenticate({ bearerToken: token }), (err: unknown) => {
      assert.ok(err instanceof UnavailableError);
      assert.equal(err.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
      assert.ok(!err.message.includes(token));
      return true;
    });
    delete issuer.failWith;
    assert.ok(await auth.authenticate({ bearerToken: token }));
  } finally {
    await issuer.close();
  }
});

test('answers UnavailableError when nothing listens at the JWKS URL', async () => {
  const issuer = await startIssuer(http.createServer(), 'http', [rsa]);
  await issuer.close();
  const auth = createJwksAuthenticator({ issuer: issuer.base, trustDomain: 'cluster.local', source: { kind: 'url', url: `${issuer.base}/keys` }, clock: new ManualClock(NOW) });
  await assert.rejects(auth.authenticate({ bearerToken: await sign(rsa, claimsFor(issuer)) }), UnavailableError);
});
