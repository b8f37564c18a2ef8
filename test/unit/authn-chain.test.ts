import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { ManualClock } from '../../src/core/clock.js';
import { AuthenticationError, UnavailableError } from '../../src/core/errors.js';
import type { Authenticator } from '../../src/core/ports.js';
import { AuthenticatorChain } from '../../src/authn/chain.js';
import { DEV_ISSUER, DEV_JWKS_FILE, createDevAuthenticator, ensureDevIssuer, mintDevToken } from '../../src/authn/dev.js';
import { createJwksAuthenticator } from '../../src/authn/jwks.js';
import { NOW, tempDir } from './authn-jwt-helpers.js';

let root: string;
let cleanup: () => Promise<void>;
let dirA: string;
let dirB: string;
let deadUrl: string;
const clock = new ManualClock(NOW);

before(async () => {
  ({ dir: root, cleanup } = await tempDir('rampart-authn-chain-'));
  dirA = join(root, 'a');
  dirB = join(root, 'b');
  await ensureDevIssuer(dirA);
  await ensureDevIssuer(dirB);
  // A port that was just bound and released: nothing answers there.
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  deadUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys`;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
after(() => cleanup());

function dev(stateDir: string): Authenticator {
  return createDevAuthenticator({ stateDir, trustDomain: 'cluster.local', clock });
}
/** A jwks authenticator trusting a dev state dir's key file. */
function jwksFile(stateDir: string): Authenticator {
  return createJwksAuthenticator({ issuer: DEV_ISSUER, trustDomain: 'cluster.local', source: { kind: 'file', path: join(stateDir, DEV_JWKS_FILE) }, clock });
}
function jwksDead(): Authenticator {
  return createJwksAuthenticator({ issuer: DEV_ISSUER, trustDomain: 'cluster.local', source: { kind: 'url', url: deadUrl }, clock });
}
function tokenFrom(stateDir: string): Promise<string> {
  return mintDevToken({ stateDir, namespace: 'shop', serviceAccount: 'cart', clock });
}
function capture(): { logger: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink) as Logger, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

test('the first authenticator that succeeds wins, in order', async () => {
  const token = await tokenFrom(dirB);
  const both = new AuthenticatorChain([dev(dirB), jwksFile(dirB)]);
  assert.deepEqual(both.names, ['dev', 'jwks']);
  const first = await both.authenticate({ bearerToken: token });
  assert.equal(first.authenticator, 'dev');
  assert.deepEqual(first.identity, { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'cart' });
  const second = await new AuthenticatorChain([dev(dirA), jwksFile(dirB)]).authenticate({ bearerToken: token });
  assert.equal(second.authenticator, 'jwks');
});

test('refuses with a generic error when every authenticator rejects, logging reasons but not the token', async () => {
  const token = await tokenFrom(dirB);
  const { logger, lines } = capture();
  const chain = new AuthenticatorChain([dev(dirA), jwksFile(dirA)], { logger });
  await assert.rejects(chain.authenticate({ bearerToken: token }), (err: unknown) => {
    assert.ok(err instanceof AuthenticationError);
    assert.equal(err.code, 'RAMPART_ERR_UNAUTHENTICATED');
    assert.doesNotMatch(err.message, /dev|jwks|kid|key/);
    assert.match(err.detail, /dev: .*no applicable key.*; jwks: .*no applicable key/);
    return true;
  });
  const log = lines();
  assert.ok(log.some((l) => l.includes('"authenticator":"dev"') && l.includes('no applicable key')));
  assert.ok(log.some((l) => l.includes('every authenticator refused the caller') && l.includes('"failures"')));
  assert.ok(log.every((l) => !l.includes(token)), 'the token must never be logged');
});

test('skips authenticators with nothing to check and refuses a request carrying no credentials', async () => {
  const chain = new AuthenticatorChain([dev(dirA), jwksFile(dirA)]);
  await assert.rejects(chain.authenticate({}), (err: unknown) => err instanceof AuthenticationError && /no credentials/.test(err.detail));
  const empty = new AuthenticatorChain([]);
  await assert.rejects(empty.authenticate({ bearerToken: await tokenFrom(dirA) }), AuthenticationError);
});

test('rethrows UnavailableError when a source is unreachable and nothing succeeded', async () => {
  const token = await tokenFrom(dirB);
  const chain = new AuthenticatorChain([jwksDead(), dev(dirA)]);
  await assert.rejects(chain.authenticate({ bearerToken: token }), (err: unknown) => {
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.code, 'RAMPART_ERR_AUTHN_BACKEND_UNAVAILABLE');
    return true;
  });
});

test('a later success still wins over an earlier unavailable source', async () => {
  const token = await tokenFrom(dirB);
  const caller = await new AuthenticatorChain([jwksDead(), dev(dirB)]).authenticate({ bearerToken: token });
  assert.equal(caller.authenticator, 'dev');
});

test('an authenticator that crashes counts as a rejection and its message is scrubbed of the token', async () => {
  const token = await tokenFrom(dirB);
  // Stands in for a buggy third-party authenticator: one that echoes what it was given.
  const buggy: Authenticator = {
    name: 'buggy',
    authenticate: (request) => Promise.reject(new TypeError(`cannot handle ${request.bearerToken ?? ''}`)),
  };
  const { logger, lines } = capture();
  const rejected = new AuthenticatorChain([buggy], { logger });
  await assert.rejects(rejected.authenticate({ bearerToken: token }), (err: unknown) => {
    assert.ok(err instanceof AuthenticationError);
    assert.match(err.detail, /buggy: TypeError: cannot handle \[token\]/);
    assert.ok(!err.detail.includes(token));
    return true;
  });
  assert.ok(lines().some((l) => l.includes('"level":40') && l.includes('buggy')));
  assert.ok(lines().every((l) => !l.includes(token)));
  const caller = await new AuthenticatorChain([buggy, dev(dirB)], { logger }).authenticate({ bearerToken: token });
  assert.equal(caller.authenticator, 'dev');
});
